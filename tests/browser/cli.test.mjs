// The browser and the konsens CLI edit the same recommendation and agree:
// text typed in the browser reaches the CLI as Markdown, a CLI edit shows up
// in the open editor, and the browser's status change and comment are read by
// the CLI with the browser user's name.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startServer, launch, participant, createRecommendation, waitSynced, editorText, cli } from "./helpers.mjs"

let server, browser, store
before(async () => {
  server = await startServer()
  browser = await launch()
  store = await mkdtemp(join(tmpdir(), "konsens-cli-store-"))
})
after(async () => {
  await browser?.close()
  await server?.stop()
  if (store) await rm(store, { recursive: true, force: true })
})

const konsens = async (...args) => (await cli("--store", store, ...args)).stdout
const show = async url => JSON.parse(await konsens("--json", "rec", "show", url))

test("browser and CLI edit the same recommendation and agree", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const path = await createRecommendation(a.page, server.url)
  const url = `automerge:${path.split("/").pop()}`
  const ed = a.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await ed.click()
  await ed.pressSequentially("Agencies must publish all fees.")
  await a.page.getByLabel("Note on the status change").fill("ready for the workshop")
  await a.page.getByRole("button", { name: "Change status" }).click()
  await a.page.locator('#status-badge[data-status="discussion"]').waitFor()
  await waitSynced(a.page)

  await konsens("identity", "--name", "Carla CLI", "--org", "Ministerium")
  await konsens("sync", server.ws, "--doc", url)
  let rec = await show(url)
  const text = field => (typeof rec[field] === "string" ? rec[field] : JSON.stringify(rec[field]))
  assert.match(text("recommendation"), /Agencies must publish all fees\./)
  assert.equal(rec.status, "discussion")

  // The CLI rewrites the field (a minimal diff) and syncs; the open editor follows.
  await konsens("rec", "set", url, "--field", "recommendation", "--value", "Agencies must publish all fees. Workers pay nothing.")
  await konsens("sync", server.ws, "--doc", url)
  await a.page.waitForFunction(() => window.fieldText("recommendation") === "Agencies must publish all fees. Workers pay nothing.", null, { timeout: 20_000 })

  // The browser edits again; the CLI reads exactly what the browser shows.
  await ed.press("ControlOrMeta+End")
  await ed.pressSequentially(" Checked yearly.")
  await waitSynced(a.page)
  await konsens("sync", server.ws, "--doc", url)
  rec = await show(url)
  assert.equal(text("recommendation").trim(), (await editorText(a.page, "Recommendation")).trim())

  // History names the browser user, in sessions (typing is one entry), and
  // every change with the message the browser gave it under --all.
  const history = await konsens("history", url)
  assert.match(history, /Ada Lovelace/)
  assert.match(history, /moved it to discussion/)
  assert.match(history, /Carla CLI/)
  assert.equal(history.trim().split("\n").filter(l => /Ada Lovelace.*edited recommendation/.test(l)).length, 1, history)
  assert.match(await konsens("history", url, "--all"), /status → discussion/)
  await a.context.close()
})
