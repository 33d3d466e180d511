// Who wrote what, in the web app on a secure server: two participants of
// different organisations type into one field; the authorship view colours
// two runs, each with the verified name of the member who typed it (the
// server maps Automerge's op ids through its actor bindings), and follows
// a later edit while it is open.
//
// DOM hooks: `#authorship-toggle`, runs `span.authored[data-author="<participant>"]`
// inside `[data-authorship-field="<field>"]`, legend `#authorship-legend li[data-author]`.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launch, waitSynced, startSecureServer, invite, mkArtifacts, artifacts, joinAs, createProcess } from "./helpers.mjs"

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

const runs = (page, field) =>
  page.evaluate(
    field => [...document.querySelectorAll(`[data-authorship-field="${field}"] span.authored`)].map(s => ({ author: s.dataset.author, text: s.textContent, title: s.title })),
    field
  )

test("the authorship view colours each participant's run with their verified name", async () => {
  const admin = await member(server.adminLink, "admin")
  const processId = await createProcess(admin.page, "Fair recruitment", "Fees")

  const [piaInvite, paulInvite] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Paul Partner", organisation: "Construction Union" }),
  ])
  const pia = await member(piaInvite.link, "Pia")
  const paul = await member(paulInvite.link, "Paul", "de-DE")
  for (const { page } of [pia, paul]) await page.locator("#workshops h3", { hasText: "Fees" }).waitFor({ timeout: 15_000 })

  // Pia starts the recommendation and writes a sentence.
  await pia.page.getByLabel("Title of the new recommendation").fill("No fees for workers")
  await pia.page.getByRole("button", { name: "Create", exact: true }).click()
  await pia.page.waitForURL(/\/r\//)
  const recPath = new URL(pia.page.url()).pathname
  const piaEditor = pia.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await piaEditor.click()
  await piaEditor.pressSequentially("Employers pay all recruitment costs.")
  await waitSynced(pia.page)

  // Paul adds a sentence at the end.
  await paul.page.goto(`${server.base}${recPath}`)
  await paul.page.waitForFunction(() => window.fieldText("recommendation") === "Employers pay all recruitment costs.", null, { timeout: 15_000 })
  const paulEditor = paul.page.getByRole("textbox", { name: "Empfehlung", exact: true })
  await paulEditor.click()
  await paulEditor.press("ControlOrMeta+End")
  await paulEditor.pressSequentially(" Agencies publish them.")
  await waitSynced(paul.page)
  await pia.page.waitForFunction(() => window.fieldText("recommendation") === "Employers pay all recruitment costs. Agencies publish them.", null, { timeout: 15_000 })

  // Pia opens the view: two runs, each with its verified author.
  await pia.page.getByRole("button", { name: "Who wrote what?" }).click()
  await pia.page.locator(`#authorship [data-authorship-field="recommendation"] span.authored[data-author="${paulInvite.participant}"]`).waitFor({ timeout: 15_000 })
  assert.deepEqual(
    (await runs(pia.page, "recommendation")).map(r => [r.author, r.text]),
    [
      [piaInvite.participant, "Employers pay all recruitment costs."],
      [paulInvite.participant, " Agencies publish them."],
    ]
  )
  const [piaRun, paulRun] = await runs(pia.page, "recommendation")
  assert.equal(piaRun.title, "Pia Participant (Migrant Workers NGO)")
  assert.equal(paulRun.title, "Paul Partner (Construction Union)")
  assert.deepEqual((await runs(pia.page, "title")).map(r => r.author), [piaInvite.participant], "Pia wrote the title")
  const legend = await pia.page.locator("#authorship-legend li").evaluateAll(lis => lis.map(li => [li.dataset.author, li.textContent]))
  assert.deepEqual(legend, [
    [piaInvite.participant, "Pia Participant (Migrant Workers NGO)"],
    [paulInvite.participant, "Paul Partner (Construction Union)"],
  ])
  const colours = await pia.page.locator('[data-authorship-field="recommendation"] span.authored').evaluateAll(spans => spans.map(s => getComputedStyle(s).borderBottomColor))
  assert.notEqual(colours[0], colours[1], "two authors, two colours")
  assert.equal(await pia.page.locator("span.authored.unverified").count(), 0, "every run is verified")

  // While the view is open, Paul's next edit shows up in it.
  await paulEditor.press("ControlOrMeta+End")
  await paulEditor.pressSequentially(" Now.")
  await waitSynced(paul.page)
  await pia.page.locator(`span.authored[data-author="${paulInvite.participant}"]`, { hasText: "Agencies publish them. Now." }).waitFor({ timeout: 15_000 })

  // Paul's German view says it in German.
  await paul.page.getByRole("button", { name: "Wer hat was geschrieben?" }).click()
  await paul.page.locator(`#authorship-legend li[data-author="${piaInvite.participant}"]`).waitFor({ timeout: 15_000 })
  await mkArtifacts()
  await pia.page.locator("#authorship").screenshot({ path: `${artifacts}/authorship.png` })
  assert.doesNotMatch(server.log(), /refused changes/, "nothing anyone did was refused")
  for (const m of [admin, pia, paul]) await m.context.close()
})
