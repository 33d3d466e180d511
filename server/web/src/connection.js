// The Repo, and what the header shows about it: online / offline / syncing,
// and in how many fields the server has not acknowledged local edits yet. konsens
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

// What the server has, kept across reloads: its storage id, and for each
// document the heads it last acknowledged. A reload without a connection
// still knows what is not on the server yet.
const SERVER_KEY = "konsens.server"
const KEEP_HEADS = 500

function loadServer() {
  try {
    const kept = JSON.parse(localStorage.getItem(SERVER_KEY) ?? "null")
    if (kept && typeof kept.storageId === "string" && kept.heads && typeof kept.heads === "object") return kept
  } catch {
    // A damaged entry: start over, the next sync fills it.
  }
  return { storageId: null, heads: {} }
}

// The top-level keys of a document, as the member knows them. A text field
// edited a hundred times is one field with unsaved edits; each comment is one.
const NAMED = new Set(["title", "description", "problem", "recommendation", "rationale", "addressees", "sectors"])
const BOOKKEEPING = new Set(["authors"])
function fieldOf(path) {
  const [top, next] = path
  if (BOOKKEEPING.has(top)) return null
  if (NAMED.has(top)) return { key: top, label: top }
  if (top === "status" || top === "statusLog") return { key: "status", label: "field_status" }
  if (top === "comments") return { key: `comments/${next ?? ""}`, label: "field_comments" }
  if (top === "endorsements") return { key: `endorsements/${next ?? ""}`, label: "field_endorsements" }
  if (top === "workshops" || top === "recommendations") return { key: "workshops", label: "field_workshops" }
  return { key: String(top), label: "field_other" }
}

class ConnectionStatus {
  constructor(adapter) {
    this.connected = false
    this.server = loadServer()
    this.storageId = this.server.storageId
    this.handles = new Set()
    this.listeners = new Set()
    adapter.on("peer-candidate", ({ peerMetadata }) => {
      const storageId = peerMetadata?.storageId
      if (storageId && storageId !== this.server.storageId) {
        // Another server (or its data was reset): what we knew of it is void.
        this.server = { storageId, heads: {} }
        this.save()
      }
      this.storageId = storageId ?? this.storageId
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

  save() {
    try {
      const ids = Object.keys(this.server.heads)
      for (const id of ids.slice(0, Math.max(0, ids.length - KEEP_HEADS))) delete this.server.heads[id]
      localStorage.setItem(SERVER_KEY, JSON.stringify(this.server))
    } catch {
      // No storage (private mode, full quota): pending is known while the page lives.
    }
  }

  /** The heads the server acknowledged for `handle` (hex), or null if we never heard. */
  serverHeads(handle) {
    const id = handle.documentId
    const told = this.storageId ? handle.getSyncInfo(this.storageId)?.lastHeads : null
    if (told) {
      const heads = decodeHeads(told)
      const kept = this.server.heads[id]
      if (!kept || !sameHeads(kept, heads)) {
        // Re-inserted, so the most recently synced documents are the ones kept.
        delete this.server.heads[id]
        this.server.heads[id] = heads
        this.saveSoon()
      }
      return heads
    }
    return this.server.heads[id] ?? null
  }

  saveSoon() {
    if (this.saving) return
    this.saving = setTimeout(() => {
      this.saving = null
      this.save()
    }, 500)
  }

  /**
   * What the server does not have yet, as a member would name it: the
   * fields (and comments, and positions) with edits it has not
   * acknowledged, not the number of Automerge changes (one per keystroke).
   * `unsynced` is whether any document differs from the server at all.
   */
  pending() {
    const fields = new Map()
    let unsynced = false
    if (!this.storageId) return { count: 0, labels: [], unsynced }
    for (const handle of this.handles) {
      if (!handle.isReady()) continue
      const doc = handle.doc()
      const ours = A.getHeads(doc)
      const theirs = this.serverHeads(handle)
      if (theirs && sameHeads(ours, theirs)) continue
      unsynced = true
      const id = handle.documentId
      if (!theirs || theirs.length === 0) {
        fields.set(`${id}:document`, "field_document")
        continue
      }
      // The server has changes we have not received yet: we are behind, and
      // whether we are also ahead shows once they are here.
      if (!A.hasHeads(doc, theirs)) continue
      try {
        for (const patch of A.diff(doc, theirs, ours)) {
          const field = fieldOf(patch.path)
          if (field) fields.set(`${id}:${field.key}`, field.label)
        }
      } catch {
        fields.set(`${id}:other`, "field_other")
      }
    }
    return { count: fields.size, labels: [...new Set(fields.values())], unsynced }
  }

  state() {
    const { count, labels, unsynced } = this.pending()
    return { state: !this.connected ? "offline" : unsynced ? "syncing" : "online", pending: count, fields: labels, connected: this.connected }
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
