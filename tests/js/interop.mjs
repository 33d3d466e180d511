#!/usr/bin/env node
// Interop harness: drives the official automerge-repo 2.5.x client (and, for
// reference, the stock sync server) so Rust tests can check konsens against it.
// Every client command prints exactly one JSON line on stdout; logs go to stderr.
// See README.md for the commands and their output.
import { randomUUID } from "node:crypto"
import fs from "node:fs"
import http from "node:http"
import os from "node:os"
import { Repo, isValidAutomergeUrl } from "@automerge/automerge-repo"
import { WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { WebSocketServer } from "ws"
import { connect, emit, fail, hexHeads, log, shutdownAndExit, startDeadline, waitFor, waitForAck } from "./harness.mjs"

function parseJson(text, what) {
  try {
    return JSON.parse(text)
  } catch (e) {
    fail(`${what} is not valid JSON (${e.message}): ${text}`)
  }
}

function requireAutomergeUrl(url) {
  if (!isValidAutomergeUrl(url)) fail(`not a valid automerge url (automerge:<bs58check of a 16-byte id>): ${url}`)
}

/** find() that resolves for "unavailable" too, instead of rejecting. */
function findOrUnavailable(conn, url) {
  return waitFor(
    `the server's answer ("sync" or "doc-unavailable") to our request for ${url}`,
    conn.repo.find(url, { allowableStates: ["ready", "unavailable"] })
  )
}

async function create(wsUrl, json) {
  const initial = parseJson(json, "<json>")
  if (initial === null || typeof initial !== "object" || Array.isArray(initial)) {
    fail(`<json> must be a JSON object (an Automerge document root is a map), got: ${json}`)
  }
  const conn = await connect(wsUrl)
  const handle = conn.repo.create(initial)
  log(`created ${handle.url}`)
  await waitForAck(conn, handle, `the new document ${handle.url}`)
  await emit({ url: handle.url, heads: hexHeads(handle) })
  await shutdownAndExit([conn])
}

async function read(wsUrl, url) {
  requireAutomergeUrl(url)
  const conn = await connect(wsUrl)
  const handle = await findOrUnavailable(conn, url)
  await emit(handle.state === "unavailable" ? { unavailable: true } : { doc: handle.doc() })
  await shutdownAndExit([conn])
}

async function change(wsUrl, url, key, jsonValue) {
  requireAutomergeUrl(url)
  const value = parseJson(jsonValue, "<json-value>")
  const conn = await connect(wsUrl)
  const handle = await findOrUnavailable(conn, url)
  if (handle.state === "unavailable") fail(`the server says ${url} is unavailable`)
  handle.change(doc => {
    doc[key] = value
  })
  await waitForAck(conn, handle, `our change setting ${JSON.stringify(key)} in ${url}`)
  await emit({ heads: hexHeads(handle), doc: handle.doc() })
  await shutdownAndExit([conn])
}

/**
 * The stock client holding a change the server refuses (it does not recover):
 * make the change, wait for the refusal, then count the frames the client
 * sends during `seconds` while another client keeps editing the document, and
 * whether those edits still arrive.
 */
async function stubborn(wsUrl, otherWsUrl, url, key, jsonValue, seconds) {
  requireAutomergeUrl(url)
  const value = parseJson(jsonValue, "<json-value>")
  const conn = await connect(wsUrl, "stubborn", { tolerateRefusals: true })
  const other = await connect(otherWsUrl, "other")
  const handle = await findOrUnavailable(conn, url)
  const otherHandle = await findOrUnavailable(other, url)
  if (handle.state === "unavailable" || otherHandle.state === "unavailable") fail(`the server says ${url} is unavailable`)
  const refused = new Promise(resolve => conn.adapter.once("refusal", resolve))
  handle.change(doc => {
    doc[key] = value
  })
  const refusal = await waitFor("the server's refusal of our change", refused)
  const before = conn.adapter.sent
  // Another member keeps editing meanwhile; does the stubborn client still get it?
  const ticks = Math.max(1, Math.round(Number(seconds) * 4))
  for (let i = 0; i < ticks; i++) {
    otherHandle.change(doc => {
      doc.tick = i
    })
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  await waitForAck(other, otherHandle, "the other client's edits")
  await waitFor(
    "the other client's last edit at the stubborn client",
    new Promise(resolve => {
      const check = () => handle.doc()?.tick === ticks - 1 && resolve()
      handle.on("change", check)
      check()
    })
  )
  await emit({ code: refusal.refusal, refused: refusal.refused, framesSent: conn.adapter.sent - before, refusals: conn.adapter.refusals.length })
  await shutdownAndExit([conn, other])
}

/** Resolve with the first ephemeral message on `handle` from `senderId` carrying `nonce`. */
function nextEphemeral(handle, senderId, nonce) {
  return new Promise(resolve => {
    const onMessage = event => {
      if (event.senderId === senderId && event.message?.nonce === nonce) {
        handle.off("ephemeral-message", onMessage)
        resolve(event.message)
      }
    }
    handle.on("ephemeral-message", onMessage)
  })
}

async function ephemeral(wsUrl, otherWsUrl = wsUrl) {
  // Two repos = two WebSocket connections with different peer ids (to two
  // nodes of a cluster with ephemeral-across).
  const a = await connect(wsUrl, "A")
  const b = await connect(otherWsUrl, "B")

  const handleA = a.repo.create({ purpose: "ephemeral relay test" })
  await waitForAck(a, handleA, `A's document ${handleA.url}`)
  // B's find makes the server count B as a peer of this document, which is
  // what ephemeral relay is keyed on.
  const handleB = await findOrUnavailable(b, handleA.url)
  if (handleB.state === "unavailable") fail(`B: the server says ${handleA.url} (created by A) is unavailable`)

  // Record every delivery: each side must see exactly the other's messages,
  // once, under the originator's peer id. Clients re-forward ephemeral
  // messages they receive to their other peers (here: back to the server), so
  // a server that neither deduplicates by (senderId, sessionId, count) nor
  // keeps the original senderId bounces messages back to their originator.
  const deliveries = { A: [], B: [] }
  handleA.on("ephemeral-message", e => deliveries.A.push({ senderId: e.senderId, message: e.message }))
  handleB.on("ephemeral-message", e => deliveries.B.push({ senderId: e.senderId, message: e.message }))

  const message = { nonce: randomUUID(), from: "A" }
  const received = nextEphemeral(handleB, a.repo.peerId, message.nonce)
  handleA.broadcast(message)
  const atB = await waitFor(`B to receive A's ephemeral message ${JSON.stringify(message)} via the server`, received)

  const reply = { nonce: randomUUID(), from: "B" }
  const receivedReply = nextEphemeral(handleA, b.repo.peerId, reply.nonce)
  handleB.broadcast(reply)
  const atA = await waitFor(`A to receive B's ephemeral message ${JSON.stringify(reply)} via the server`, receivedReply)

  // A barrier instead of a sleep: frames from one connection are relayed in
  // order, so once B has this, anything the server relayed to B because of
  // A's re-forward of `reply` has arrived. Likewise, B re-forwarded `message`
  // before sending `reply`, so its effects at A came before `reply`.
  const barrier = { nonce: randomUUID(), from: "A", barrier: true }
  const receivedBarrier = nextEphemeral(handleB, a.repo.peerId, barrier.nonce)
  handleA.broadcast(barrier)
  await waitFor(`B to receive A's final (barrier) ephemeral message via the server`, receivedBarrier)

  const expected = {
    A: [{ senderId: b.repo.peerId, message: reply }],
    B: [{ senderId: a.repo.peerId, message: message }, { senderId: a.repo.peerId, message: barrier }],
  }
  for (const side of ["A", "B"]) {
    if (JSON.stringify(deliveries[side]) !== JSON.stringify(expected[side])) {
      fail(
        `${side} (${side === "A" ? a.repo.peerId : b.repo.peerId}) got unexpected ephemeral deliveries ` +
          `(duplicates, echoes or a rewritten senderId).\n  expected: ${JSON.stringify(expected[side])}\n` +
          `  got:      ${JSON.stringify(deliveries[side])}\n  (rerun with INTEROP_TRACE=1 to see the frames)`
      )
    }
  }

  await emit({ a_to_b: true, b_to_a: true, message: atB, reply: atA })
  await shutdownAndExit([a, b])
}

/**
 * The stock sync server, configured like automerge-repo-sync-server: a
 * path-agnostic WebSocket upgrade on a plain HTTP server, filesystem storage
 * (which gives it a storageId) and `sharePolicy: async () => false` (it only
 * syncs documents a peer asks for by id). Port 0 picks a free port; the chosen
 * one is printed.
 */
async function stockServer(portArg, dataDir) {
  const port = Number(portArg)
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`<port> must be a port number, got ${portArg}`)
  fs.mkdirSync(dataDir, { recursive: true })

  const wss = new WebSocketServer({ noServer: true })
  const server = http.createServer((_req, res) => res.end("automerge-repo stock sync server (konsens interop)\n"))
  server.on("upgrade", (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, ws => wss.emit("connection", ws, req))
  })
  const repo = new Repo({
    network: [new WebSocketServerAdapter(wss)],
    storage: new NodeFSStorageAdapter(dataDir),
    peerId: `storage-server-${os.hostname()}`,
    sharePolicy: async () => false,
  })

  let stopping = false
  const stop = async signal => {
    if (stopping) return
    stopping = true
    log(`stock server: ${signal}, flushing storage and exiting`)
    // Like repo.shutdown(), but flush only ready documents: in 2.5.6 flush()
    // throws on handles that ended up "unavailable" (someone asked for an
    // unknown id).
    repo.networkSubsystem.disconnect()
    const ready = Object.values(repo.handles).filter(handle => handle.isReady())
    await repo.flush(ready.map(handle => handle.documentId))
    wss.close()
    server.close()
    process.exit(0)
  }
  process.on("SIGTERM", () => void stop("SIGTERM"))
  process.on("SIGINT", () => void stop("SIGINT"))

  server.on("error", err => fail(`stock server: cannot listen on 127.0.0.1:${port}: ${err.message}`))
  server.listen(port, "127.0.0.1", async () => {
    const { port: actual } = server.address()
    // Read the storageId the repo announces rather than calling repo.storageId():
    // on a fresh data dir concurrent calls each generate (and save) a new id.
    const { storageId } = await repo.networkSubsystem.peerMetadata
    log(`stock server: listening on ws://127.0.0.1:${actual} (any path), data in ${dataDir}, storageId ${storageId}`)
    await emit({ listening: actual })
  })
}

const USAGE = `usage: node interop.mjs <command> ...
  create       <ws-url> <json-object>
  read         <ws-url> <automerge-url>
  change       <ws-url> <automerge-url> <key> <json-value>
  ephemeral    <ws-url>
  ephemeral-across <ws-url> <other-ws-url>   (as ephemeral, B on the other url)
  stubborn     <ws-url> <other-ws-url> <automerge-url> <key> <json-value> <seconds>
  stock-server <port> <data-dir>`

const commands = {
  create: [create, 2],
  read: [read, 2],
  change: [change, 4],
  ephemeral: [ephemeral, 1],
  "ephemeral-across": [ephemeral, 2],
  stubborn: [stubborn, 6],
  "stock-server": [stockServer, 2],
}

const [name, ...args] = process.argv.slice(2)
const entry = commands[name]
if (!entry || args.length !== entry[1]) {
  process.stderr.write(`${USAGE}\n`)
  process.exit(2)
}
if (name !== "stock-server") startDeadline()
entry[0](...args).catch(err => fail(err?.stack ?? String(err)))
