// Access control in a real browser: a server without --open, a facilitator
// (the CLI, as administrator) invites a participant, the participant opens the
// personal link, lands on the process, writes, and the server records the
// change under the participant's verified name.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { launch, waitSynced, cli, startSecureServer } from "./helpers.mjs"

let server, browser, store

before(async () => {
  server = await startSecureServer()
  browser = await launch()
  store = await mkdtemp(join(tmpdir(), "konsens-admin-store-"))
})
after(async () => {
  await browser?.close()
  await server?.stop()
  if (store) await rm(store, { recursive: true, force: true })
})

const konsens = async (...args) => (await cli("--store", store, ...args)).stdout.trim()

test("a participant joins through an invitation link and writes under a verified name", async () => {
  // The administrator sets up a process from the CLI.
  await konsens("join", server.adminLink)
  await konsens("identity", "--name", "Fatima Facilitator", "--org", "Skills Think Tank")
  const process = await konsens("process", "create", "--title", "Fair skills partnerships")
  const workshop = await konsens("workshop", "add", process, "--title", "Fair recruitment", "--sector", "care")
  const rec = await konsens("rec", "new", process, "--workshop", workshop, "--title", "No fees for workers")
  await konsens("sync")
  const link = (await konsens("invite", process, "--role", "participant", "--name", "Pia Participant", "--org", "Migrant Workers NGO"))
    .split("\n")
    .find(line => line.includes("/join/"))

  // Without the link, the app says it is private.
  const stranger = await browser.newContext()
  const lost = await stranger.newPage()
  await lost.goto(`${server.base}/`)
  await lost.locator("#no-session").waitFor()
  await stranger.close()

  // With it, the participant lands on the process, no questions asked.
  const context = await browser.newContext({ locale: "en-US" })
  const page = await context.newPage()
  page.on("pageerror", e => console.error("[Pia] page error:", e))
  await page.goto(link)
  await page.waitForURL(/\/p\//)
  assert.equal(new URL(page.url()).pathname, `/p/${process.replace("automerge:", "")}`)
  await page.getByText("No fees for workers").first().waitFor()
  const cookies = await context.cookies()
  assert.ok(cookies.some(c => c.name === "konsens_token" && c.httpOnly), "the session is an HttpOnly cookie")

  await page.goto(`${server.base}/r/${rec.replace("automerge:", "")}`)
  const editor = page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.click()
  await editor.pressSequentially("Employers pay all recruitment costs.")
  await waitSynced(page).catch(e => {
    throw new Error(`${e.message}\nserver log:\n${server.log()}`)
  })

  // The server attributes the change to Pia, as verified by her token.
  const history = await (
    await fetch(`${server.base}/api/docs/${rec.replace("automerge:", "")}/history`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
  ).json()
  const hers = history.filter(c => c.author?.name === "Pia Participant")
  assert.ok(hers.length > 0, JSON.stringify(history, null, 1))
  assert.ok(hers.every(c => c.verified === true && c.merged_by === null))
  await context.close()
})

test("a facilitator invites and revokes from the web app", async () => {
  const admin = await browser.newContext({ locale: "en-US" })
  const page = await admin.newPage()
  page.on("pageerror", e => console.error("[admin] page error:", e))
  await page.goto(server.adminLink)
  const processes = await (await fetch(`${server.base}/api/processes`, { headers: { Authorization: `Bearer ${server.adminToken}` } })).json()
  await page.goto(`${server.base}/p/${processes[0].id}`)
  await page.locator("#members:not([hidden])").waitFor()
  await page.getByLabel("Name", { exact: true }).fill("Omar Observer")
  await page.getByLabel("Organisation", { exact: true }).fill("Employers' Association")
  await page.getByLabel("Role").selectOption("observer")
  await page.getByRole("button", { name: "Invite", exact: true }).click()
  const link = await page.locator("#invite-link").inputValue()
  assert.match(link, /\/join\//)
  await page.locator("#members-list li", { hasText: "Omar Observer" }).waitFor()

  // The link works, until the facilitator revokes it.
  const observer = await browser.newContext()
  const joined = await observer.newPage()
  await joined.goto(link)
  await joined.waitForURL(/\/p\//)
  await page.getByRole("button", { name: "Revoke access: Omar Observer" }).click()
  await page.locator("#members-list li", { hasText: "Omar Observer" }).waitFor({ state: "detached" })
  const again = await observer.newPage()
  const res = await again.goto(link)
  assert.equal(res.status(), 401)
  await observer.close()
  await admin.close()
})
