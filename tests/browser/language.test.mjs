// The app speaks the member's language as people write it: a German browser
// gets natural German (roles as people, real plurals instead of "(en)",
// dates like "20. Januar 2027"), an English one English; the demo process
// is German by default and English with --demo-lang en; a verified member's
// name and organisation are shown, not offered for editing; and an invitation
// link that does not work answers with a styled page in the same language.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { launch, startSecureServer, invite, joinLink } from "./helpers.mjs"

let browser
const servers = []
after(async () => {
  await browser?.close()
  for (const s of servers) await s.stop()
})

// A bracket plural glued to a word: "Positionierung(en)", "offene(r)", "Kommentar(e)".
const BRACKET_PLURAL = /\p{L}\((en|e|n|r|s|innen|in)\)/u
const GERMAN_DATE = /\b\d{1,2}\. (Januar|Februar|März|April|Mai|Juni|Juli|August|September|Oktober|November|Dezember) \d{4}\b/
const ENGLISH_DATE = /\b\d{1,2} (January|February|March|April|May|June|July|August|September|October|November|December) \d{4}\b/
const ISO_DATE = /\b\d{4}-\d{2}-\d{2}\b/

async function demoServer(extra) {
  const server = await startSecureServer(["--demo", ...extra])
  servers.push(server)
  // The server's log arrives on its own pipe, possibly after the line the
  // start waited for: look until it is there (or 10 s have passed).
  const logged = () => server.log().match(/demo process ready url=(\/p\/\S+)/)?.[1]
  const deadline = Date.now() + 10_000
  while (!logged() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
  const path = logged()
  assert.ok(path, "the server logs the demo process's path")
  return { server, processId: path.slice(3) }
}

/** A member of the demo process, joined through their link in a browser of `locale`. */
async function member(server, processId, locale, who) {
  const invited = await invite(server, server.adminToken, processId, who)
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.on("pageerror", err => console.error(`[${who.name}] page error:`, err))
  return { context, page, link: invited.link ?? `${server.base}/join/${invited.token}` }
}

const bodyText = page => page.evaluate(() => document.body.innerText)

async function assertNoBracketPlurals(page, screen) {
  const text = await bodyText(page)
  assert.doesNotMatch(text, BRACKET_PLURAL, `${screen}: a bracket plural in\n${text}`)
  return text
}

/** The invalid-link page: in `lang`, styled by the app's stylesheet, saying what to do. */
async function assertInvalidLinkPage(page, base, lang, { title, whatToDo }) {
  for (const path of ["/join/not-a-valid-token", "/join/", "/join/cut/off/link"]) {
    const response = await page.goto(`${base}${path}`)
    assert.equal(response.status(), 401, path)
    assert.equal(await page.evaluate(() => document.documentElement.lang), lang)
    assert.equal(await page.locator("h1").innerText(), title)
    assert.match(await bodyText(page), whatToDo)
    // The app's stylesheet is applied: the card has its rounded border and white background.
    const card = await page.locator("#join-invalid").evaluate(el => {
      const s = getComputedStyle(el)
      return { radius: s.borderTopLeftRadius, background: s.backgroundColor, font: getComputedStyle(document.body).fontFamily }
    })
    assert.deepEqual({ radius: card.radius, background: card.background }, { radius: "8px", background: "rgb(255, 255, 255)" }, path)
    assert.match(card.font, /system-ui/)
  }
}

test("German: roles, plurals, dates, the identity card, the demo and the invalid link page", async () => {
  browser ??= await launch()
  const { server, processId } = await demoServer([])
  // Another member of each role, so the member list names them.
  await invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Rechnungshof" })
  const pia = await member(server, processId, "de-DE", { role: "participant", name: "Pia Teilnehmerin", organisation: "Netzwerk Faire Migration" })
  const { page } = pia

  // The invitation page names the role as people do.
  await page.goto(pia.link)
  assert.match(await page.locator("#join-page").innerText(), /Rolle: Teilnehmende\./)
  await page.locator("#join").click()
  await page.waitForURL(/\/p\//)

  // The demo process, in German, with real plurals.
  await page.locator("#workshops section.workshop").nth(5).waitFor({ timeout: 15_000 })
  const titles = await page.locator("#workshops h3").allInnerTexts()
  assert.deepEqual(titles, [
    "Finanzierungsmodelle",
    "Sprache und Integration",
    "Anerkennung ausländischer Berufsqualifikationen",
    "Faire Anwerbung",
    "Digitale Innovation",
    "Green Skills",
  ])
  await page.locator("#workshops li.rec").nth(5).waitFor({ timeout: 15_000 })
  await page.locator("#members-list li", { hasText: "Olga Observer" }).waitFor()
  const processText = await assertNoBracketPlurals(page, "process page")
  assert.match(processText, /1 offener Kommentar\b/)
  assert.match(processText, /3 Positionierungen\b/)
  assert.match(processText, /1 Positionierung\b/)
  const members = await page.locator("#members-list").innerText()
  assert.match(members, /Pia Teilnehmerin \(Netzwerk Faire Migration\) · Teilnehmende/)
  assert.match(members, /Olga Observer \(Rechnungshof\) · Beobachtende/)
  assert.doesNotMatch(members, /Teilnahme|Beobachtung/)
  const statuses = await page.getByLabel("Nach Status filtern").locator("option").allInnerTexts()
  assert.deepEqual(statuses, ["Alle", "Entwurf", "Diskussion", "Konsens", "Angenommen", "Abgelehnt"])

  // A recommendation: breadcrumb process › workshop › recommendation, German dates, the comment's actions.
  await page.getByRole("link", { name: "Kosten der internationalen Anwerbung gemeinsam tragen" }).click()
  await page.getByRole("textbox", { name: "Empfehlung", exact: true }).waitFor()
  const crumbs = page.getByRole("navigation", { name: "Sie sind hier" })
  await crumbs.getByRole("link", { name: "Finanzierungsmodelle" }).waitFor()
  assert.deepEqual(
    (await crumbs.locator("li").allInnerTexts()).map(s => s.trim()),
    ["Alle Prozesse", "Fachkräfteeinwanderung: von der Anwerbung bis zum Verbleib (Demo)", "Finanzierungsmodelle", "Kosten der internationalen Anwerbung gemeinsam tragen"]
  )
  assert.equal(await crumbs.getByRole("link", { name: "Finanzierungsmodelle" }).getAttribute("href"), `/p/${processId}#ws-finanzierungsmodelle`)
  await page.locator(".comment", { hasText: "Wer trägt das Risiko" }).waitFor()
  await page.getByText("Statusverlauf").click()
  const recText = await assertNoBracketPlurals(page, "recommendation page")
  assert.match(recText, GERMAN_DATE, recText)
  assert.doesNotMatch(recText, ISO_DATE)
  assert.equal(await page.locator(".comment").getByRole("button", { name: "Als erledigt markieren" }).count(), 1)
  for (const english of ["Loading", "Syncing", "Welcome", "Resolve", "endorsement", "comment"]) assert.ok(!recText.includes(english), `"${english}" in\n${recText}`)

  // The identity card: the server's name and organisation, read only, and who can change them.
  await page.locator("#identity").click()
  await page.getByRole("heading", { name: "Angemeldet als" }).waitFor()
  assert.equal(await page.locator("#identity-name").innerText(), "Pia Teilnehmerin")
  assert.equal(await page.locator("#identity-organisation").innerText(), "Netzwerk Faire Migration")
  assert.equal(await page.locator("#identity-role").innerText(), "Teilnehmende")
  assert.match(await page.locator("#identity-note").innerText(), /Moderation Ihres Prozesses/)
  assert.equal(await page.locator("main input").count(), 0, "nothing to edit")
  assert.doesNotMatch(await bodyText(page), /Willkommen/)
  await page.getByRole("button", { name: "Schließen" }).click()
  await page.getByRole("textbox", { name: "Empfehlung", exact: true }).waitFor()

  // The start page.
  await page.getByRole("link", { name: "Alle Prozesse" }).click()
  await page.locator("#process-list a").first().waitFor()
  await assertNoBracketPlurals(page, "start page")

  await assertInvalidLinkPage(page, server.base, "de", {
    title: "Dieser Einladungslink funktioniert nicht",
    whatToDo: /Moderation Ihres Prozesses und lassen Sie sich einen neuen persönlichen Link schicken/,
  })
  await pia.context.close()
})

test("English: roles, plurals, dates, the identity card, the demo and the invalid link page", async () => {
  browser ??= await launch()
  const { server, processId } = await demoServer(["--demo-lang", "en"])
  await invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Audit Office" })
  const pia = await member(server, processId, "en-GB", { role: "participant", name: "Pia Participant", organisation: "Fair Migration Network" })
  const { page } = pia
  await page.goto(pia.link)
  assert.match(await page.locator("#join-page").innerText(), /as participant\./)
  await page.locator("#join").click()
  await page.waitForURL(/\/p\//)

  await page.locator("#workshops li.rec").nth(5).waitFor({ timeout: 15_000 })
  assert.equal(await page.locator("#workshops h3").first().innerText(), "Financing models")
  await page.locator("#members-list li", { hasText: "Olga Observer" }).waitFor()
  const processText = await assertNoBracketPlurals(page, "process page")
  assert.match(processText, /1 open comment\b/)
  assert.match(processText, /3 positions\b/)
  assert.match(processText, /1 position\b/)
  assert.match(await page.locator("#members-list").innerText(), /Olga Observer \(Audit Office\) · observer/)

  await page.getByRole("link", { name: "Share the cost of international recruitment" }).click()
  await page.getByRole("textbox", { name: "Recommendation", exact: true }).waitFor()
  await page.getByRole("navigation", { name: "You are here" }).getByRole("link", { name: "Financing models" }).waitFor()
  await page.locator(".comment", { hasText: "Who carries the risk" }).waitFor()
  await page.getByText("Status history").click()
  const recText = await assertNoBracketPlurals(page, "recommendation page")
  assert.match(recText, ENGLISH_DATE, recText)
  assert.doesNotMatch(recText, ISO_DATE)
  assert.equal(await page.locator(".comment").getByRole("button", { name: "Mark as resolved" }).count(), 1)

  await page.locator("#identity").click()
  await page.getByRole("heading", { name: "Signed in as" }).waitFor()
  assert.equal(await page.locator("#identity-organisation").innerText(), "Fair Migration Network")
  assert.match(await page.locator("#identity-note").innerText(), /ask the facilitators of your process for a new invitation/)
  assert.equal(await page.locator("main input").count(), 0)

  await assertInvalidLinkPage(page, server.base, "en", {
    title: "This invitation link does not work",
    whatToDo: /ask the facilitators of your process for a new personal link/,
  })
  await pia.context.close()
})
