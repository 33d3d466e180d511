// Invitations for forty organisations, history people can read, and
// organising a process, in the web app on a secure server: a facilitator
// invites three people from a CSV list, copies a link, sees who joined,
// revokes after a confirmation (the revoked member stays listed) and cannot
// remove the last facilitator; a participant's typing is one entry of the
// history in German; two versions compare word by word with paragraphs kept
// apart; an old version is restored; the facilitator renames, re-orders,
// moves and archives, which participants and observers cannot (their forced
// writes are refused by the server); the search finds a recommendation by a
// word of its text.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { launch, waitSynced, startSecureServer, invite, joinAs } from "./helpers.mjs"

let server, browser
let admin, fatima, pia, olga, processId, recId
before(async () => {
  server = await startSecureServer()
  browser = await launch()
})
after(async () => {
  for (const m of [admin, fatima, pia, olga]) await m?.context.close()
  await browser?.close()
  await server?.stop()
})

const member = (link, name, locale) => joinAs(browser, link, name, locale)

const api = async path => {
  const res = await fetch(`${server.base}${path}`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  assert.ok(res.ok, `${path}: ${res.status}`)
  return res.json()
}

const row = (page, name) => page.locator("#members-list tr.member", { hasText: name })

test("a facilitator invites a CSV list, copies links, sees who joined, revokes with a confirmation", async () => {
  admin = await member(server.adminLink, "admin")
  await admin.page.getByLabel("Process title").fill("Faire Fachkräfteeinwanderung")
  await admin.page.getByRole("button", { name: "Create", exact: true }).click()
  await admin.page.waitForURL(/\/p\//)
  processId = new URL(admin.page.url()).pathname.split("/").pop()
  for (const title of ["Anerkennung", "Bleiberecht"]) {
    await admin.page.getByLabel("Workshop title").fill(title)
    await admin.page.getByRole("button", { name: "Add workshop" }).click()
    await admin.page.locator("#workshops h3", { hasText: title }).waitFor()
  }
  await waitSynced(admin.page)
  const fatimaInvite = await invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" })
  fatima = await member(fatimaInvite.link, "Fatima")
  await fatima.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.base })
  const page = fatima.page
  await page.locator("#members:not([hidden])").waitFor()

  // Three people from a list as Excel writes it in Germany.
  await page.locator("#bulk-csv").fill("Name;Organisation;Rolle;E-Mail\nPia Participant;Caritas;Teilnehmende;pia@caritas.example\nOlga Observer;Arbeitgeberverband;Beobachtende;\nFrank Facilitator;BMAS;Moderation;\n")
  await page.getByRole("button", { name: "Invite everyone on the list" }).click()
  await page.locator("#bulk-result", { hasText: "3 people invited" }).waitFor()
  for (const name of ["Pia Participant", "Olga Observer", "Frank Facilitator"]) {
    await row(page, name).locator(".invite-link").waitFor()
    await row(page, name).getByRole("button", { name: `Copy the link for ${name}` }).waitFor()
    assert.match(await row(page, name).innerText(), /invited/)
  }
  // Role and button are apart: the role is its own element.
  assert.equal(await row(page, "Olga Observer").locator(".role-label").innerText(), "observer")

  const piaLink = await row(page, "Pia Participant").locator(".invite-link").inputValue()
  assert.match(piaLink, /\/join\//)
  await row(page, "Pia Participant").getByRole("button", { name: "Copy the link for Pia Participant" }).click()
  await row(page, "Pia Participant").locator(".copied", { hasText: "Copied" }).waitFor()
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), piaLink)

  // A list with a mistake, chosen as a file saved by Excel on German Windows
  // (Windows-1252), invites nobody and says which line.
  await page.getByLabel("CSV file").setInputFiles({ name: "liste.csv", mimeType: "text/csv", buffer: Buffer.from("name;organisation;role\r\nBora;Union;Königin\r\n", "latin1") })
  await page.waitForFunction(() => document.querySelector("#bulk-csv").value.includes("Königin"))
  await page.getByRole("button", { name: "Invite everyone on the list" }).click()
  await page.locator("#bulk-errors li", { hasText: "Line 2" }).waitFor()
  assert.match(await page.locator("#bulk-errors").innerText(), /Königin/)
  assert.equal(await row(page, "Bora").count(), 0)

  // Pia joins with her link: Fatima's list shows it.
  pia = await member(piaLink, "Pia", "de-DE")
  await row(page, "Pia Participant").and(page.locator('[data-status="joined"]')).waitFor({ timeout: 20_000 })
  assert.match(await row(page, "Pia Participant").innerText(), /joined/)

  // Revoking asks first, naming the person; cancelling changes nothing.
  await page.getByRole("button", { name: "Revoke access: Olga Observer" }).click()
  const dialog = page.locator("#revoke-dialog")
  await dialog.waitFor()
  assert.match(await dialog.innerText(), /Olga Observer \(Arbeitgeberverband\)/)
  await dialog.getByRole("button", { name: "Cancel" }).click()
  await dialog.waitFor({ state: "hidden" })
  assert.equal(await row(page, "Olga Observer").getAttribute("data-status"), "invited")
  const olgaLink = await row(page, "Olga Observer").locator(".invite-link").inputValue()
  olga = await member(olgaLink, "Olga")
  await page.getByRole("button", { name: "Revoke access: Olga Observer" }).click()
  await dialog.getByRole("button", { name: "Revoke access" }).click()
  // The revoked member stays, greyed, without a link or a button.
  await row(page, "Olga Observer").and(page.locator('[data-status="revoked"]')).waitFor()
  assert.match(await row(page, "Olga Observer").innerText(), /access revoked/)
  assert.equal(await row(page, "Olga Observer").locator("button, input").count(), 0)
  // Olga is back in as an observer for the tests below.
  const again = await invite(server, server.adminToken, processId, { role: "observer", name: "Olga Observer", organisation: "Arbeitgeberverband" })
  await olga.context.close()
  olga = await member(again.link, "Olga")

  // The last facilitator: Fatima has no button to revoke herself, and once
  // Frank is revoked the administrator's attempt on Fatima is refused.
  assert.equal(await row(page, "Fatima Facilitator").getByRole("button").count(), 0)
  await page.getByRole("button", { name: "Revoke access: Frank Facilitator" }).click()
  await dialog.getByRole("button", { name: "Revoke access" }).click()
  await row(page, "Frank Facilitator").and(page.locator('[data-status="revoked"]')).waitFor()
  await admin.page.reload()
  await admin.page.getByRole("button", { name: "Revoke access: Fatima Facilitator" }).click()
  await admin.page.locator("#revoke-dialog").getByRole("button", { name: "Revoke access" }).click()
  await admin.page.locator("#members-notice", { hasText: "last facilitator" }).waitFor()
  assert.equal(await row(admin.page, "Fatima Facilitator").getAttribute("data-status"), "joined")
})

test("history: typing is one session in German; two versions compare by paragraph; an old version is restored", async () => {
  // Fatima starts a recommendation; Pia writes two paragraphs.
  await fatima.page.getByLabel("Title of the new recommendation").fill("Schnellere Anerkennung")
  await fatima.page.getByRole("button", { name: "Create", exact: true }).click()
  await fatima.page.waitForURL(/\/r\//)
  recId = new URL(fatima.page.url()).pathname.split("/").pop()
  await waitSynced(fatima.page)
  const page = pia.page
  await page.goto(`${server.base}/r/${recId}`)
  const editor = page.getByRole("textbox", { name: "Empfehlung", exact: true })
  await editor.click()
  await editor.pressSequentially("Die Bundesregierung schafft Klarheit.")
  await editor.press("Enter")
  await editor.pressSequentially("Principle one.")
  await waitSynced(page)

  await page.getByRole("button", { name: "Verlauf anzeigen" }).click()
  const typed = page.locator("#timeline li", { hasText: "Pia Participant (Caritas) hat „Empfehlung“ bearbeitet" })
  await typed.waitFor({ timeout: 15_000 })
  assert.equal(await typed.count(), 1, "one entry for the whole sentence")
  assert.match(await typed.innerText(), /\+51 \/ −0 Zeichen/)
  assert.equal(await page.locator('#timeline li[data-field="recommendation"]').count(), 1)
  assert.ok(Number(await typed.getAttribute("data-changes")) > 40, "many changes, one entry")
  assert.doesNotMatch(await page.locator("#timeline").innerText(), /edited|status →|endorse/)

  // Compare the first version (just created) with now: paragraphs stay apart.
  await page.getByRole("button", { name: "Zwei Fassungen vergleichen" }).click()
  await page.locator("#version[open]").waitFor()
  const diff = page.locator('#compare-result dd[data-diff="recommendation"]')
  await diff.locator("ins").first().waitFor()
  const paragraphs = await diff.locator(".diff-text p").allInnerTexts()
  assert.ok(paragraphs.some(p => /Klarheit\.\s*¶?$/.test(p.trim())), JSON.stringify(paragraphs))
  assert.ok(paragraphs.some(p => p.trim().startsWith("Principle one.")), JSON.stringify(paragraphs))
  assert.ok(paragraphs.every(p => !p.includes("Klarheit.Principle")), JSON.stringify(paragraphs))
  await page.locator("#version-close").click()

  // Pia comes back later: what others did since is marked as new.
  await page.reload()
  await editor.waitFor()
  const lastVisit = await page.evaluate(id => Number(localStorage.getItem(`konsens.lastVisit.${id}`)), recId)
  assert.ok(lastVisit > 0, "the visit is remembered")
  await page.getByRole("button", { name: "Verlauf anzeigen" }).click()
  await typed.waitFor()
  assert.equal(await page.locator("#timeline li.is-new").count(), 0, "her own work is not news to her")

  // Fatima rewrites it; Pia brings her wording back.
  const fatimaEditor = fatima.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await fatimaEditor.click()
  await fatima.page.keyboard.press("ControlOrMeta+a")
  await fatima.page.keyboard.type("Alles bleibt, wie es ist.")
  await waitSynced(fatima.page)
  await page.waitForFunction(() => window.fieldText("recommendation") === "Alles bleibt, wie es ist.", null, { timeout: 15_000 })
  const fatimaEdit = page.locator("#timeline li", { hasText: "Fatima Facilitator (Skills Think Tank) hat „Empfehlung“ bearbeitet" })
  await fatimaEdit.waitFor({ timeout: 15_000 })
  assert.match(await fatimaEdit.getAttribute("class"), /is-new/)
  assert.match(await fatimaEdit.innerText(), /neu seit Ihrem letzten Besuch/)
  assert.match(await page.locator("#history-new").innerText(), /Ein Eintrag ist neu seit Ihrem letzten Besuch/)
  await typed.getByRole("button", { name: "Diese Fassung öffnen" }).click()
  await page.locator("#version[open]").waitFor()
  const inView = await page.locator("#version").evaluate(el => {
    const r = el.getBoundingClientRect()
    return r.top >= 0 && r.top < window.innerHeight
  })
  assert.ok(inView, "the version opens where the reader is")
  await page.getByRole("button", { name: "Diese Fassung von „Empfehlung“ wiederherstellen" }).click()
  await page.locator("#restore-result", { hasText: "wieder wie zuvor" }).waitFor()
  await page.waitForFunction(() => window.fieldText("recommendation") === "Die Bundesregierung schafft Klarheit.\nPrinciple one.")
  await waitSynced(page)
  await fatima.page.waitForFunction(() => window.fieldText("recommendation") === "Die Bundesregierung schafft Klarheit.\nPrinciple one.", null, { timeout: 15_000 })
})

test("the facilitator organises the process; participants and observers cannot, even by force; search finds by text", async () => {
  const page = fatima.page
  await page.goto(`${server.base}/p/${processId}`)
  await page.locator("#workshops h3", { hasText: "Anerkennung" }).waitFor()
  await page.getByRole("link", { name: "Schnellere Anerkennung" }).waitFor()

  // Rename.
  await page.getByRole("button", { name: "Rename workshop “Anerkennung”" }).click()
  await page.getByLabel("New title").fill("Anerkennung von Abschlüssen")
  await page.getByRole("button", { name: "Save" }).click()
  await page.locator("#workshops h3", { hasText: "Anerkennung von Abschlüssen" }).waitFor()
  // Re-order: Bleiberecht first.
  await page.getByRole("button", { name: "Move “Bleiberecht” up" }).click()
  await page.waitForFunction(() => document.querySelector("#workshops section.workshop")?.dataset.workshop === "bleiberecht")
  // Move the recommendation to Bleiberecht.
  await page.getByLabel("Move “Schnellere Anerkennung” to workshop").selectOption("bleiberecht")
  await page.locator('section[data-workshop="bleiberecht"] li.rec', { hasText: "Schnellere Anerkennung" }).waitFor()
  // Archive it: hidden, then shown with "show archived", and restorable.
  await page.getByRole("button", { name: "Archive “Schnellere Anerkennung”" }).click()
  await page.getByRole("link", { name: "Schnellere Anerkennung" }).waitFor({ state: "detached" })
  await page.getByLabel("Show archived").check()
  await page.locator('li.rec[data-archived="true"]', { hasText: "Schnellere Anerkennung" }).waitFor()
  await page.getByRole("button", { name: "Restore “Schnellere Anerkennung”" }).click()
  await page.locator('li.rec[data-archived="false"]', { hasText: "Schnellere Anerkennung" }).waitFor()
  await page.getByLabel("Show archived").uncheck()
  await waitSynced(page)

  const process = await api(`/api/processes/${processId}`)
  assert.deepEqual(process.workshops.map(w => w.title), ["Bleiberecht", "Anerkennung von Abschlüssen"])
  const rec = await api(`/api/docs/${recId}/sessions`).catch(e => {
    const log = server.log()
    throw new Error(`${e.message}\n${log.slice(Math.max(0, log.indexOf("panicked") - 500), log.indexOf("panicked") + 1500)}`)
  })
  assert.ok(rec.some(s => s.field === "workshop" && s.value === "bleiberecht"), JSON.stringify(rec))

  // Search: a word of the text, any case.
  await page.getByLabel("Search").fill("klarheit")
  await page.locator("#workshops li.rec", { hasText: "Schnellere Anerkennung" }).waitFor()
  await page.getByLabel("Search").fill("anerkennung")
  await page.locator("#workshops li.rec", { hasText: "Schnellere Anerkennung" }).waitFor()
  await page.getByLabel("Search").fill("Steuerreform")
  await page.locator("#search-none").waitFor()
  assert.equal(await page.locator("#workshops li.rec").count(), 0)
  await page.getByLabel("Search").fill("")

  // Participants and observers are offered none of it…
  for (const m of [pia, olga]) {
    await m.page.goto(`${server.base}/p/${processId}`)
    await m.page.locator("#workshops h3", { hasText: "Bleiberecht" }).waitFor()
    assert.equal(await m.page.locator(".structure-controls").count(), 0)
  }
  // …and the server refuses it when forced.
  const force = m =>
    m.page.evaluate(async id => {
      const handle = window.konsens.repo.handles[id]
      handle.change(d => {
        d.archivedWorkshops = { bleiberecht: true }
      })
    }, processId)
  await force(pia)
  await pia.page.locator('.refusal[data-code="structure"]').waitFor({ timeout: 15_000 })
  await force(olga)
  await olga.page.locator('.refusal[data-code="read-only"]').waitFor({ timeout: 15_000 })
  const after = await api(`/api/processes/${processId}`)
  assert.deepEqual(after.workshops.map(w => w.title), ["Bleiberecht", "Anerkennung von Abschlüssen"])
  assert.match(server.log(), /refus/i)
  await fatima.page.reload()
  await fatima.page.locator('section[data-workshop="bleiberecht"][data-archived="false"]').waitFor()
})
