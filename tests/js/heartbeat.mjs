#!/usr/bin/env node
// A healthy client that keeps syncing while a test attacks the server: the
// official automerge-repo client changes one document every INTERVAL_MS and
// waits for the server's acknowledgement each time.
//
//   node tests/js/heartbeat.mjs <ws-url> <duration-ms>
//
// Prints {"ready":true} once its document is acknowledged (the attack may
// start then), and at the end one JSON line: the acknowledged beats, the
// longest gap between two acknowledgements and the slowest acknowledgement.
// It fails (exit 1, like the interop commands) when the server closes its
// connection, sends an error, or does not acknowledge a beat in 10 s.
import { connect, emit, fail, log, shutdownAndExit } from "./harness.mjs"

const INTERVAL_MS = 100
const ACK_TIMEOUT_MS = 10_000

const [wsUrl, durationArg] = process.argv.slice(2)
const durationMs = Number(durationArg)
if (!wsUrl || !(durationMs > 0)) {
  process.stderr.write("usage: heartbeat.mjs <ws-url> <duration-ms>\n")
  process.exit(2)
}

const sameHeads = (a, b) => Array.isArray(a) && Array.isArray(b) && a.length === b.length && [...a].sort().join() === [...b].sort().join()

/** Resolve once the server reports our heads (see harness.mjs waitForAck), quietly. */
function acknowledged(conn, handle) {
  const acked = () => sameHeads(handle.getSyncInfo(conn.serverStorageId)?.lastHeads, handle.heads())
  return new Promise(resolve => {
    if (acked()) return resolve()
    const timer = setTimeout(() => fail(`no acknowledgement within ${ACK_TIMEOUT_MS} ms`), ACK_TIMEOUT_MS)
    const onRemoteHeads = () => {
      if (acked()) {
        clearTimeout(timer)
        handle.off("remote-heads", onRemoteHeads)
        resolve()
      }
    }
    handle.on("remote-heads", onRemoteHeads)
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, Math.max(0, ms)))

const conn = await connect(wsUrl, "heartbeat")
const handle = conn.repo.create({ beats: 0 })
await acknowledged(conn, handle)
await emit({ ready: true, url: handle.url })

let beats = 0
let maxGap = 0
let maxLatency = 0
let last = Date.now()
const end = last + durationMs
while (Date.now() < end) {
  const started = Date.now()
  handle.change(doc => {
    doc.beats = beats + 1
  })
  await acknowledged(conn, handle)
  const now = Date.now()
  beats += 1
  maxGap = Math.max(maxGap, now - last)
  maxLatency = Math.max(maxLatency, now - started)
  last = now
  await sleep(INTERVAL_MS - (Date.now() - started))
}
log(`heartbeat: ${beats} beats, longest gap ${maxGap} ms, slowest acknowledgement ${maxLatency} ms`)
await emit({ beats, max_gap_ms: maxGap, max_latency_ms: maxLatency })
await shutdownAndExit([conn])
