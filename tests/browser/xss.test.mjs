// Markup written into documents stays text: a payload that would run script
// is put into every field a member can write (process, workshop and
// recommendation titles, theme, the three texts, addressees, comment, reply,
// endorsement and status notes, a member's name and organisation) and the
// app, the history and both reports are opened. Nothing runs, and the HTML
// report escapes it all.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { launch, startSecureServer, invite, cli } from "./helpers.mjs"

const payload = tag => `<img src=x onerror="window.__xss=(window.__xss||[]).concat('${tag}')"><script>window.__xss=(window.__xss||[]).concat('${tag}-script')</script>`

let server, browser, store
before(async () => {
  server = await startSecureServer()
  browser = await launch()
  store = await mkdtemp(join(tmpdir(), "konsens-xss-store-"))
})
after(async () => {
  await browser?.close()
  await server?.stop()
  if (store) await rm(store, { recursive: true, force: true })
})

const konsens = async (...args) => (await cli("--store", store, ...args)).stdout.trim()

test("markup in every field a member writes stays text in the app, the history and the reports", async () => {
  await konsens("join", server.adminLink)
  const process = await konsens("process", "create", "--title", payload("process"))
  const workshop = await konsens("workshop", "add", process, "--title", payload("workshop"), "--theme", payload("theme"), "--sector", payload("sector"))
  const rec = await konsens("rec", "new", process, "--workshop", workshop, "--title", payload("rec-title"))
  for (const field of ["problem", "recommendation", "rationale"]) {
    await konsens("rec", "set", rec, "--field", field, "--value", `Text ${payload(field)} end`)
  }
  await konsens("rec", "set", rec, "--field", "addressees", "--value", payload("addressee"))
  await konsens("comment", rec, "--quote", "Text", "--body", payload("comment"))
  await konsens("endorse", rec, "--stance", "concerns", "--note", payload("endorsement"))
  await konsens("rec", "status", rec, "discussion", "--note", payload("status-note"))
  await konsens("sync")
  const processId = process.replace("automerge:", "")
  const recId = rec.replace("automerge:", "")
  const { link } = await invite(server, server.adminToken, processId, { role: "facilitator", name: payload("name"), organisation: payload("organisation") })

  const context = await browser.newContext({ locale: "en-US" })
  const page = await context.newPage()
  const errors = []
  page.on("pageerror", e => errors.push(String(e)))
  page.on("dialog", dialog => {
    errors.push(`dialog: ${dialog.message()}`)
    void dialog.dismiss()
  })
  // The invitation page names the member: as text too.
  await page.goto(link)
  await page.getByText("onerror=", { exact: false }).first().waitFor()
  assert.equal(await page.evaluate(() => window.__xss ?? null), null, "nothing ran on the invitation page")
  await page.locator("#join").click()
  await page.waitForURL(/\/p\//)
  await page.locator("#workshops h3").first().waitFor()
  await page.goto(`${server.base}/r/${recId}`)
  await page.locator("#comments .comment").first().waitFor()
  // The payloads are shown as text.
  await page.getByText("onerror=", { exact: false }).first().waitFor()
  const history = page.locator("details, section").filter({ hasText: /History|Verlauf/ }).first()
  if (await history.count()) await history.click().catch(() => {})
  assert.equal(await page.evaluate(() => window.__xss ?? null), null, "nothing ran in the editor or its history")

  // The reports, opened in the same origin as the app.
  for (const format of ["html", "markdown", "json"]) {
    const res = await page.request.get(`${server.base}/api/processes/${processId}/report?format=${format}`)
    assert.equal(res.status(), 200, format)
    const body = await res.text()
    if (format === "html") {
      assert.ok(!/<img src=x/i.test(body) && !/<script>window/i.test(body), "the HTML report escapes markup")
      const reportPage = await context.newPage()
      reportPage.on("dialog", dialog => void dialog.dismiss())
      await reportPage.setContent(body)
      assert.equal(await reportPage.evaluate(() => window.__xss ?? null), null, "nothing runs in the HTML report")
      await reportPage.close()
    }
  }
  await page.goto(`${server.base}/p/${processId}`)
  await page.locator("#workshops h3").first().waitFor()
  assert.equal(await page.evaluate(() => window.__xss ?? null), null, "nothing ran in the app")
  assert.deepEqual(errors, [])
  await context.close()
})
