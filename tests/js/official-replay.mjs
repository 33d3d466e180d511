// The automerge-paper trace typed by an official automerge-repo 2.5.x client,
// for `konsens-bench --scenarios trace` (bench/src/scenarios/replay.rs): one
// `Repo` (own WebSocket, no storage) opens the document the bench seeded
// (an empty text), then types every edit of the trace as its own change
// through its `DocHandle`; the repo sends them as it does for any
// application. The bench's reader decides when the server has relayed it all.
//
//   node official-replay.mjs <ws-url> <document-url> <trace.json.gz> <edits>
//
// Lines on stdout, one JSON object each:
//   {"ok":"ready"}                          the document is open; typing starts
//                                           when a line arrives on stdin
//   {"ok":"typed","edits":n,"ms":t,"heads":[…],"text":"…","endContent":bool}
//                                           every edit is made (not yet sent)
// Logs go to stderr.
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import * as fs from "node:fs"
import * as readline from "node:readline"
import * as zlib from "node:zlib"

const [url, docUrl, tracePath, editsArg] = process.argv.slice(2)
// Edits typed between turns of the event loop, as the Rust writer does: the
// repo's sync (throttled to every 100 ms) and the socket's pings run between.
const SLICE = 256

const now = () => Number(process.hrtime.bigint()) / 1e6
const log = (...a) => console.error("[official replay]", ...a)
const answer = obj => process.stdout.write(JSON.stringify(obj) + "\n")

process.on("uncaughtException", e => {
  log("uncaught", e?.stack ?? e)
  answer({ error: String(e?.message ?? e) })
  process.exit(1)
})

const trace = JSON.parse(zlib.gunzipSync(fs.readFileSync(tracePath)))
// The trace's positions count code points; JS text indices count UTF-16
// units. The same for this trace (ASCII only); anything else would be wrong.
if ([...trace.endContent].some(c => c.length > 1)) throw new Error("trace holds characters outside the BMP")
const edits = trace.txns.flatMap(t => t.patches).slice(0, Number(editsArg))

const adapter = new WebSocketClientAdapter(url, 1000)
const repo = new Repo({ network: [adapter], peerId: "official-paper-writer" })
await new Promise(resolve => adapter.once("peer-candidate", resolve))
const handle = await repo.find(docUrl)
answer({ ok: "ready" })

const rl = readline.createInterface({ input: process.stdin })
await new Promise(resolve => rl.once("line", resolve))

const t0 = now()
for (let i = 0; i < edits.length; i += SLICE) {
  for (const [pos, del, ins] of edits.slice(i, i + SLICE)) {
    handle.change(d => A.splice(d, ["text"], pos, del, ins))
  }
  await new Promise(resolve => setImmediate(resolve))
}
const text = handle.doc().text
answer({
  ok: "typed",
  edits: edits.length,
  ms: now() - t0,
  heads: A.getHeads(handle.doc()),
  text,
  endContent: text === trace.endContent,
})
// The repo keeps sending until the bench has seen the reader catch up and
// closes stdin.
rl.on("close", () => process.exit(0))
