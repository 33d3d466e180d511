// The Repo, and what the header shows about it: online / offline / syncing,
// and how many local changes the server has not acknowledged yet. konsens
// advertises heads only once they are flushed to disk, so "acknowledged"
// here means "safe on the server" (see README: Connecting a client). And the
// server's refusals, which the WebSocket adapter itself only logs.

import * as A from "@automerge/automerge/slim"
import { Repo, decodeHeads, cbor } from "@automerge/automerge-repo/slim"
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb"

const RETRY_MS = 2000

/**
 * The Repo and its connection state. `onRefusal(message)` hears every
 * `error` message in which the server refuses changes (it carries
 * `refusal`, `refused` and `documentId`); it runs before anything else
 * reads from the socket again.
 */
export function openRepo({ onRefusal } = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:"
  const adapter = new BrowserWebSocketClientAdapter(`${scheme}//${location.host}/sync`, RETRY_MS)
  // Local copies survive reloads and dropped connections: edits made offline
  // are kept here and synced when the server is back. Recovery from a
  // refusal rewrites them, so the adapter is kept.
  const storage = new IndexedDBStorageAdapter("konsens")
  if (onRefusal) watchRefusals(adapter, onRefusal)
  const repo = new Repo({ network: [adapter], storage })
  const status = new ConnectionStatus(adapter)
  // A browser that knows it is offline may still hold a half-dead socket;
  // close it so the state shown is honest, and dial again when back online.
  window.addEventListener("offline", () => {
    adapter.disconnect()
    status.setConnected(false)
  })
  window.addEventListener("online", () => adapter.connect(repo.peerId, adapter.peerMetadata))
  return { repo, status, storage }
}

/**
 * The adapter's socket handler calls `this.receiveMessage`, which drops
 * `error` messages after logging them; wrap it on the instance to see them.
 */
function watchRefusals(adapter, onRefusal) {
  const receive = adapter.receiveMessage.bind(adapter)
  adapter.receiveMessage = bytes => {
    let message = null
    try {
      message = cbor.decode(new Uint8Array(bytes))
    } catch {
      // The adapter logs undecodable frames itself.
    }
    receive(bytes)
    if (message?.type === "error" && message.refusal && message.documentId) {
      try {
        onRefusal(message)
      } catch (err) {
        console.error("konsens: recovering from a refusal failed", err)
      }
    }
  }
}

class ConnectionStatus {
  constructor(adapter) {
    this.connected = false
    this.storageId = null
    this.handles = new Set()
    this.listeners = new Set()
    adapter.on("peer-candidate", ({ peerMetadata }) => {
      this.storageId = peerMetadata?.storageId ?? this.storageId
      this.setConnected(true)
    })
    adapter.on("peer-disconnected", () => this.setConnected(false))
  }

  setConnected(value) {
    this.connected = value
    this.notify()
  }

  /** Count a handle's unacknowledged changes from now on. */
  track(handle) {
    if (this.handles.has(handle)) return
    this.handles.add(handle)
    const notify = () => this.notify()
    handle.on("change", notify)
    handle.on("remote-heads", notify)
    this.notify()
  }

  pending() {
    // Before the first contact there is nothing to compare with.
    if (!this.storageId) return 0
    let count = 0
    for (const handle of this.handles) {
      if (!handle.isReady()) continue
      const doc = handle.doc()
      const ours = A.getHeads(doc)
      const theirs = decodeHeads(handle.getSyncInfo(this.storageId)?.lastHeads ?? [])
      if (sameHeads(ours, theirs)) continue
      try {
        // Changes we have that are not behind the server's heads.
        count += A.hasHeads(doc, theirs) ? A.getChangesSince(doc, theirs).length : 1
      } catch {
        count += 1
      }
    }
    return count
  }

  state() {
    const pending = this.pending()
    return { state: !this.connected ? "offline" : pending > 0 ? "syncing" : "online", pending }
  }

  subscribe(fn) {
    this.listeners.add(fn)
    fn(this.state())
    return () => this.listeners.delete(fn)
  }

  notify() {
    if (this.scheduled) return
    this.scheduled = true
    setTimeout(() => {
      this.scheduled = false
      const s = this.state()
      for (const fn of this.listeners) fn(s)
    }, 30)
  }
}

const sameHeads = (a, b) => a.length === b.length && [...a].sort().join() === [...b].sort().join()
