// Access control in a real browser: a server without --open, a facilitator
// (the CLI, as administrator) invites a participant, the participant opens the
// personal link, confirms with one click, lands on the process, writes, and
// the server records the change under the participant's verified name. A
// page on another origin of the same site cannot use the session: not to
// revoke, not to open /sync, not to swap the session for another.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createServer } from "node:http"
import { launch, waitSynced, cli, startSecureServer, invite, joinLink, fieldTextScript } from "./helpers.mjs"

let server, browser, store, firstRec

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
  firstRec = rec.replace("automerge:", "")
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

  // With it, the participant confirms who she joins as, with one click.
  const context = await browser.newContext({ locale: "en-US" })
  const page = await context.newPage()
  page.on("pageerror", e => console.error("[Pia] page error:", e))
  await page.goto(link)
  const button = page.getByRole("button", { name: "Join “Fair skills partnerships” as Pia Participant" })
  await button.waitFor()
  assert.deepEqual(await context.cookies(), [], "opening the link sets no cookie")
  await button.click()
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
  await joinLink(page, server.adminLink)
  const processes = await (await fetch(`${server.base}/api/processes`, { headers: { Authorization: `Bearer ${server.adminToken}` } })).json()
  await page.goto(`${server.base}/p/${processes[0].id}`)
  await page.locator("#members:not([hidden])").waitFor()
  await page.getByLabel("Name", { exact: true }).fill("Omar Observer")
  await page.getByLabel("Organisation", { exact: true }).fill("Employers' Association")
  await page.getByLabel("Role").selectOption("observer")
  await page.getByRole("button", { name: "Invite", exact: true }).click()
  const omar = page.locator("#members-list tr.member", { hasText: "Omar Observer" })
  const link = await omar.locator(".invite-link").inputValue()
  assert.match(link, /\/join\//)

  // The link works, until the facilitator revokes it.
  const observer = await browser.newContext()
  const joined = await observer.newPage()
  await joinLink(joined, link)
  await joined.waitForURL(/\/p\//)
  await page.getByRole("button", { name: "Revoke access: Omar Observer" }).click()
  await page.locator("#revoke-dialog").getByRole("button", { name: "Revoke access" }).click()
  await page.locator('#members-list tr.member[data-status="revoked"]', { hasText: "Omar Observer" }).waitFor()
  const again = await observer.newPage()
  const res = await again.goto(link)
  assert.equal(res.status(), 401)
  await observer.close()
  await admin.close()
})

test("a page on another port of the same host cannot use the session, and a second link asks before replacing it", async () => {
  const processes = await (await fetch(`${server.base}/api/processes`, { headers: { Authorization: `Bearer ${server.adminToken}` } })).json()
  const processId = processes[0].id
  const fatima = await invite(server, server.adminToken, processId, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" })
  const victim = await invite(server, server.adminToken, processId, { role: "participant", name: "Vera Victim", organisation: "Care Workers Union" })
  const mallory = await invite(server, server.adminToken, processId, { role: "observer", name: "Mallory", organisation: "Nobody" })

  // Fatima's browser, in German, records every CSP violation on our pages.
  const context = await browser.newContext({ locale: "de-DE" })
  await context.addInitScript(() => {
    window.cspViolations = []
    document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  page.on("pageerror", e => console.error("[Fatima] page error:", e))
  await page.goto(fatima.link)
  await page.getByRole("button", { name: "„Fair skills partnerships“ als Fatima Facilitator beitreten" }).click()
  await page.waitForURL(/\/p\//)
  await page.locator("#members:not([hidden])").waitFor()

  // Another origin on the same host: its requests carry Fatima's cookie
  // (same site), so only the origin check stands between it and her session.
  const attacker = createServer((req, res) => {
    res.setHeader("Content-Type", "text/html; charset=utf-8")
    res.end(`<!doctype html><meta charset=utf-8><title>cute cats</title>
<form id=revoke method=post action="${server.base}/api/tokens/${victim.token_id}/revoke"></form>
<form id=swap method=post action="${server.base}/join/${mallory.token}"></form>
<script>
  window.socket = new Promise(resolve => {
    const ws = new WebSocket("${server.ws}")
    ws.onopen = () => resolve("open")
    ws.onerror = () => resolve("refused")
    setTimeout(() => resolve("no answer"), 10000)
  })
  window.post = url => fetch(url, { method: "POST", credentials: "include", mode: "no-cors" })
</script>`)
  })
  await new Promise(resolve => attacker.listen(0, "127.0.0.1", resolve))
  const evil = `http://127.0.0.1:${attacker.address().port}/`
  try {
    const tab = await context.newPage()
    await tab.goto(evil)
    assert.equal(await tab.evaluate(() => window.socket), "refused", "no /sync from another origin")
    assert.match(server.log(), /cross-origin request refused method=GET path=\/sync/, "refused for its origin, with the cookie")
    await tab.evaluate(url => window.post(url), `${server.base}/api/tokens/${victim.token_id}/revoke`)
    const formRevoke = tab.waitForResponse(r => r.url().includes("/revoke"))
    await tab.evaluate(() => document.getElementById("revoke").submit())
    assert.equal((await formRevoke).status(), 403)
    await tab.waitForURL(/\/revoke$/)
    const me = await fetch(`${server.base}/api/me`, { headers: { Authorization: `Bearer ${victim.token}` } })
    assert.equal(me.status, 200, "the victim's token was not revoked")
    // Login CSRF: a form that would swap Fatima's session for Mallory's.
    await tab.goto(evil)
    const swap = tab.waitForResponse(r => r.url().includes("/join/"))
    await tab.evaluate(() => document.getElementById("swap").submit())
    assert.equal((await swap).status(), 403)
    await tab.waitForURL(/\/join\//)
    const session = (await context.cookies()).find(c => c.name === "konsens_token")
    assert.equal(session?.value, fatima.token, "still Fatima's session")
    await tab.close()
  } finally {
    attacker.closeAllConnections()
    attacker.close()
  }

  // Her own app still invites and revokes (same origin: allowed).
  await page.reload()
  await page.locator("#members:not([hidden])").waitFor()
  await page.getByRole("button", { name: "Zugang entziehen: Mallory" }).click()
  await page.locator("#revoke-dialog").getByRole("button", { name: "Zugang entziehen" }).click()
  await page.locator('#members-list tr.member[data-status="revoked"]', { hasText: "Mallory" }).waitFor()

  // Another member's link on this browser says whose session it ends.
  const second = await context.newPage()
  await second.goto(victim.link)
  await second.locator("#current-session", { hasText: "Fatima Facilitator (Skills Think Tank)" }).waitFor()
  await second.close()

  // The app works under the policy: Fatima and a second member on the same
  // recommendation see each other (presence colours are style attributes)
  // and nothing is blocked.
  const recId = firstRec
  const other = await browser.newContext({ locale: "en-US" })
  await other.addInitScript(() => {
    window.cspViolations = []
    document.addEventListener("securitypolicyviolation", e => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  const vera = await other.newPage()
  await joinLink(vera, victim.link)
  for (const p of [page, vera]) await p.goto(`${server.base}/r/${recId}`)
  await vera.getByRole("textbox", { name: "Recommendation", exact: true }).click()
  await vera.keyboard.type(" Vera")
  await page.locator('#presence [data-peer="Vera Victim"]').waitFor({ timeout: 15_000 })
  await vera.locator('#presence [data-peer="Fatima Facilitator"]').waitFor({ timeout: 15_000 })
  await waitSynced(vera)
  // cbor-x probes once whether it may compile decoders (`new Function("")`)
  // and, refused, decodes without: that refusal is the policy working.
  const violations = p => p.evaluate(() => window.cspViolations.filter(v => v !== "script-src eval"))
  for (const p of [page, vera]) assert.deepEqual(await violations(p), [], "no CSP violations")
  await other.close()
  await context.close()
})
