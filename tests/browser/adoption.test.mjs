// An adopted wording is fixed, and what was written offline meanwhile is not
// lost: a participant edits offline while the facilitator adopts; when the
// participant is back, both converge, the report prints the adopted wording,
// the app shows what changed since the adoption (as a word diff), the
// editors stay read-only while adopted, and re-opening makes them editable
// again.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { launch, waitSynced, cli, startSecureServer, invite, fieldTextScript, joinLink } from "./helpers.mjs"

let server, browser, store
before(async () => {
  server = await startSecureServer()
  browser = await launch()
  store = await mkdtemp(join(tmpdir(), "konsens-adoption-store-"))
})
after(async () => {
  await browser?.close()
  await server?.stop()
  if (store) await rm(store, { recursive: true, force: true })
})

const konsens = async (...args) => (await cli("--store", store, ...args)).stdout.trim()

async function member(link, name) {
  const context = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 900 } })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  page.on("pageerror", e => console.error(`[${name}] page error:`, e))
  await joinLink(page, link)
  await page.waitForURL(/\/p\//)
  return { context, page }
}

const FIELDS = ["Problem", "Recommendation", "Rationale"]
const editable = page =>
  page.evaluate(fields => [
    ...fields.map(f => document.querySelector(`[data-field="${f.toLowerCase()}"]`).getAttribute("contenteditable")),
    document.getElementById("title").readOnly ? "readonly" : "writable",
  ], FIELDS)
const ADOPTED = "Agencies publish every fee they charge."
const OFFLINE = " Workers pay nothing at all."

test("an edit made offline during the adoption is merged, shown as changed since adoption, and kept out of the report", async () => {
  await konsens("join", server.adminLink)
  await konsens("identity", "--name", "Ada Admin", "--org", "Skills Think Tank")
  const process = await konsens("process", "create", "--title", "Faire Fachkräfteeinwanderung")
  const workshop = await konsens("workshop", "add", process, "--title", "Fair recruitment")
  const rec = await konsens("rec", "new", process, "--workshop", workshop, "--title", "Publish all recruitment fees")
  await konsens("rec", "set", rec, "--field", "recommendation", "--value", ADOPTED)
  await konsens("rec", "status", rec, "discussion")
  await konsens("sync")
  const processId = process.replace("automerge:", "")
  const recPath = `/r/${rec.replace("automerge:", "")}`
  const [f, p] = await Promise.all([
    invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" }),
    invite(server, server.adminToken, processId, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" }),
  ])
  const fatima = await member(f.link, "Fatima")
  const pia = await member(p.link, "Pia")
  for (const { page } of [fatima, pia]) {
    await page.goto(`${server.base}${recPath}`)
    await page.waitForFunction(text => window.fieldText("recommendation") === text, ADOPTED, { timeout: 15_000 })
    await waitSynced(page)
    assert.deepEqual(await editable(page), ["true", "true", "true", "writable"])
  }

  // Pia edits offline; meanwhile Fatima takes the recommendation to consensus and adopts it.
  await pia.context.setOffline(true)
  await pia.page.waitForSelector('#connection[data-state="offline"]', { timeout: 10_000 })
  const editor = pia.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.click()
  await editor.press("ControlOrMeta+End")
  await editor.pressSequentially(OFFLINE)
  await pia.page.waitForFunction(() => Number(document.querySelector("#connection")?.dataset.pending) > 0)

  for (const status of ["consensus", "adopted"]) {
    await fatima.page.getByLabel("Move to").selectOption(status)
    await fatima.page.getByRole("button", { name: "Change status" }).click()
    await fatima.page.locator(`#status-badge[data-status="${status}"]`).waitFor()
  }
  await waitSynced(fatima.page)
  await fatima.page.locator("#adopted-notice:not([hidden])").waitFor()
  assert.match(await fatima.page.locator("#adopted-notice").innerText(), /^Adopted on .+: the wording is fixed\. A facilitator can re-open it\.$/)
  assert.deepEqual(await editable(fatima.page), ["false", "false", "false", "readonly"], "adopted: read-only for the facilitator too")
  assert.equal(await fatima.page.locator("#changed-since-adoption").isVisible(), false)

  // Pia is back: both converge on the merged text, and the page says the adopted wording moved.
  await pia.context.setOffline(false)
  for (const { page } of [fatima, pia]) {
    await page.waitForFunction(text => window.fieldText("recommendation") === text, ADOPTED + OFFLINE, { timeout: 30_000 })
    await page.locator('#status-badge[data-status="adopted"]').waitFor({ timeout: 30_000 })
    await waitSynced(page, 30_000)
    const changed = page.locator("#changed-since-adoption")
    await changed.waitFor()
    assert.match(await changed.innerText(), /Changed since adoption/)
    const diff = changed.locator('dd[data-diff="recommendation"]')
    assert.equal((await diff.locator("ins").allInnerTexts()).join("").trim(), OFFLINE.trim())
    assert.equal(await diff.locator("del").count(), 0)
    assert.deepEqual(await editable(page), ["false", "false", "false", "readonly"], "adopted: read-only for everyone")
  }
  assert.match(await fatima.page.locator("#changed-since-adoption").innerText(), /Re-open the recommendation to take them up/)

  // The report carries the adopted wording, not what was merged after it.
  const res = await fetch(`${server.base}/api/processes/${processId}/report?format=markdown`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  assert.equal(res.status, 200)
  const report = await res.text()
  assert.match(report, /Publish all recruitment fees/)
  assert.ok(report.includes(ADOPTED), report)
  assert.ok(!report.includes(OFFLINE.trim()), report)

  // A participant cannot undo the adoption; the facilitator re-opens it, and everybody may edit again.
  assert.equal(await pia.page.getByLabel("Move to").isVisible(), false)
  await fatima.page.getByLabel("Move to").selectOption("discussion")
  await fatima.page.getByRole("button", { name: "Change status" }).click()
  await pia.page.locator('#status-badge[data-status="discussion"]').waitFor({ timeout: 15_000 })
  await pia.page.waitForFunction(() => document.querySelector('[data-field="recommendation"]').getAttribute("contenteditable") === "true")
  assert.deepEqual(await editable(pia.page), ["true", "true", "true", "writable"])
  assert.equal(await pia.page.locator("#adopted-notice").isVisible(), false)
  assert.equal(await pia.page.locator("#changed-since-adoption").isVisible(), false)
  await editor.click()
  await editor.press("ControlOrMeta+End")
  await editor.pressSequentially(" From 2027.")
  await fatima.page.waitForFunction(text => window.fieldText("recommendation") === text, `${ADOPTED}${OFFLINE} From 2027.`, { timeout: 15_000 })
  await waitSynced(pia.page)
  assert.doesNotMatch(server.log(), /refus/i, server.log())
  await fatima.context.close()
  await pia.context.close()
})
