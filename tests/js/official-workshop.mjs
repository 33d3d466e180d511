// Official automerge-repo 2.5.x clients as workshop participants, driven by
// `konsens-bench` (bench/src/official.rs) over stdin/stdout, one JSON object a
// line each way. One process hosts many participants: each is its own `Repo`
// (own peer id, own WebSocket, no storage) holding one `DocHandle`.
//
//   node official-workshop.mjs <process-index>
//
// Commands (stdin) and their one-line answers (stdout):
//   {"cmd":"connect","url","doc","participants":[i…]}  → {"ok":"connect","ms"}
//   {"cmd":"type","typists":k,"count":c,"rate":r,"record":bool,"base":n}
//        participants with index < k type c keystrokes each, r per second
//        each (staggered over one period)             → {"ok":"type","typed":[[hash,t,i]…]}
//   {"cmd":"wait","hashes":[…],"ms":T}   until every participant here holds
//        every hash (or T ms passed)                  → {"ok":"wait","complete":bool,"seen":[[hash,t,i]…]}
//   {"cmd":"frames"}  frames recorded since the last recorded `type` began
//                                                     → {"ok":"frames","frames":[…]}
//   {"cmd":"quit"}                                    → exits
//
// Times are `process.hrtime` (CLOCK_MONOTONIC) in milliseconds, so the bench
// can compare a keystroke typed in one process with its arrival in another.
// Logs go to stderr; stdout carries nothing but answers.
import * as A from "@automerge/automerge"
import { Repo, cbor } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import * as readline from "node:readline"

const PROCESS = Number(process.argv[2] ?? 0)
const LETTERS = ["k", "o", "n", "s", "e", "n", "s", " "]

const now = () => Number(process.hrtime.bigint()) / 1e6
const log = (...a) => console.error(`[official ${PROCESS}]`, ...a)
const answer = obj => process.stdout.write(JSON.stringify(obj) + "\n")

process.on("uncaughtException", e => {
  log("uncaught", e?.stack ?? e)
  answer({ error: String(e?.message ?? e) })
  process.exit(1)
})

/** Frames of recorded steps: what the official client sends and receives. */
let recording = false
let frames = []

/** One frame, reduced to what the comparison needs (no bytes, no ids). */
function describe(participant, dir, msg, size) {
  const f = { t: now(), p: participant, dir, type: msg.type, size }
  if ((msg.type === "sync" || msg.type === "request") && msg.data instanceof Uint8Array) {
    try {
      const s = A.decodeSyncMessage(msg.data)
      f.heads = s.heads.length
      f.need = s.need.length
      f.have = s.have.map(h => ({ lastSync: h.lastSync.length, bloom: h.bloom.byteLength }))
      f.changes = s.changes.length
      f.changeBytes = s.changes.reduce((n, c) => n + c.byteLength, 0)
      f.data = msg.data.byteLength
    } catch (e) {
      f.undecodable = e.message
    }
  }
  return f
}

/** The stock adapter, with a tap on both directions while recording. */
class TappedAdapter extends WebSocketClientAdapter {
  constructor(url, index) {
    super(url, 1000)
    this.index = index
  }
  send(message) {
    // The frame's own size is only known for what arrives (the adapter
    // encodes outgoing ones; encoding twice would add to the load); `data`
    // is the sync message's size either way.
    if (recording) frames.push(describe(this.index, "out", message, undefined))
    super.send(message)
  }
  receiveMessage(bytes) {
    if (recording) {
      try {
        frames.push(describe(this.index, "in", cbor.decode(new Uint8Array(bytes)), bytes.byteLength))
      } catch {
        frames.push({ t: now(), p: this.index, dir: "in", type: "undecodable", size: bytes.byteLength })
      }
    }
    super.receiveMessage(bytes)
  }
}

/** index → { repo, adapter, handle, actor, seen: Map(hash → t), waiters } */
const participants = new Map()
// Called after every change any participant sees (for `wait`).
let onAnyChange = () => {}

async function connectOne(url, docUrl, index) {
  const adapter = new TappedAdapter(url, index)
  const repo = new Repo({ network: [adapter], peerId: `official-${index}` })
  await new Promise(resolve => adapter.once("peer-candidate", resolve))
  const handle = await repo.find(docUrl)
  const p = { repo, adapter, handle, actor: A.getActorId(handle.doc()), seen: new Map() }
  handle.on("change", ({ patchInfo }) => {
    const t = now()
    const before = A.getHeads(patchInfo.before)
    for (const meta of A.getChangesMetaSince(patchInfo.after, before)) {
      if (meta.actor !== p.actor && !p.seen.has(meta.hash)) p.seen.set(meta.hash, t)
    }
    onAnyChange(p)
  })
  participants.set(index, p)
}

async function connect({ url, doc, participants: indices }) {
  const t0 = now()
  // A few at a time: each loads the whole document, which costs CPU.
  const queue = [...indices]
  const workers = Array.from({ length: Math.min(4, queue.length) }, async () => {
    while (queue.length) await connectOne(url, doc, queue.shift())
  })
  await Promise.all(workers)
  answer({ ok: "connect", ms: now() - t0 })
}

async function type({ typists, count, rate, record, base }) {
  const period = 1000 / rate
  const typed = []
  for (const p of participants.values()) p.seen.clear()
  if (record) {
    frames = []
    recording = true
  }
  const timers = []
  const mine = [...participants.entries()].filter(([i]) => i < typists)
  await new Promise(resolve => {
    if (count < 1) return resolve()
    // A process without typists answers once the typing is over, so all
    // processes answer together.
    if (mine.length === 0) return setTimeout(resolve, count * period)
    let running = mine.length
    for (const [i, p] of mine) {
      // Stagger the typists over one period, as the light-peer workshop does.
      const offset = (period * i) / typists
      let n = 0
      const position = Math.floor(((i + 1) * base) / (typists + 1))
      const tick = () => {
        const letter = LETTERS[n % LETTERS.length]
        const at = position + n
        // Always inside the text: it started with `base` characters and only grows.
        p.handle.change(d => A.splice(d, ["text"], at, 0, letter))
        // A local change depends on every head, so it is the only head now.
        const [hash] = A.getHeads(p.handle.doc())
        typed.push([hash, now(), i])
        n += 1
        if (n >= count) {
          if (--running === 0) resolve()
          return
        }
        timers.push(setTimeout(tick, Math.max(0, offset + n * period - (now() - start))))
      }
      const start = now()
      timers.push(setTimeout(tick, offset))
    }
  })
  answer({ ok: "type", typed })
}

function wait({ hashes, ms }) {
  // Each participant is checked when its own document changes, not all of
  // them on every change: 40 watchers would otherwise cost 40 checks each.
  const pending = new Set([...participants.values()].filter(p => !A.hasHeads(p.handle.doc(), hashes)))
  return new Promise(resolve => {
    const finish = done => {
      onAnyChange = () => {}
      clearTimeout(timer)
      const seen = []
      for (const [i, p] of participants) for (const [h, t] of p.seen) seen.push([h, t, i])
      answer({ ok: "wait", complete: done, seen })
      resolve()
    }
    const timer = setTimeout(() => finish(false), ms)
    onAnyChange = p => {
      if (pending.has(p) && A.hasHeads(p.handle.doc(), hashes)) {
        pending.delete(p)
        if (pending.size === 0) finish(true)
      }
    }
    if (pending.size === 0) finish(true)
  })
}

const rl = readline.createInterface({ input: process.stdin })
// Commands run one after the other, in order.
let chain = Promise.resolve()
rl.on("line", line => {
  chain = chain.then(async () => {
    const cmd = JSON.parse(line)
    switch (cmd.cmd) {
      case "connect":
        return connect(cmd)
      case "type":
        return type(cmd)
      case "wait":
        return wait(cmd)
      case "frames":
        // Recording ends here, not with `wait`: acknowledgements that follow
        // the last arrival belong to the pattern too.
        recording = false
        return answer({ ok: "frames", frames })
      case "quit":
        for (const p of participants.values()) void p.repo.shutdown()
        process.exit(0)
      default:
        throw new Error(`unknown command ${cmd.cmd}`)
    }
  })
})
rl.on("close", () => process.exit(0))
