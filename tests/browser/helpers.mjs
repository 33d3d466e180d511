// Shared plumbing for the browser tests: the real konsens-server binary on a
// free loopback port with a fresh data directory, Debian's Chromium driven by
// playwright-core, and browser contexts with a participant identity.
import { spawn, execFile } from "node:child_process"
import { mkdtemp, rm, mkdir } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, resolve, dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { createRequire } from "node:module"
import { chromium } from "playwright-core"

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
export const artifacts = join(root, "target/test-artifacts")
const bin = name => join(root, "target/debug", name)
const CHROMIUM = process.env.KONSENS_CHROMIUM ?? "/usr/bin/chromium"

/** Start konsens-server; resolves once it logs its address. */
export async function startServer(extraArgs = []) {
  const data = await mkdtemp(join(tmpdir(), "konsens-browser-"))
  const child = spawn(bin("konsens-server"), ["--open", "--data", data, "--listen", "127.0.0.1:0", ...extraArgs], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "info" },
  })
  let log = ""
  const addr = await new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`konsens-server did not start:\n${log}`)), 20_000)
    child.stderr.setEncoding("utf8")
    child.stderr.on("data", chunk => {
      log += chunk
      const m = log.match(/konsens-server listening addr=(\S+)/)
      if (m) {
        clearTimeout(timer)
        resolvePromise(m[1])
      }
    })
    child.on("exit", code => reject(new Error(`konsens-server exited with ${code}:\n${log}`)))
  })
  return {
    addr,
    url: path => `http://${addr}${path}`,
    ws: `ws://${addr}/sync`,
    log: () => log,
    async stop() {
      const exited = new Promise(r => child.once("exit", r))
      child.kill("SIGTERM")
      await exited
      await rm(data, { recursive: true, force: true })
    },
  }
}

/** konsens-server without --open: resolves with its address and the admin link it prints. */
export async function startSecureServer(extraArgs = []) {
  const data = await mkdtemp(join(tmpdir(), "konsens-secure-"))
  const child = spawn(join(root, "target/debug/konsens-server"), ["--data", data, "--listen", "127.0.0.1:0", ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.KONSENS_BROWSER_SERVER_LOG ?? "info" },
  })
  let out = ""
  let err = ""
  child.stderr.setEncoding("utf8")
  child.stderr.on("data", chunk => (err += chunk))
  const link = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no admin link:\n${out}\n${err}`)), 20_000)
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", chunk => {
      out += chunk
      const m = out.match(/^open (http:\/\/\S+\/join\/\S+)$/m)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.on("exit", code => reject(new Error(`konsens-server exited with ${code}:\n${err}`)))
  })
  const base = link.split("/join/")[0]
  return {
    adminLink: link,
    adminToken: link.split("/join/")[1],
    base,
    ws: `${base.replace("http://", "ws://")}/sync`,
    log: () => err,
    async stop() {
      const exited = new Promise(r => child.once("exit", r))
      child.kill("SIGTERM")
      await exited
      await rm(data, { recursive: true, force: true })
    },
  }
}

/**
 * Invite a member into a process through the JSON API, as the holder of
 * `token` (an administrator or the process's facilitator). Returns the API's
 * answer: {link, token, token_id, participant}.
 */
export async function invite(server, token, processId, { role, name, organisation }) {
  const res = await fetch(`${server.base}/api/processes/${processId.replace("automerge:", "")}/invitations`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ role, name, organisation }),
  })
  if (!res.ok) throw new Error(`invitation failed: ${res.status} ${await res.text()}`)
  return res.json()
}

/**
 * Open an invitation link (or the administrator link) and accept it, as a
 * member does: the link shows a page with one button, "Join <process> as
 * <name>", whose POST sets the session cookie (a bare GET never does, so no
 * other site can sign a visitor in as someone else). Resolves once the
 * browser has left /join/: on the process, or on the start page for the
 * administrator.
 */
export async function joinLink(page, link) {
  await page.goto(link)
  await page.locator("#join").click()
  await page.waitForURL(url => !url.pathname.startsWith("/join/"))
}

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  })
}

/** A fresh browser context (own IndexedDB/localStorage) as this participant. */
export async function participant(browser, name, organisation, locale = "en-US") {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } })
  const participantId = `p-${Buffer.from(name).toString("hex").slice(0, 16).padEnd(16, "0")}`
  await context.addInitScript(identity => {
    if (!localStorage.getItem("konsens.identity")) localStorage.setItem("konsens.identity", JSON.stringify(identity))
  }, { participant: participantId, name, organisation })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  page.on("pageerror", err => console.error(`[${name}] page error:`, err))
  return { context, page, participantId }
}

let wireDecoders
/** cbor-x and Automerge from the web app's own packages, loaded once. */
function decoders() {
  wireDecoders ??= (async () => {
    const web = join(root, "server/web")
    const { decode } = createRequire(join(web, "package.json"))("cbor-x")
    const Automerge = await import(join(web, "node_modules/@automerge/automerge/dist/mjs/entrypoints/fullfat_node.js"))
    return { decode, decodeSyncMessage: Automerge.decodeSyncMessage }
  })()
  return wireDecoders
}

/**
 * A member in a browser context of their own, joined through `link` (an
 * invitation or the admin link). `sentChanges` records every sync message
 * with Automerge changes the page sends: an observer's stays empty.
 */
export async function joinAs(browser, link, name, locale = "en-US") {
  const { decode, decodeSyncMessage } = await decoders()
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } })
  await context.addInitScript(fieldTextScript)
  const page = await context.newPage()
  page.on("pageerror", e => console.error(`[${name}] page error:`, e))
  const sentChanges = []
  page.on("websocket", ws =>
    ws.on("framesent", ({ payload }) => {
      if (typeof payload === "string") return
      const message = decode(payload)
      if (message?.type !== "sync" || !message.data) return
      const changes = decodeSyncMessage(new Uint8Array(message.data)).changes
      if (changes.length > 0) sentChanges.push({ documentId: message.documentId, changes: changes.length })
    })
  )
  await joinLink(page, link)
  return { context, page, sentChanges }
}

/** As the admin: create a process with one workshop; returns the process id. */
export async function createProcess(page, title, workshop) {
  await page.getByLabel("Process title").fill(title)
  await page.getByRole("button", { name: "Create", exact: true }).click()
  await page.waitForURL(/\/p\//)
  const processId = new URL(page.url()).pathname.split("/").pop()
  await page.getByLabel("Workshop title").fill(workshop)
  await page.getByRole("button", { name: "Add workshop" }).click()
  await page.locator("#workshops h3", { hasText: workshop }).waitFor()
  await waitSynced(page)
  return processId
}

/** Select `phrase` inside a rich-text field the way a mouse drag would (a DOM selection). */
export async function selectPhrase(page, field, phrase) {
  await page.evaluate(
    ([field, phrase]) => {
      const root = document.querySelector(`[data-field="${field}"]`)
      root.focus()
      const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT)
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(phrase)
        if (at >= 0) {
          const range = document.createRange()
          range.setStart(node, at)
          range.setEnd(node, at + phrase.length)
          const sel = window.getSelection()
          sel.removeAllRanges()
          sel.addRange(range)
          return
        }
      }
      throw new Error(`no ${phrase} in ${field}`)
    },
    [field, phrase]
  )
}

/** Wait until the header says everything is on the server. */
export async function waitSynced(page, timeout = 15_000) {
  await page.waitForSelector('#connection[data-state="online"][data-pending="0"]', { timeout })
}

/** Create a process with one workshop and one recommendation through the UI; returns the recommendation's path. */
export async function createRecommendation(page, base, { process = "Skilled immigration", workshop = "Fair recruitment", title = "No fees for workers" } = {}) {
  await page.goto(base("/"))
  await page.getByLabel("Process title").fill(process)
  await page.getByRole("button", { name: "Create", exact: true }).click()
  await page.waitForURL(/\/p\//)
  await page.getByLabel("Workshop title").fill(workshop)
  await page.getByLabel("Sectors").fill("care, construction")
  await page.getByRole("button", { name: "Add workshop" }).last().click()
  await page.locator("#workshops h3", { hasText: workshop }).waitFor()
  await page.getByLabel("Title of the new recommendation").fill(title)
  await page.getByRole("button", { name: "Create", exact: true }).click()
  await page.waitForURL(/\/r\//)
  await page.getByRole("textbox", { name: "Recommendation" }).waitFor()
  return new URL(page.url()).pathname
}

/** The text of a rich-text field as the participant sees it, without other people's carets. */
export const editorText = (page, field) => page.evaluate(fieldName => window.fieldText(fieldName), field.toLowerCase())

/** Installs window.fieldText(field) in every page (used inside waitForFunction too). */
export const fieldTextScript = () => {
  window.fieldText = field => {
    const el = document.querySelector(`[data-field="${field}"]`)
    if (!el) return ""
    const copy = el.cloneNode(true)
    for (const caret of copy.querySelectorAll(".peer-caret")) caret.remove()
    return [...copy.children].map(block => block.textContent).join("\n")
  }
}

export async function mkArtifacts() {
  await mkdir(artifacts, { recursive: true })
}

export const run = promisify(execFile)
export const cli = (...args) => run(bin("konsens"), args, { timeout: 60_000 })
