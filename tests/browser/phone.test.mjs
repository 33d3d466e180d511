// The app on a phone (390 × 844): a one-line header of at most 56 px whose
// name is cut with an ellipsis (or fits), never a horizontal scrollbar on
// any main screen, and the editor works by touch-sized typing.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { launch, startSecureServer, invite, joinLink, fieldTextScript } from "./helpers.mjs"

let browser, server, processId
after(async () => {
  await browser?.close()
  await server?.stop()
})

/** What a phone user would notice is wrong with the current screen, if anything. */
async function layout(page) {
  return page.evaluate(() => {
    const top = document.getElementById("top")
    const label = document.getElementById("identity-label")
    const style = label ? getComputedStyle(label) : null
    const rect = label?.getBoundingClientRect()
    return {
      header: top ? top.getBoundingClientRect().height : 0,
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
      bodyScrollWidth: document.body.scrollWidth,
      // The deepest element reaching past the screen's right edge, to name in a failure.
      widest: (() => {
        let found = null
        for (const el of document.body.querySelectorAll("*")) {
          if (el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5) found = el
        }
        return found ? `${found.tagName.toLowerCase()}${found.id ? "#" + found.id : ""}${found.className && typeof found.className === "string" ? "." + found.className.trim().split(/\s+/).join(".") : ""} “${(found.textContent ?? "").trim().slice(0, 40)}”` : null
      })(),
      name: label
        ? {
            fits: label.scrollWidth <= label.clientWidth,
            ellipsis: style.textOverflow === "ellipsis" && style.whiteSpace === "nowrap" && style.overflow === "hidden",
            inside: rect.right <= window.innerWidth && rect.left >= 0,
            height: rect.height,
          }
        : null,
    }
  })
}

async function assertPhoneLayout(page, screen) {
  const l = await layout(page)
  assert.ok(l.scrollWidth <= l.clientWidth && l.bodyScrollWidth <= l.clientWidth, `${screen}: scrolls sideways (${l.scrollWidth}/${l.bodyScrollWidth} > ${l.clientWidth}; ${l.widest})`)
  if (l.name) {
    assert.ok(l.header > 0 && l.header <= 56, `${screen}: header is ${l.header}px high`)
    assert.ok(l.name.fits || l.name.ellipsis, `${screen}: the name is cut without an ellipsis`)
    assert.ok(l.name.inside, `${screen}: the name runs out of the screen`)
    assert.ok(l.name.height < 30, `${screen}: the name wraps (${l.name.height}px)`)
  }
  return l
}

test("every main screen fits a 390 px phone", async () => {
  browser = await launch()
  server = await startSecureServer(["--demo"])
  processId = server.log().match(/demo process ready url=\/p\/(\S+)/)?.[1]
  assert.ok(processId)
  // A facilitator with a long name and organisation: sees members and the invitation form too.
  const { link } = await invite(server, server.adminToken, processId, {
    role: "facilitator",
    name: "Dr. Maximiliane Mustermann-Schulze",
    organisation: "Bundesministerium für Arbeit und Soziales",
  })
  const context = await browser.newContext({ locale: "de-DE", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, acceptDownloads: true })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  page.on("pageerror", err => console.error("page error:", err))
  await page.goto(link)
  await assertPhoneLayout(page, "invitation page")
  await joinLink(page, link)

  // Process page: workshops, filters, members with the invitation form.
  await page.locator("#workshops li.rec").nth(5).waitFor({ timeout: 15_000 })
  await page.locator("#members-list .member").first().waitFor()
  await page.locator("#members form.invite-one").waitFor()
  const first = await assertPhoneLayout(page, "process page")
  // The name is long: it must have been cut, with an ellipsis.
  assert.ok(!(await layout(page)).name.fits, "the long name does not fit a phone's header")
  assert.ok(first.name.ellipsis)

  // Start page.
  await page.getByRole("link", { name: "Alle Prozesse" }).click()
  await page.locator("#process-list a").first().waitFor()
  await assertPhoneLayout(page, "start page")

  // The recommendation editor, its history and a past version.
  await page.locator("#process-list a").first().click()
  await page.getByRole("link", { name: "Kosten der internationalen Anwerbung gemeinsam tragen" }).click()
  const rationale = page.getByRole("textbox", { name: "Begründung", exact: true })
  await rationale.waitFor()
  await page.getByRole("navigation", { name: "Sie sind hier" }).getByRole("link", { name: "Finanzierungsmodelle" }).waitFor()
  await assertPhoneLayout(page, "recommendation editor")
  // Usable: type into a field and the title.
  await rationale.tap()
  await page.keyboard.press("Control+End")
  await page.keyboard.type(" Auch für kleine Betriebe.")
  await page.waitForFunction(() => window.fieldText("rationale").endsWith("Auch für kleine Betriebe."))
  const title = page.getByLabel("Titel", { exact: true })
  await title.tap()
  await page.keyboard.press("Control+End")
  await page.keyboard.type(" (Entwurf)")
  assert.match(await title.inputValue(), /gemeinsam tragen \(Entwurf\)$/)
  await page.waitForSelector('#connection[data-state="online"][data-pending="0"]', { timeout: 15_000 })
  await assertPhoneLayout(page, "recommendation editor after typing")

  await page.getByRole("button", { name: "Verlauf anzeigen" }).click()
  await page.locator("#timeline li").first().waitFor()
  await assertPhoneLayout(page, "history")
  await page.locator("#timeline li").last().getByRole("button", { name: "Diese Fassung öffnen" }).click()
  await page.locator("#version .diff").waitFor()
  await assertPhoneLayout(page, "a past version")
  // The version opens as a dialog where the reader is; close it to go on.
  await page.locator("#version-close").click()
  await page.locator("#version").waitFor({ state: "hidden" })

  // The identity card.
  await page.locator("#identity").click()
  await page.getByRole("heading", { name: "Angemeldet als" }).waitFor()
  await assertPhoneLayout(page, "identity card")
  await page.getByRole("button", { name: "Schließen" }).click()

  await context.close()
})

// The report is rendered by konsens-model (report/html.rs, not the app):
// long German words ("Fachkräfteeinwanderung") must wrap on a phone, and the
// interim report's positions table must fit.
test("the downloaded report fits a 390 px phone", async () => {
  const res = await fetch(`${server.base}/api/processes/${processId}/report?format=html&kind=interim`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  assert.equal(res.status, 200)
  const context = await browser.newContext({ locale: "de-DE", viewport: { width: 390, height: 844 }, isMobile: true })
  const reader = await context.newPage()
  await reader.setContent(await res.text())
  assert.match(await reader.locator("body").innerText(), /Anerkennung aus einer Hand innerhalb von drei Monaten/)
  try {
    await assertPhoneLayout(reader, "report")
  } finally {
    await context.close()
  }
})
