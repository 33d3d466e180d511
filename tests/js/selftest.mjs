#!/usr/bin/env node
// Runs every interop.mjs client command the way the Rust tests do (child
// process, one JSON line on stdout) and checks the results.
//
//   node selftest.mjs              # against a freshly started stock server
//   node selftest.mjs <ws-url>     # against a running server, e.g. konsens
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import assert from "node:assert/strict"
import { createInterface } from "node:readline"
import { generateAutomergeUrl } from "@automerge/automerge-repo"

const INTEROP = new URL("./interop.mjs", import.meta.url).pathname

/** Run `interop.mjs args...` to completion; resolve with its parsed JSON line. */
function run(...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [INTEROP, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", d => (stdout += d))
    child.stderr.on("data", d => (stderr += d))
    child.on("close", code => {
      if (code !== 0) return reject(new Error(`interop ${args[0]} exited ${code}:\n${stderr}`))
      const lines = stdout.trim().split("\n")
      if (lines.length !== 1) return reject(new Error(`expected one stdout line, got:\n${stdout}`))
      resolve(JSON.parse(lines[0]))
    })
  })
}

/** Start the stock server on a free port; resolve once it printed its port. */
function startStockServer(dataDir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [INTEROP, "stock-server", "0", dataDir], { stdio: ["ignore", "pipe", "inherit"] })
    child.on("exit", code => reject(new Error(`stock server exited early with ${code}`)))
    createInterface({ input: child.stdout }).once("line", line => {
      resolve({ child, url: `ws://127.0.0.1:${JSON.parse(line).listening}/sync` })
    })
  })
}

const tests = {
  "create then read returns the document": async url => {
    const created = await run("create", url, JSON.stringify({ title: "hello", list: [1, 2] }))
    assert.match(created.url, /^automerge:/)
    assert.equal(created.heads.length, 1)
    const read = await run("read", url, created.url)
    assert.deepEqual(read, { doc: { title: "hello", list: [1, 2] } })
  },
  "change is acknowledged and visible to a new client": async url => {
    const { url: docUrl, heads } = await run("create", url, JSON.stringify({ n: 1 }))
    const changed = await run("change", url, docUrl, "nested", JSON.stringify({ x: [true, null] }))
    assert.notDeepEqual(changed.heads, heads)
    assert.deepEqual(changed.doc, { n: 1, nested: { x: [true, null] } })
    assert.deepEqual((await run("read", url, docUrl)).doc, changed.doc)
  },
  "unknown document is unavailable": async url => {
    assert.deepEqual(await run("read", url, generateAutomergeUrl()), { unavailable: true })
  },
  "ephemeral messages are relayed both ways": async url => {
    const result = await run("ephemeral", url)
    assert.equal(result.a_to_b, true)
    assert.equal(result.b_to_a, true)
  },
}

let server
let dataDir
let url = process.argv[2]
if (!url) {
  dataDir = mkdtempSync(join(tmpdir(), "konsens-stock-"))
  server = await startStockServer(dataDir)
  url = server.url
}
let passed = 0
let failed = 0
for (const [name, test] of Object.entries(tests)) {
  try {
    await test(url)
    passed++
    console.log(`ok - ${name}`)
  } catch (err) {
    failed++
    console.log(`not ok - ${name}\n${err.message}`)
  }
}
if (server) {
  server.child.removeAllListeners("exit")
  server.child.kill("SIGTERM")
  await new Promise(resolve => server.child.once("exit", resolve))
  rmSync(dataDir, { recursive: true, force: true })
}
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
