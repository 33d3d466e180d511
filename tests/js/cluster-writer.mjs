#!/usr/bin/env node
// A continuous writer for the cluster's failover tests (tests/tests/cluster.rs):
// one official automerge-repo client on one node of the cluster that appends
// 1, 2, 3, … to its own list `doc["w" + id]`, one change at a time, and
// prints each number once the server acknowledged it, so the test knows every
// acknowledged value even if the writer is killed.
//
//   node cluster-writer.mjs write <ws-url> <automerge-url> <id>
//     stdout: {"acked":<seq>,"at":<ms since start>} per acknowledged change;
//     on SIGTERM {"done":true,"acked":<last acknowledged seq>}, exit 0.
//   node cluster-writer.mjs read <ws-url> <automerge-url>
//     stdout: {"doc":{…},"heads":[hex…]} (one line; the document must exist)
//
// "Acknowledged" is what interop.mjs waits for: the server's remote heads
// for its storageId equal ours (see README.md). A write not acknowledged
// within INTEROP_TIMEOUT_MS (20 s) fails the writer with what it waited for.
import { connect, emit, fail, hexHeads, log, shutdownAndExit, startDeadline, waitFor, waitForAck } from "./harness.mjs"

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS ?? 20_000)

async function find(conn, url) {
  const handle = await waitFor(
    `the server's answer to our request for ${url}`,
    conn.repo.find(url, { allowableStates: ["ready", "unavailable"] })
  )
  if (handle.state === "unavailable") fail(`the server says ${url} is unavailable`)
  return handle
}

/** Reject after TIMEOUT_MS: a write the cluster never acknowledges is a failure, not a hang. */
function bounded(promise, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${TIMEOUT_MS} ms (INTEROP_TIMEOUT_MS) for ${what}`)), TIMEOUT_MS)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

async function write(wsUrl, url, id) {
  const started = performance.now()
  const key = `w${id}`
  const conn = await connect(wsUrl, `writer-${id}`)
  const handle = await find(conn, url)
  let acked = 0
  let stopping = false
  process.on("SIGTERM", async () => {
    if (stopping) return
    stopping = true
    log(`writer ${id}: SIGTERM after ${acked} acknowledged writes`)
    await emit({ done: true, acked })
    await shutdownAndExit([conn])
  })
  for (let seq = 1; !stopping; seq++) {
    handle.change(doc => {
      if (!doc[key]) doc[key] = []
      doc[key].push(seq)
    })
    await bounded(waitForAck(conn, handle, `${key} = …${seq}`), `${key} = …${seq} (heads ${JSON.stringify(hexHeads(handle))})`)
    if (stopping) break
    acked = seq
    await emit({ acked: seq, at: Math.round(performance.now() - started) })
  }
}

async function read(wsUrl, url) {
  startDeadline()
  const conn = await connect(wsUrl, "reader")
  const handle = await find(conn, url)
  await emit({ doc: handle.doc(), heads: hexHeads(handle) })
  await shutdownAndExit([conn])
}

const USAGE = `usage: node cluster-writer.mjs write <ws-url> <automerge-url> <id>
       node cluster-writer.mjs read  <ws-url> <automerge-url>`

const commands = { write: [write, 3], read: [read, 2] }
const [name, ...args] = process.argv.slice(2)
const entry = commands[name]
if (!entry || args.length !== entry[1]) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}
entry[0](...args).catch(err => fail(err?.stack ?? String(err)))
