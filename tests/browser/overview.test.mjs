// A first-time participant with a German browser: asked for name and
// organisation, then the demo process (konsens-server --demo, German by
// default) with its workshops, filters, German labels in the editor,
// history, and the report download.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { readFile } from "node:fs/promises"
import { startServer, launch, fieldTextScript } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startServer(["--demo"])
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

test("demo process, filters, German labels, history and report download", async () => {
  const demo = server.log().match(/demo process ready url=(\/p\/\S+)/)?.[1]
  assert.ok(demo, "the server logs the demo process's path")
  const context = await browser.newContext({ locale: "de-DE", acceptDownloads: true })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  await page.goto(server.url(demo))

  // First use: who are you?
  await page.getByLabel("Ihr Name").fill("Dana Beispiel")
  await page.getByLabel("Ihre Organisation").fill("Stiftung Arbeit")
  await page.getByRole("button", { name: "Speichern" }).click()

  await page.locator("#workshops section.workshop").nth(5).waitFor({ timeout: 15_000 })
  assert.equal(await page.locator("#workshops section.workshop").count(), 6)
  await page.locator("#workshops li.rec").nth(5).waitFor({ timeout: 15_000 })
  await page.getByLabel("Nach Status filtern").selectOption("adopted")
  await page.waitForFunction(() => document.querySelectorAll("#workshops li.rec").length === 1)
  assert.match(await page.locator("#workshops li.rec").innerText(), /Angenommen/)
  await page.getByLabel("Nach Status filtern").selectOption("")
  await page.getByLabel("Nach Branche filtern").selectOption("Green Skills")
  await page.waitForFunction(() => document.querySelectorAll("#workshops li.rec").length === 2)

  const download = page.waitForEvent("download")
  // The interim report as Markdown, rendered by the server in the process's
  // language: German labels around the German text, no internal ids.
  await page.getByLabel("Art des Berichts").selectOption("interim")
  await page.getByLabel("Format").selectOption("markdown")
  await page.getByRole("button", { name: "Bericht herunterladen" }).click()
  const saved = await download
  assert.equal(saved.suggestedFilename(), "zwischenbericht.md")
  const report = await readFile(await saved.path(), "utf8")
  assert.match(report, /Anerkennung aus einer Hand innerhalb von drei Monaten/)
  assert.match(report, /Zwischenbericht/)
  assert.doesNotMatch(report, /automerge:/)

  await page.getByLabel("Nach Branche filtern").selectOption("")
  await page.getByRole("link", { name: "Anerkennung aus einer Hand innerhalb von drei Monaten" }).click()
  await page.getByRole("textbox", { name: "Empfehlung", exact: true }).waitFor()
  assert.equal(await page.getByLabel("Titel", { exact: true }).inputValue(), "Anerkennung aus einer Hand innerhalb von drei Monaten")
  for (const name of ["Problem", "Empfehlung", "Begründung"]) await page.getByRole("textbox", { name, exact: true }).waitFor()
  assert.match(await page.locator("#endorsements").innerText(), /Gewerkschaft Bau/)

  // History: open the first version read-only and see what changed since.
  await page.getByRole("button", { name: "Verlauf anzeigen" }).click()
  await page.locator("#timeline li", { hasText: "Miriam Vogel" }).first().waitFor()
  await page.locator("#timeline li").last().getByRole("button", { name: "Diese Fassung öffnen" }).click()
  await page.locator("#version .diff").waitFor()
  assert.match(await page.locator("#version").innerText(), /Änderungen zwischen dieser Fassung und jetzt/)
  assert.match(await page.locator("#version .diff").innerText(), /Empfehlung/)
  await context.close()
})
