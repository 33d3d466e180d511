// A consent round in the web app, on a secure server: the facilitator opens
// a round on a recommendation; two participants of different organisations
// answer (one changes its answer); the observer follows the tally live but
// has nothing to press and sends nothing; the facilitator closes the round
// with an outcome, which everyone then sees with the answers and reasons.
// Two of the four work in German.
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

const count = (page, answer, n) => page.locator(`#consent-tally li[data-answer="${answer}"][data-count="${n}"]`).waitFor({ timeout: 15_000 })

test("a consent round: opened, answered and changed, followed live by an observer, closed with an outcome", async () => {
  const admin = await member(server.adminLink, "admin")
  const processId = await createProcess(admin.page, "Faire Fachkräfteeinwanderung", "Fair recruitment")

  const [fatimaInvite, piaInvite, paulInvite, olgaInvite] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Paul Partner", organisation: "Construction Union" }),
    invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Employers' Association" }),
  ])
  const fatima = await member(fatimaInvite.link, "Fatima")
  const pia = await member(piaInvite.link, "Pia", "de-DE")
  const paul = await member(paulInvite.link, "Paul")
  const olga = await member(olgaInvite.link, "Olga", "de-DE")
  for (const { page } of [fatima, pia, paul, olga]) {
    await page.waitForURL(/\/p\//)
    await page.locator("#workshops h3", { hasText: "Fair recruitment" }).waitFor()
  }

  // The facilitator writes a recommendation; everyone opens it.
  await fatima.page.getByLabel("Title of the new recommendation").fill("Publish all recruitment fees")
  await fatima.page.getByRole("button", { name: "Create", exact: true }).click()
  await fatima.page.waitForURL(/\/r\//)
  const recPath = new URL(fatima.page.url()).pathname
  const editor = fatima.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.click()
  await editor.pressSequentially("Agencies publish every fee they charge.")
  await waitSynced(fatima.page)
  for (const { page } of [pia, paul, olga]) {
    await page.goto(`${server.base}${recPath}`)
    await page.waitForFunction(() => window.fieldText("recommendation") === "Agencies publish every fee they charge.", null, { timeout: 15_000 })
    await page.locator('#consent[data-state="none"]').waitFor()
  }
  // Before a round, nobody can answer; only the facilitator can open one.
  assert.equal(await pia.page.locator("#consent-answer-form").isVisible(), false)
  assert.equal(await pia.page.locator("#consent-open-form").isVisible(), false, "participants do not open rounds")
  assert.equal(await olga.page.locator("#consent button:visible").count(), 0)

  // The facilitator opens a round with a question and a deadline.
  await fatima.page.getByLabel("Question or proposal").fill("Can your organisation support this wording?")
  await fatima.page.getByLabel("Answers due by").fill("2027-01-20T17:00")
  await fatima.page.getByRole("button", { name: "Open consent round" }).click()
  await fatima.page.locator('#consent[data-state="open"]').waitFor()
  await waitSynced(fatima.page)
  for (const { page } of [fatima, pia, paul, olga]) {
    await page.locator('#consent[data-state="open"]').waitFor({ timeout: 15_000 })
    await page.locator("#consent .consent-question", { hasText: "Can your organisation support this wording?" }).waitFor()
  }
  assert.match(await pia.page.locator("#consent .consent-deadline").innerText(), /20\. Januar 2027/, "the deadline in German")
  assert.match(await fatima.page.locator("#consent-pending").innerText(), /Construction Union and Migrant Workers NGO/)

  // Pia agrees (in German); Paul blocks, then changes to a disagreement.
  await pia.page.locator("#consent-answer-form:not([hidden])").waitFor()
  await pia.page.getByLabel("Begründung (optional)").fill("Transparenz hilft allen.")
  await pia.page.getByRole("button", { name: "Zustimmung", exact: true }).click()
  await pia.page.locator('#consent-answer-form button[data-answer="agree"][aria-pressed="true"]').waitFor()
  await waitSynced(pia.page)
  await paul.page.getByLabel("Reason (optional)").fill("Too costly for small employers.")
  await paul.page.getByRole("button", { name: "Block", exact: true }).click()
  await waitSynced(paul.page)
  await count(fatima.page, "block", 1)
  await count(olga.page, "block", 1)
  await paul.page.getByLabel("Reason (optional)").fill("Costly, but we will not stand in the way.")
  await paul.page.getByRole("button", { name: "Disagree", exact: true }).click()
  await paul.page.locator('#consent-answer-form button[data-answer="disagree"][aria-pressed="true"]').waitFor()
  await waitSynced(paul.page)

  // The tally, live everywhere; nobody is left to answer.
  for (const { page } of [fatima, pia, paul, olga]) {
    await count(page, "agree", 1)
    await count(page, "disagree", 1)
    await count(page, "block", 0)
    await count(page, "abstain", 0)
  }
  assert.match(await fatima.page.locator("#consent-pending").innerText(), /Every organisation has answered/)
  assert.match(await olga.page.locator("#consent-pending").innerText(), /Alle Organisationen haben geantwortet/)
  assert.match(await olga.page.locator("#consent-tally").innerText(), /Zustimmung: 1/)

  await mkArtifacts()
  await fatima.page.locator("#consent").screenshot({ path: `${artifacts}/consent-open.png` })
  await pia.page.locator("#consent").screenshot({ path: `${artifacts}/consent-open-de.png` })

  // The observer sees everything and has nothing to press.
  assert.equal(await olga.page.locator("#consent button:visible").count(), 0, "no buttons for the observer")
  assert.equal(await olga.page.locator("#consent-answer-form").isVisible(), false)
  assert.equal(await olga.page.locator("#consent-close-form").isVisible(), false)
  assert.equal(await pia.page.locator("#consent-close-form").isVisible(), false, "participants do not close rounds")
  assert.equal(await fatima.page.locator("#consent-answer-form").isVisible(), false, "the facilitator moderates and does not answer")

  // The facilitator closes with an outcome; everyone sees it with the reasons.
  await fatima.page.getByLabel("Outcome").fill("Consensus; the Construction Union's concern about costs is recorded.")
  await fatima.page.getByRole("button", { name: "Close round" }).click()
  await waitSynced(fatima.page)
  for (const { page } of [fatima, pia, paul, olga]) {
    await page.locator('#consent[data-state="closed"]').waitFor({ timeout: 15_000 })
    assert.equal(await page.locator("#consent-outcome").innerText(), "Consensus; the Construction Union's concern about costs is recorded.")
    assert.match(await page.locator('#consent li[data-organisation="Construction Union"]').innerText(), /Costly, but we will not stand in the way\./)
    assert.match(await page.locator('#consent li[data-organisation="Migrant Workers NGO"]').innerText(), /Transparenz hilft allen\./)
    assert.equal(await page.locator("#consent-answer-form").isVisible(), false, "no answers after the close")
  }
  assert.match(await pia.page.locator('#consent li[data-organisation="Construction Union"]').innerText(), /Ablehnung/)
  await olga.page.locator("#consent").screenshot({ path: `${artifacts}/consent-closed-de.png` })
  await fatima.page.getByRole("button", { name: "Open consent round" }).waitFor()

  assert.deepEqual(olga.sentChanges, [], "the observer's client sent no change")
  assert.doesNotMatch(server.log(), /refused changes/, "nothing anyone did was refused")
  for (const m of [admin, fatima, pia, paul, olga]) await m.context.close()
})
