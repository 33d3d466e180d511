// Roles in the web app, on a secure server: the administrator sets up a
// process in the browser and invites a facilitator, two participants of
// different organisations and an observer. Each is offered what their role
// may do and nothing else: a participant creates a recommendation (accepted
// by the server, nothing refused) but cannot decide it, invite or add
// workshops; the facilitator can; the observer reads, and their client sends
// no change whatever they try.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launch, waitSynced, startSecureServer, invite, joinAs, createProcess } from "./helpers.mjs"

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

const api = async path => {
  const res = await fetch(`${server.base}${path}`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  assert.ok(res.ok, `${path}: ${res.status}`)
  return path.includes("format=markdown") ? res.text() : res.json()
}

const statusOptions = page => page.getByLabel("Move to").evaluate(select => [...select.options].map(o => o.value))

async function moveTo(page, status) {
  await page.getByLabel("Move to").selectOption(status)
  await page.getByRole("button", { name: "Change status" }).click()
  await page.locator(`#status-badge[data-status="${status}"]`).waitFor()
}

test("each role is offered what it may do; a participant's recommendation is accepted; an observer changes nothing", async () => {
  // The administrator creates the process and its workshop in the web app.
  const admin = await member(server.adminLink, "admin")
  const processId = await createProcess(admin.page, "Faire Fachkräfteeinwanderung", "Fair recruitment")

  const [facilitatorInvite, piaInvite, paulInvite, observerInvite] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Paul Partner", organisation: "Construction Union" }),
    invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Employers' Association" }),
  ])
  const [fatima, pia, paul, olga] = await Promise.all([
    member(facilitatorInvite.link, "Fatima"),
    member(piaInvite.link, "Pia"),
    member(paulInvite.link, "Paul"),
    member(observerInvite.link, "Olga"),
  ])
  for (const { page } of [fatima, pia, paul, olga]) {
    await page.waitForURL(/\/p\//)
    await page.locator("#workshops h3", { hasText: "Fair recruitment" }).waitFor()
    await page.locator("#members:not([hidden])").waitFor()
  }

  // The process page: a participant may create recommendations, nothing else.
  for (const { page } of [pia, paul]) {
    await page.getByRole("heading", { name: "New recommendation" }).waitFor()
    assert.equal(await page.getByRole("heading", { name: "Add workshop" }).count(), 0, "no workshop form for participants")
    assert.equal(await page.locator("#members form").count(), 0, "no invitation form for participants")
    assert.equal(await page.locator("#members-list button").count(), 0, "no revoke button for participants")
    assert.equal(await page.locator("#read-only-notice").count(), 0)
  }
  // The facilitator has all of it.
  await fatima.page.getByRole("heading", { name: "New recommendation" }).waitFor()
  await fatima.page.getByRole("heading", { name: "Add workshop" }).waitFor()
  await fatima.page.getByRole("button", { name: "Invite", exact: true }).waitFor()
  await fatima.page.getByRole("button", { name: "Revoke access: Olga Observer" }).waitFor()
  // The observer reads, with no form at all, and is told so.
  await olga.page.locator("#read-only-notice").waitFor()
  assert.match(await olga.page.locator("#read-only-notice").innerText(), /you can read everything but not change it/)
  assert.equal(await olga.page.locator("main form").count(), 0, "no form for observers")
  assert.equal(await olga.page.locator("#members-list button").count(), 0)

  // A participant creates a recommendation: the server accepts it.
  await pia.page.getByLabel("Title of the new recommendation").fill("Publish all recruitment fees")
  await pia.page.getByRole("button", { name: "Create", exact: true }).click()
  await pia.page.waitForURL(/\/r\//)
  const recId = new URL(pia.page.url()).pathname.split("/").pop()
  const editor = pia.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.click()
  await editor.pressSequentially("Agencies publish every fee they charge.")
  await waitSynced(pia.page)
  await fatima.page.getByRole("link", { name: "Publish all recruitment fees" }).waitFor({ timeout: 15_000 }).catch(e => {
    throw new Error(`${e.message}\nserver log:\n${server.log()}`)
  })
  const report = await api(`/api/processes/${processId}/report?format=json`)
  assert.equal(report.workshops[0].summary.total, 1, JSON.stringify(report.workshops[0].summary))

  // Participants move it along, but adopting and rejecting are not offered.
  assert.deepEqual(await statusOptions(pia.page), ["discussion"])
  await moveTo(pia.page, "discussion")
  assert.deepEqual(await statusOptions(pia.page), ["draft", "consensus"])
  await moveTo(pia.page, "consensus")
  assert.deepEqual(await statusOptions(pia.page), ["discussion"], "no adopt or reject for a participant")
  await waitSynced(pia.page)

  // The observer opens it: read-only everywhere, and nothing they try is sent.
  await olga.page.getByRole("link", { name: "Publish all recruitment fees" }).click()
  await olga.page.locator('#status-badge[data-status="consensus"]').waitFor()
  await olga.page.waitForFunction(() => window.fieldText("recommendation") === "Agencies publish every fee they charge.")
  await olga.page.locator("#read-only-notice").waitFor()
  assert.equal(await olga.page.locator("main form:visible").count(), 0, "no visible form for observers")
  assert.equal(await olga.page.getByRole("button", { name: "Comment", exact: true }).count(), 0)
  const heads = () => olga.page.evaluate(id => window.konsens.repo.handles[id].heads(), recId)
  const headsBefore = await heads()
  for (const field of ["Problem", "Recommendation", "Rationale"]) {
    const box = olga.page.getByRole("textbox", { name: field, exact: true })
    assert.equal(await box.getAttribute("contenteditable"), "false", `${field} is not editable`)
    await box.click()
    await olga.page.keyboard.type("Observers write nothing.")
    await olga.page.keyboard.press("ControlOrMeta+a")
    await olga.page.keyboard.press("ControlOrMeta+b")
    await olga.page.keyboard.press("Backspace")
  }
  const title = olga.page.getByLabel("Title", { exact: true })
  assert.equal(await title.getAttribute("readonly"), "")
  await title.click()
  await olga.page.keyboard.type(" (edited)")
  await olga.page.keyboard.press("Backspace")
  // Pia writes meanwhile: the observer's page follows, so it is live, yet sends nothing.
  await editor.press("ControlOrMeta+End")
  await editor.pressSequentially(" Online.")
  await olga.page.waitForFunction(() => window.fieldText("recommendation") === "Agencies publish every fee they charge. Online.", null, { timeout: 15_000 })
  assert.equal(await title.inputValue(), "Publish all recruitment fees")
  assert.deepEqual(olga.sentChanges, [], "the observer's client sent no change")
  assert.ok(pia.sentChanges.some(s => s.documentId === recId), "the same count sees a participant's changes")
  const headsAfter = await heads()
  const piaHeads = await pia.page.evaluate(id => window.konsens.repo.handles[id].heads(), recId)
  assert.deepEqual(headsAfter, piaHeads, "the observer has exactly what the participant has")
  assert.notDeepEqual(headsAfter, headsBefore)

  // The facilitator decides: adopt is offered, and accepted.
  await fatima.page.getByRole("link", { name: "Publish all recruitment fees" }).click()
  await fatima.page.locator('#status-badge[data-status="consensus"]').waitFor()
  assert.deepEqual(await statusOptions(fatima.page), ["discussion", "adopted", "rejected"])
  await moveTo(fatima.page, "adopted")
  await waitSynced(fatima.page)
  for (const { page } of [fatima, pia, olga]) await page.locator("#adopted-notice:not([hidden])").waitFor({ timeout: 15_000 })
  assert.deepEqual(await statusOptions(fatima.page), ["discussion", "consensus"], "a facilitator can re-open")
  assert.equal(await pia.page.locator("form", { has: pia.page.getByLabel("Move to") }).isVisible(), false, "a participant cannot undo an adoption")

  const markdown = await api(`/api/processes/${processId}/report?format=markdown`)
  assert.equal(markdown.split("Publish all recruitment fees").length - 1, 1, markdown)
  assert.match(markdown, /Agencies publish every fee they charge\. Online\./)
  const summary = (await api(`/api/processes/${processId}/report?format=json`)).workshops[0].summary
  assert.equal(summary.adopted, 1, JSON.stringify(summary))

  // Nothing anyone did was refused, and the observer is nowhere in the history.
  assert.doesNotMatch(server.log(), /refus/i, server.log())
  const history = await api(`/api/docs/${recId}/history`)
  assert.ok(history.every(c => c.verified), JSON.stringify(history))
  assert.deepEqual([...new Set(history.map(c => c.author?.name))].sort(), ["Fatima Facilitator", "Pia Participant"])
  assert.deepEqual(olga.sentChanges, [])

  for (const m of [admin, fatima, pia, paul, olga]) await m.context.close()
})
