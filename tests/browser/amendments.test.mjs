// Amendments in the web app, on a secure server: a participant proposes an
// amendment (a branch of the recommendation, opened in the same editor),
// invites a second participant as co-author, who co-edits it; the
// facilitator follows the diff live while the branch and the recommendation
// change, accepts two of its three changes with an official answer after
// seeing the merged preview; the recommendation then holds the two accepted
// changes and the concurrent edit, not the third. The observer sees the
// amendment and has nothing to act on; participants see no decision controls.
// A second amendment is rejected with an official answer.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launch, waitSynced, startSecureServer, invite, mkArtifacts, artifacts, joinAs, createProcess } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startSecureServer()
  browser = await launch()
})
after(async () => {
  // What the server refused, if anything: the first thing to read when this fails.
  const refused = (server?.log() ?? "").split("\n").filter(l => /refus/i.test(l))
  if (refused.length) console.error(refused.slice(0, 10).join("\n"))
  await browser?.close()
  await server?.stop()
})

const member = (link, name, locale) => joinAs(browser, link, name, locale)

const recommendationEditor = page => page.getByRole("textbox", { name: /^(Recommendation|Empfehlung)$/ })
const text = page => page.evaluate(() => window.fieldText("recommendation"))
const waitText = (page, expected) => page.waitForFunction(want => window.fieldText("recommendation") === want, expected, { timeout: 15_000 })
const editable = page => page.locator('[data-field="recommendation"][contenteditable="true"]').waitFor({ timeout: 15_000 })

/** Type `words` at the end of paragraph `n` of the recommendation field. */
async function appendTo(page, n, words) {
  const editor = recommendationEditor(page)
  await editor.locator("p").nth(n).click()
  await page.keyboard.press("End")
  await page.keyboard.type(words)
}

const ORIGINAL = ["Agencies publish every fee.", "Workers never pay recruitment costs.", "Employers report each placement."]

test("an amendment: proposed, co-edited, followed live, two of three changes accepted", async () => {
  const admin = await member(server.adminLink, "admin")
  const processId = await createProcess(admin.page, "Fair skilled immigration", "Fair recruitment")

  const [fatimaInvite, piaInvite, paulInvite, olgaInvite] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Paul Partner", organisation: "Construction Union" }),
    invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Employers' Association" }),
  ])
  const fatima = await member(fatimaInvite.link, "Fatima")
  const pia = await member(piaInvite.link, "Pia")
  const paul = await member(paulInvite.link, "Paul")
  const olga = await member(olgaInvite.link, "Olga", "de-DE")
  for (const { page } of [fatima, pia, paul, olga]) {
    await page.waitForURL(/\/p\//)
    await page.locator("#workshops h3", { hasText: "Fair recruitment" }).waitFor()
  }

  // The facilitator writes a recommendation of three paragraphs; everyone opens it.
  await fatima.page.getByLabel("Title of the new recommendation").fill("Publish all recruitment fees")
  await fatima.page.getByRole("button", { name: "Create", exact: true }).click()
  await fatima.page.waitForURL(/\/r\//)
  const recPath = new URL(fatima.page.url()).pathname
  const recId = recPath.split("/").pop()
  const editor = recommendationEditor(fatima.page)
  await editor.click()
  for (const [i, line] of ORIGINAL.entries()) {
    if (i > 0) await fatima.page.keyboard.press("Enter")
    await fatima.page.keyboard.type(line)
  }
  await waitSynced(fatima.page)
  for (const { page } of [pia, paul, olga]) {
    await page.goto(`${server.base}${recPath}`)
    await waitText(page, ORIGINAL.join("\n"))
    await page.locator("#amendments").waitFor()
  }
  assert.equal(await olga.page.locator("#amend-propose").isVisible(), false, "observers propose no amendment")

  // Pia proposes an amendment: the branch opens in the same editor, with a banner and a way back.
  await pia.page.getByLabel("What should the amendment change?").fill("Make fees visible and binding")
  await pia.page.getByRole("button", { name: "Propose an amendment" }).click()
  await pia.page.waitForURL(url => url.pathname.startsWith("/r/") && !url.pathname.endsWith(recId))
  const branchPath = new URL(pia.page.url()).pathname
  const branchId = branchPath.split("/").pop()
  await pia.page.locator("#amendment-banner", { hasText: "Amendment to “Publish all recruitment fees”" }).waitFor()
  await waitText(pia.page, ORIGINAL.join("\n"))
  await editable(pia.page)
  await appendTo(pia.page, 0, " Fees are listed online.")
  await appendTo(pia.page, 2, " Reports are monthly.")
  await waitSynced(pia.page)

  // Everyone sees the amendment on the recommendation, with its author's verified name.
  for (const { page } of [fatima, paul, olga]) {
    const card = page.locator(`.amendment[data-amendment="${branchId}"]`)
    await card.locator(".amend-diff[data-hunks='2']").waitFor({ timeout: 15_000 })
    assert.match(await card.locator(".amend-meta").innerText(), /Pia Participant \(Migrant Workers NGO\)/)
  }

  // Paul may not edit the branch until Pia invites him.
  await paul.page.locator(`.amendment[data-amendment="${branchId}"] .amend-open`).click()
  await paul.page.waitForURL(url => url.pathname === branchPath)
  await paul.page.locator("#amendment-readonly").waitFor()
  assert.equal(await paul.page.locator('[data-field="recommendation"]').getAttribute("contenteditable"), "false")
  await pia.page.getByLabel("Invite a co-author").selectOption({ label: "Paul Partner (Construction Union)" })
  await pia.page.getByRole("button", { name: "Invite", exact: true }).click()
  await waitSynced(pia.page)
  await editable(paul.page)
  assert.equal(await paul.page.locator("#amendment-readonly").count(), 0)

  // The facilitator follows the diff while Paul co-edits the branch.
  const fatimaCard = fatima.page.locator(`.amendment[data-amendment="${branchId}"]`)
  await appendTo(paul.page, 1, " No exceptions.")
  await waitSynced(paul.page)
  // Paul's keystrokes reach Fatima as they come (a first message may hold
  // only "No"): wait for the whole insertion, not only for its hunk.
  await fatimaCard.locator(".amend-diff ins", { hasText: "No exceptions." }).waitFor({ timeout: 15_000 })
  await fatimaCard.locator(".amend-diff[data-hunks='3']").waitFor({ timeout: 15_000 })
  assert.deepEqual((await fatimaCard.locator(".amend-diff ins").allInnerTexts()).map(s => s.trim()), ["Fees are listed online.", "No exceptions.", "Reports are monthly."])
  assert.match(await fatimaCard.locator(".amend-coauthors").innerText(), /Paul Partner \(Construction Union\)/)

  // … and while Paul edits the recommendation itself: the edit is on both
  // sides of the diff, never shown as removed, and the three changes stay.
  await paul.page.locator("#amendment-back").click()
  await paul.page.waitForURL(url => url.pathname === recPath)
  await editable(paul.page)
  await recommendationEditor(paul.page).locator("p").nth(0).click()
  await paul.page.keyboard.press("Home")
  await paul.page.keyboard.type("All ")
  await waitSynced(paul.page)
  await fatimaCard.locator('.amend-diff [data-diff="recommendation"]', { hasText: "All Agencies publish every fee." }).waitFor({ timeout: 15_000 })
  await fatimaCard.locator(".amend-diff[data-hunks='3']").waitFor()
  assert.equal(await fatimaCard.locator(".amend-diff del").count(), 0, "the concurrent edit is not shown as removed")
  await fatimaCard.getByRole("button", { name: "Side by side" }).click()
  assert.match(await fatimaCard.locator(".amend-before").innerText(), /All Agencies publish every fee\.\s+Workers never pay recruitment costs\./)
  assert.match(await fatimaCard.locator(".amend-after").innerText(), /All Agencies publish every fee\. Fees are listed online\.\s+Workers never pay recruitment costs\. No exceptions\./)
  await fatimaCard.getByRole("button", { name: "Inline" }).click()

  // Paul's organisation supports the amendment; everyone sees it.
  const paulCard = paul.page.locator(`.amendment[data-amendment="${branchId}"]`)
  await paulCard.locator(".amend-endorse select").selectOption("support")
  await paulCard.getByRole("button", { name: "State position" }).click()
  await waitSynced(paul.page)
  await olga.page.locator(`.amendment[data-amendment="${branchId}"] .amend-endorsements li[data-organisation="Construction Union"][data-stance="support"]`).waitFor({ timeout: 15_000 })

  // Participants see no decision controls; the observer sees the amendment and nothing to act on.
  for (const { page } of [pia, paul]) {
    if (new URL(page.url()).pathname !== recPath) await page.goto(`${server.base}${recPath}`)
    await page.locator(`.amendment[data-amendment="${branchId}"] .amend-diff[data-hunks='3']`).waitFor({ timeout: 15_000 })
    assert.equal(await page.locator(".amend-decide").isVisible(), false, "no decision for participants")
    assert.equal(await page.locator('.amend-decide button:visible, input[data-hunk]:visible').count(), 0)
  }
  const olgaCard = olga.page.locator(`.amendment[data-amendment="${branchId}"]`)
  await olgaCard.locator(".amend-diff[data-hunks='3']").waitFor({ timeout: 15_000 })
  assert.match(await olgaCard.locator(".amend-state").innerText(), /Offen/)
  assert.equal(await olga.page.locator("#amendments :is(input, textarea, select):visible").count(), 0, "no fields for the observer")
  assert.deepEqual(await olga.page.locator("#amendments button:visible").evaluateAll(bs => bs.map(b => b.className)), ["amend-view", "amend-view"], "only the view switch")

  // The facilitator takes two of the three changes; the preview comes first.
  await fatimaCard.locator('input[data-hunk="recommendation:2"]').uncheck()
  await fatimaCard.getByLabel("Official answer").fill("Published fees and no exceptions: yes. Monthly reports would burden small employers.")
  await fatimaCard.getByRole("button", { name: "Accept selected" }).click()
  const preview = fatimaCard.locator(".amend-preview")
  await preview.waitFor()
  assert.match(await preview.innerText(), /2 of 3 changes are accepted/)
  const expected = ["All Agencies publish every fee. Fees are listed online.", "Workers never pay recruitment costs. No exceptions.", "Employers report each placement."]
  assert.equal((await preview.locator('[data-preview="recommendation"] p').allInnerTexts()).join("\n"), expected.join("\n"))
  assert.equal(await text(fatima.page), ["All Agencies publish every fee.", ORIGINAL[1], ORIGINAL[2]].join("\n"), "nothing changes before confirming")
  await mkArtifacts()
  await fatimaCard.screenshot({ path: `${artifacts}/amendment-preview.png` })
  await preview.getByRole("button", { name: "Confirm and accept" }).click()
  await waitSynced(fatima.page)

  // Everyone sees the result: two changes taken, the third left out, the concurrent edit kept.
  for (const { page } of [fatima, pia, paul, olga]) {
    await waitText(page, expected.join("\n"))
    const card = page.locator(`.amendment[data-amendment="${branchId}"][data-state="accepted"]`)
    await card.waitFor({ timeout: 15_000 })
    assert.equal(await card.locator(".amend-official-answer").innerText(), "Published fees and no exceptions: yes. Monthly reports would burden small employers.")
  }
  assert.match(await olga.page.locator(`.amendment[data-amendment="${branchId}"] .amend-hunk-counts`).innerText(), /Übernommene Änderungen: 2; nicht übernommen: 1/)
  await olga.page.locator(`.amendment[data-amendment="${branchId}"]`).screenshot({ path: `${artifacts}/amendment-accepted-de.png` })
  const decision = await fatima.page.evaluate(async ([id, branch]) => {
    const doc = (await window.konsens.repo.find(`automerge:${id}`)).doc()
    const d = doc.amendments[branch].decision
    return { state: String(d.state), accepted: d.accepted.map(String), rejected: d.rejected.map(String), marked: "amendment" in doc }
  }, [recId, branchId])
  assert.deepEqual(decision, { state: "accepted", accepted: ["recommendation:0", "recommendation:1"], rejected: ["recommendation:2"], marked: false })

  // The branch is closed now: even its author cannot edit it any more.
  await pia.page.goto(`${server.base}${branchPath}`)
  await pia.page.locator("#amendment-readonly").waitFor({ timeout: 15_000 })

  // A second amendment is rejected with an official answer: the text stays as it is.
  await paul.page.getByLabel("What should the amendment change?").fill("Drop the reporting duty")
  await paul.page.getByRole("button", { name: "Propose an amendment" }).click()
  await paul.page.locator("#amendment-banner").waitFor()
  const secondId = new URL(paul.page.url()).pathname.split("/").pop()
  await editable(paul.page)
  await appendTo(paul.page, 2, " Only once a year.")
  await waitSynced(paul.page)
  const secondCard = fatima.page.locator(`.amendment[data-amendment="${secondId}"]`)
  await secondCard.locator(".amend-diff[data-hunks='1']").waitFor({ timeout: 15_000 })
  await secondCard.getByRole("button", { name: "Reject" }).click()
  assert.match(await secondCard.locator(".amend-decide .error").innerText(), /official answer/, "no rejection without an answer")
  await secondCard.getByLabel("Official answer").fill("The reporting duty stays as adopted in the workshop.")
  await secondCard.getByRole("button", { name: "Reject" }).click()
  await waitSynced(fatima.page)
  for (const { page } of [fatima, olga]) {
    const card = page.locator(`.amendment[data-amendment="${secondId}"][data-state="rejected"]`)
    await card.waitFor({ timeout: 15_000 })
    assert.equal(await card.locator(".amend-official-answer").innerText(), "The reporting duty stays as adopted in the workshop.")
    assert.equal(await text(page), expected.join("\n"), "a rejection leaves the text as it is")
  }
  assert.match(await olga.page.locator(`.amendment[data-amendment="${secondId}"] .amend-state`).innerText(), /Abgelehnt/)

  // The accepted words are still their author's: the authorship view (from
  // the server's actor bindings) credits Pia with them, not the facilitator
  // who accepted.
  await fatima.page.locator("#authorship-toggle").click()
  const piaInLegend = fatima.page.locator("#authorship-legend li[data-author]", { hasText: "Pia Participant" })
  await piaInLegend.waitFor({ timeout: 15_000 })
  const piaId = await piaInLegend.getAttribute("data-author")
  const piasRuns = await fatima.page.locator(`[data-authorship-field="recommendation"] span.authored[data-author="${piaId}"]`).allInnerTexts()
  assert.ok(piasRuns.some(r => r.includes("Fees are listed online.")), `Pia's runs: ${JSON.stringify(piasRuns)}`)

  // The report shows the result: the accepted wording, and both decisions with their official answers.
  const report = await fatima.page.evaluate(async id => {
    const response = await fetch(`/api/processes/${id}/report?format=markdown&kind=interim&lang=en`)
    return response.ok ? response.text() : `HTTP ${response.status}`
  }, processId)
  assert.match(report, /Fees are listed online\./)
  assert.doesNotMatch(report, /Reports are monthly/)
  assert.match(report, /\*\*Make fees visible and binding\*\* \(Migrant Workers NGO\): accepted\. Facilitators' answer: Published fees and no exceptions: yes\./)
  assert.match(report, /\*\*Drop the reporting duty\*\* \(Construction Union\): rejected\. Facilitators' answer: The reporting duty stays as adopted in the workshop\./)

  assert.deepEqual(olga.sentChanges, [], "the observer's client sent no change")
  assert.doesNotMatch(server.log(), /refused changes/, "nothing anyone did was refused")
  for (const m of [admin, fatima, pia, paul, olga]) await m.context.close()
})
