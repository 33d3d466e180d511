// The app is kept on the device: a member who loses the connection can
// reload and still open the recommendation from local storage, write, see
// in plain words what the server does not have yet (fields, not
// keystrokes), and everything syncs when the server is back. Presence of
// others clears while offline.
//
// "Offline" here is both: the browser context set offline, and the server
// stopped (so nothing, not even the service worker's own requests, reaches
// it). It restarts on the same address with the same data.
import { test, after } from "node:test"
import assert from "node:assert/strict"
import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { root, launch, participant, createRecommendation, waitSynced, editorText } from "./helpers.mjs"

let browser, server, data
after(async () => {
  await browser?.close()
  await server?.stop()
  if (data) await rm(data, { recursive: true, force: true })
})

/** konsens-server --open on `listen` with the data in `dir`; resolves once it listens. */
async function serve(dir, listen) {
  const child = spawn(join(root, "target/debug/konsens-server"), ["--open", "--data", dir, "--listen", listen], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  })
  let log = ""
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`konsens-server did not start:\n${log}`)), 20_000)
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", chunk => {
      log += chunk
      const m = log.match(/konsens-server listening addr=(\S+)/)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once("exit", code => reject(new Error(`konsens-server exited with ${code}:\n${log}`)))
  })
  return {
    addr,
    url: path => `http://${addr}${path}`,
    async stop() {
      if (child.exitCode !== null) return
      const exited = new Promise(r => child.once("exit", r))
      child.kill("SIGTERM")
      await exited
    },
  }
}

const connection = page => page.evaluate(() => {
  const el = document.querySelector("#connection")
  return { state: el?.dataset.state, pending: Number(el?.dataset.pending), text: el?.innerText ?? "", title: el?.title ?? "" }
})

// CIELAB distance of two CSS colours (ΔE 1976).
function deltaE(a, b) {
  const lab = css => {
    const [r, g, bl] = css.match(/\d+/g).slice(0, 3).map(v => Number(v) / 255).map(c => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
    const f = t => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116)
    const [x, y, z] = [(r * 0.4124 + g * 0.3576 + bl * 0.1805) / 0.95047, r * 0.2126 + g * 0.7152 + bl * 0.0722, (r * 0.0193 + g * 0.1192 + bl * 0.9505) / 1.08883]
    return [116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))]
  }
  const [p, q] = [lab(a), lab(b)]
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2])
}

test("reload offline opens the app and the document; edits are counted by field and sync when back", async () => {
  browser = await launch()
  data = await mkdtemp(join(tmpdir(), "konsens-offline-shell-"))
  server = await serve(data, "127.0.0.1:0")
  const addr = server.addr

  const ada = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const path = await createRecommendation(ada.page, server.url)
  const recommendation = ada.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await recommendation.click()
  await recommendation.pressSequentially("Employers pay the recruitment costs.")
  await waitSynced(ada.page)

  // Bea, with a German browser, opens it online once: the app is kept then.
  const bea = await participant(browser, "Bea Okafor", "Netzwerk Faire Migration", "de-DE")
  await bea.page.goto(server.url(path))
  await bea.page.getByRole("textbox", { name: "Empfehlung", exact: true }).waitFor()
  await waitSynced(bea.page)
  await bea.page.waitForFunction(() => navigator.serviceWorker?.controller?.state === "activated", null, { timeout: 15_000 })

  // Both see each other, in clearly different colours.
  const adaInBea = bea.page.locator('#presence [data-peer="Ada Lovelace"]')
  await adaInBea.waitFor({ timeout: 15_000 })
  const colours = await bea.page.locator("#presence .who").evaluateAll(els => els.map(el => getComputedStyle(el).borderLeftColor))
  assert.equal(colours.length, 2)
  assert.ok(deltaE(colours[0], colours[1]) > 30, `presence colours too alike: ${colours}`)

  // The connection goes: the server stops and the browser is offline.
  await bea.context.setOffline(true)
  await server.stop()
  await bea.page.waitForSelector('#connection[data-state="offline"]', { timeout: 15_000 })
  // Nobody else is shown as here any more, only Bea and that she is offline.
  await adaInBea.waitFor({ state: "detached", timeout: 10_000 })
  await bea.page.locator("#presence-offline").waitFor()
  assert.match(await bea.page.locator("#presence").innerText(), /Bea Okafor \(Sie\)/)

  // A reload without a connection: the app and the document are there.
  await bea.page.reload()
  await bea.page.getByRole("textbox", { name: "Empfehlung", exact: true }).waitFor({ timeout: 15_000 })
  await bea.page.waitForFunction(() => window.fieldText("recommendation").includes("Employers pay the recruitment costs."), null, { timeout: 15_000 })
  assert.equal((await connection(bea.page)).state, "offline")
  assert.equal(await bea.page.locator('#presence [data-peer="Ada Lovelace"]').count(), 0)

  // Two sentences into two fields: two fields with unsaved edits, not a hundred changes.
  const rationale = bea.page.getByRole("textbox", { name: "Begründung", exact: true })
  await rationale.click()
  await rationale.pressSequentially("Im Zug geschrieben, ohne Netz.", { delay: 5 })
  const problem = bea.page.getByRole("textbox", { name: "Problem", exact: true })
  await problem.click()
  await problem.pressSequentially("Gebühren verschulden Beschäftigte.", { delay: 5 })
  await bea.page.waitForFunction(() => document.querySelector("#connection")?.dataset.pending === "2", null, { timeout: 10_000 })
  const pending = await connection(bea.page)
  assert.match(pending.text, /^Ungespeicherte Änderungen in 2 Feldern$/)
  assert.match(pending.title, /Noch nicht auf dem Server: (Begründung und Problem|Problem und Begründung)/)

  // The server is back on the same address: Bea's edits go up, the indicator clears.
  server = await serve(data, addr)
  await bea.context.setOffline(false)
  await waitSynced(bea.page, 30_000)
  const synced = await connection(bea.page)
  assert.equal(synced.pending, 0)
  assert.doesNotMatch(synced.text, /Ungespeichert/)
  assert.equal(synced.text, "Online")
  await ada.page.waitForFunction(() => window.fieldText("rationale").includes("Im Zug geschrieben, ohne Netz."), null, { timeout: 30_000 })
  assert.equal(await editorText(ada.page, "Problem"), "Gebühren verschulden Beschäftigte.")
  // And Ada is shown as here again.
  await bea.page.locator('#presence [data-peer="Ada Lovelace"]').waitFor({ timeout: 20_000 })

  await ada.context.close()
  await bea.context.close()
})

test("a document never opened on this device says it waits for the connection instead of loading forever", async () => {
  browser ??= await launch()
  const d = await mkdtemp(join(tmpdir(), "konsens-offline-unknown-"))
  const s = await serve(d, "127.0.0.1:0")
  try {
    const cleo = await participant(browser, "Cleo Conrad", "Stiftung Arbeit")
    const path = await createRecommendation(cleo.page, s.url)
    await waitSynced(cleo.page)
    const dana = await participant(browser, "Dana Demir", "Gewerkschaft Bau", "de-DE")
    await dana.page.goto(s.url("/"))
    await dana.page.waitForFunction(() => navigator.serviceWorker?.controller?.state === "activated", null, { timeout: 15_000 })
    await dana.context.setOffline(true)
    await s.stop()
    await dana.page.goto(s.url(path))
    await dana.page.locator("#waiting-for-connection").waitFor({ timeout: 15_000 })
    assert.match(await dana.page.locator("#waiting-for-connection").innerText(), /sobald die Verbindung wieder steht/)
    await cleo.context.close()
    await dana.context.close()
  } finally {
    await s.stop()
    await rm(d, { recursive: true, force: true })
  }
})
