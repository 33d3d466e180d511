// Notifications in the web app, on a secure server: a participant comments
// on a recommendation and looks at the bell; while she is away, the
// facilitator opens a consent round, adopts the recommendation and replies
// to her comment. When she comes back, the bell counts what is new and the
// list names it, with the facilitator's verified name; once she has opened
// the list, a reload counts nothing new (the server keeps when she looked).
//
// DOM hooks: `#notify-bell[data-count]`, `#notify-list li[data-kind][data-new]`.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launch, waitSynced, startSecureServer, invite, joinAs, createProcess, selectPhrase } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startSecureServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

const member = (link, name, locale) => joinAs(browser, link, name, locale)

test("a participant coming back sees the round, the adoption and the reply to her comment", async () => {
  const admin = await member(server.adminLink, "admin")
  const processId = await createProcess(admin.page, "Fair recruitment", "Fees")
  const [fatimaInvite, piaInvite] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
  ])
  const fatima = await member(fatimaInvite.link, "Fatima")
  const pia = await member(piaInvite.link, "Pia")
  for (const { page } of [fatima, pia]) await page.locator("#workshops h3", { hasText: "Fees" }).waitFor({ timeout: 15_000 })

  // The facilitator drafts a recommendation; Pia comments on it.
  await fatima.page.getByLabel("Title of the new recommendation").fill("No fees for workers")
  await fatima.page.getByRole("button", { name: "Create", exact: true }).click()
  await fatima.page.waitForURL(/\/r\//)
  const recPath = new URL(fatima.page.url()).pathname
  const editor = fatima.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.click()
  await editor.pressSequentially("Employers pay all recruitment costs.")
  await waitSynced(fatima.page)
  await pia.page.goto(`${server.base}${recPath}`)
  await pia.page.waitForFunction(() => window.fieldText("recommendation") === "Employers pay all recruitment costs.", null, { timeout: 15_000 })
  await selectPhrase(pia.page, "recommendation", "all recruitment costs")
  await pia.page.getByRole("button", { name: "Comment", exact: true }).click()
  await pia.page.getByLabel("Your comment").fill("Including travel?")
  await pia.page.getByRole("button", { name: "Add comment" }).click()
  await waitSynced(pia.page)

  // Pia looks at her notifications (the facilitator's draft is news to
  // her), then leaves.
  await pia.page.locator("#notify-bell").click()
  await pia.page.locator("#notify-panel:not([hidden])").waitFor()
  await pia.page.locator("#notify-bell[data-count='0']").waitFor()
  await pia.page.goto(`${server.base}/`)
  await pia.page.locator("#notify-bell[data-count='0']").waitFor({ timeout: 15_000 })

  // Meanwhile: a round, an adoption, a reply.
  await fatima.page.locator(".comment .body", { hasText: "Including travel?" }).waitFor({ timeout: 15_000 })
  await fatima.page.getByLabel("Answers due by").fill("2027-01-20T17:00")
  await fatima.page.getByRole("button", { name: "Open consent round" }).click()
  await fatima.page.locator('#consent[data-state="open"]').waitFor()
  for (const status of ["discussion", "consensus", "adopted"]) {
    await fatima.page.getByLabel("Move to").selectOption(status)
    await fatima.page.getByRole("button", { name: "Change status" }).click()
    await fatima.page.locator(`#status-badge[data-status="${status}"]`).waitFor()
  }
  const card = fatima.page.locator(".comment", { hasText: "Including travel?" })
  await card.getByLabel("Your reply").fill("Yes, travel too.")
  await card.getByRole("button", { name: "Reply" }).click()
  await waitSynced(fatima.page)

  // Pia comes back.
  await pia.page.reload()
  const bell = pia.page.locator("#notify-bell")
  await pia.page.locator("#notify-bell:not([data-count='0'])").waitFor({ timeout: 15_000 })
  // Three status changes, the round, the reply.
  assert.equal(await bell.getAttribute("data-count"), "5")
  await bell.click()
  const list = pia.page.locator("#notify-list")
  const opened = list.locator('li[data-kind="round-opened"][data-new="true"]')
  await opened.waitFor()
  assert.match(await opened.innerText(), /Fatima Facilitator \(Skills Think Tank\) opened a consent round on “No fees for workers”/)
  assert.match(await list.locator('li[data-kind="status"][data-new="true"]').first().innerText(), /Fatima Facilitator \(Skills Think Tank\) adopted “No fees for workers”/)
  const reply = list.locator('li[data-kind="reply"][data-new="true"]')
  assert.match(await reply.innerText(), /replied to your comment on “No fees for workers”/)
  assert.match(await reply.innerText(), /Yes, travel too\./)
  assert.equal(await list.locator('li[data-new="true"]').count(), 5)

  // The list links to the recommendation.
  await opened.getByRole("link").click()
  await pia.page.waitForURL(url => url.pathname === recPath)

  // She has looked: a reload counts nothing new, the items are still listed.
  await pia.page.reload()
  await pia.page.locator("#notify-bell[data-count='0']").waitFor({ timeout: 15_000 })
  await pia.page.locator("#notify-bell").click()
  await list.locator('li[data-kind="reply"][data-new="false"]').waitFor()
  assert.doesNotMatch(server.log(), /refused changes/, "nothing anyone did was refused")
  for (const m of [admin, fatima, pia]) await m.context.close()
})
