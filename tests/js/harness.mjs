// Shared plumbing for interop.mjs: a deadline that names what we were waiting
// for, one-line JSON output, a traced WebSocket client adapter, and the
// "server has acknowledged our heads" wait.
import * as Automerge from "@automerge/automerge"
import { Repo, cbor, decodeHeads } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT_MS ?? 20_000)
const TRACE = Boolean(process.env.INTEROP_TRACE)
// The adapter's default is 5 s; on loopback a server that is still starting
// should not cost us that much of the overall deadline.
const RETRY_INTERVAL_MS = 1_000

export function log(...args) {
  console.error("[interop]", ...args)
}

export function fail(message) {
  process.stderr.write(`interop: FAILED: ${message}\n`)
  process.exit(1)
}

// A socket error other than ECONNREFUSED is thrown from inside the adapter's
// event listener (e.g. "Unexpected server response: 404" for a wrong path),
// so it can only be caught here.
process.on("uncaughtException", err => fail(`${err?.message ?? err} (while waiting for ${currentWait()})\n${err?.stack ?? ""}`))
process.on("unhandledRejection", err => fail(`unhandled rejection: ${err?.message ?? err} (while waiting for ${currentWait()})\n${err?.stack ?? ""}`))

// What we are currently blocked on; a string or a function producing one (so
// the timeout message can include state observed up to that moment).
let waitingFor = "the command to finish"
const currentWait = () => (typeof waitingFor === "function" ? waitingFor() : waitingFor)

/** Start the overall deadline. Not used by the long-running stock server. */
export function startDeadline() {
  if (!(TIMEOUT_MS > 0)) fail(`INTEROP_TIMEOUT_MS must be a positive number of milliseconds, got ${process.env.INTEROP_TIMEOUT_MS}`)
  setTimeout(() => {
    fail(`timed out after ${TIMEOUT_MS} ms (INTEROP_TIMEOUT_MS) waiting for ${currentWait()}`)
  }, TIMEOUT_MS)
}

/** Await `promise`, recording `description` as what the deadline reports. */
export async function waitFor(description, promise) {
  waitingFor = description
  const label = typeof description === "function" ? description() : description
  log(`waiting for ${label}`)
  const value = await promise
  waitingFor = "(between steps)"
  return value
}

/** Print the single result line on stdout. */
export function emit(result) {
  return new Promise(resolve => process.stdout.write(JSON.stringify(result) + "\n", resolve))
}

/** Hex heads: the form automerge-rs prints (`ChangeHash`), not the repo's bs58 url form. */
export const hexHeads = handle => decodeHeads(handle.heads())

const sameHeads = (a, b) =>
  Array.isArray(a) && Array.isArray(b) && a.length === b.length && [...a].sort().join() === [...b].sort().join()

// cbor-x encodes `undefined` map values (e.g. a storage-less client's
// `peerMetadata.storageId`) as CBOR undefined; show them instead of dropping them.
const traceJson = value => JSON.stringify(value, (_key, v) => (v === undefined ? "<undefined>" : v))

/** Compact, human-readable view of one protocol frame for INTEROP_TRACE. */
function describeFrame(msg) {
  const { data, ...rest } = msg
  if (!(data instanceof Uint8Array)) return rest
  if (msg.type === "sync" || msg.type === "request") {
    try {
      const s = Automerge.decodeSyncMessage(data)
      return { ...rest, sync: { heads: s.heads, need: s.need, have: s.have.length, changes: s.changes.length } }
    } catch (e) {
      return { ...rest, data: `<${data.byteLength} bytes, not a sync message: ${e.message}>` }
    }
  }
  if (msg.type === "ephemeral") {
    try {
      return { ...rest, data: cbor.decode(data) }
    } catch {
      // fall through to the byte count
    }
  }
  return { ...rest, data: `<${data.byteLength} bytes>` }
}

/**
 * The stock client adapter, plus: frame tracing, failing on the server's
 * `error` frame (the stock adapter only logs it via `debug`), and failing when
 * the server drops the connection (the stock adapter silently reconnects, which
 * would hide server bugs).
 */
class ClientAdapter extends WebSocketClientAdapter {
  #label
  closing = false
  /** Frames sent, and refusals received when `tolerateRefusals` (see `connect`). */
  sent = 0
  refusals = []
  tolerateRefusals = false

  constructor(url, label) {
    super(url, RETRY_INTERVAL_MS)
    this.#label = label
    this.on("peer-disconnected", () => {
      if (!this.closing) {
        fail(`${label}: server closed the WebSocket connection while waiting for ${currentWait()}`)
      }
    })
  }

  send(message) {
    if (TRACE) log(`${this.#label} ->`, traceJson(describeFrame(message)))
    this.sent += 1
    super.send(message)
  }

  receiveMessage(bytes) {
    let msg
    try {
      msg = cbor.decode(new Uint8Array(bytes))
    } catch (e) {
      log(`${this.#label} <- undecodable frame (${bytes.byteLength} bytes): ${e.message}`)
    }
    if (msg && TRACE) log(`${this.#label} <-`, traceJson(describeFrame(msg)))
    if (msg?.type === "error" && this.tolerateRefusals && msg.refusal) {
      this.refusals.push(msg)
      this.emit("refusal", msg)
    } else if (msg?.type === "error") {
      fail(`${this.#label}: server sent an error frame: ${JSON.stringify(msg)}`)
    }
    super.receiveMessage(bytes)
  }
}

/**
 * A storage-less Repo dialing `url`, resolved once the server has answered our
 * `join` with `peer`. Returns the repo, the server's peer id and storageId.
 */
export async function connect(url, label = "client", { tolerateRefusals = false } = {}) {
  const adapter = new ClientAdapter(url, label)
  adapter.tolerateRefusals = tolerateRefusals
  // Default sharePolicy (announce everything) so documents we create are
  // offered to the server without it asking.
  const repo = new Repo({ network: [adapter] })
  const peer = await waitFor(
    `${label}: the server's "peer" reply to our "join" on ${url}`,
    new Promise(resolve => adapter.once("peer-candidate", resolve))
  )
  const storageId = peer.peerMetadata?.storageId
  log(`${label}: connected as ${repo.peerId} to server peer ${peer.peerId}, metadata ${JSON.stringify(peer.peerMetadata)}`)
  if (!storageId) {
    fail(`${label}: the server's "peer" message has no peerMetadata.storageId, so its acknowledgement cannot be observed: ${JSON.stringify(peer)}`)
  }
  return { repo, adapter, serverPeerId: peer.peerId, serverStorageId: storageId }
}

/**
 * Resolve once the server reports our current heads for `handle`.
 *
 * automerge-repo records, per remote storageId, the heads that peer announced
 * in its last sync message (`handle.getSyncInfo(storageId).lastHeads`, updated
 * with a `remote-heads` event). The server only announces heads it has
 * applied, so equality with our heads is its acknowledgement. Checked again
 * when our heads change too: a sync message's `remote-heads` comes before its
 * changes are applied here, so with other writers busy the server's report
 * would otherwise always be one message ahead of our heads.
 */
export function waitForAck(conn, handle, what) {
  const { serverStorageId } = conn
  const acked = () => sameHeads(handle.getSyncInfo(serverStorageId)?.lastHeads, handle.heads())
  const description = () =>
    `the server (storageId ${serverStorageId}) to acknowledge ${what}: ` +
    `our heads ${JSON.stringify(hexHeads(handle))}, server last reported ` +
    JSON.stringify(decodeHeads(handle.getSyncInfo(serverStorageId)?.lastHeads ?? []))
  return waitFor(
    description,
    new Promise(resolve => {
      if (acked()) return resolve()
      const check = () => {
        if (acked()) {
          handle.off("remote-heads", check)
          handle.off("heads-changed", check)
          resolve()
        }
      }
      handle.on("remote-heads", check)
      handle.on("heads-changed", check)
    })
  )
}

/**
 * Close connections politely (WebSocket close handshake, bounded by 1 s so a
 * server that never answers the close frame cannot hang us), then exit.
 */
export async function shutdownAndExit(conns, code = 0) {
  const closed = conns.map(({ repo, adapter }) => {
    adapter.closing = true
    const socket = adapter.socket
    const done = socket && socket.readyState !== socket.CLOSED
      ? new Promise(resolve => socket.once("close", () => resolve(true)))
      : Promise.resolve(true)
    void repo.shutdown()
    return Promise.race([done, new Promise(resolve => setTimeout(() => resolve(false), 1_000))]).then(ok => {
      if (!ok) log(`warning: server did not complete the WebSocket close handshake within 1 s`)
    })
  })
  await Promise.all(closed)
  process.exit(code)
}
