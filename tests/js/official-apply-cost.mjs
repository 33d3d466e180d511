// What one remote keystroke costs the official client itself: the
// automerge-js (wasm) `applyChanges` of one single-character change into a
// text of N single-keystroke changes, which every watcher of a workshop pays
// for every message that brings it changes, whatever the server. Reads the
// bench's cached texts (target/bench-cache/keystrokes-N.automerge, written by
// `konsens-bench --scenarios official`) and prints the median per size.
//
//   node tests/js/official-apply-cost.mjs target/bench-cache/keystrokes-20000.automerge …
//
// The figure bounds what a driver core hosting official clients can keep
// current: with W watchers, one keystroke costs W times it.
import * as A from "@automerge/automerge"
import { readFileSync } from "node:fs"

const ROUNDS = 21
const now = () => Number(process.hrtime.bigint()) / 1e6
const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

for (const path of process.argv.slice(2)) {
  let doc = A.load(new Uint8Array(readFileSync(path)))
  const changes = A.getAllChanges(doc).length
  const apply = []
  const batchOf8 = []
  for (let i = 0; i < ROUNDS; i++) {
    // Keystrokes made by another participant, as a watcher receives them.
    let other = A.clone(doc, { actor: "ab".repeat(16) })
    const made = []
    for (let k = 0; k < 8; k++) {
      other = A.change(other, d => A.splice(d, ["text"], 10 + i + k, 0, "x"))
      made.push(A.getLastLocalChange(other))
    }
    // applyChanges consumes the document it is given: one copy for each.
    const forOne = A.clone(doc)
    const forEight = A.clone(doc)
    let t = now()
    const [one] = A.applyChanges(forOne, [made[0]])
    apply.push(now() - t)
    t = now()
    A.applyChanges(forEight, made)
    batchOf8.push(now() - t)
    doc = one
  }
  console.log(
    `${path}: ${changes} changes; applying 1 keystroke: median ${median(apply).toFixed(2)} ms; ` +
      `8 keystrokes in one message: median ${median(batchOf8).toFixed(2)} ms`,
  )
}
