// What happens when the server refuses a change (issue 10: nothing a member
// writes is stranded). Automerge changes form a DAG: every later local edit
// depends on the refused one, so the server refuses those too, and the
// client would offer them again and again. On a refusal we therefore
//
// 1. drop the refused changes F and everything of ours that depends on them
//    (T), keeping the rest of the document ("clean");
// 2. make the member's later edits (T \ F) again as fresh changes onto clean,
//    with a fresh actor, unless the member may no longer write: the refused
//    status or membership change itself is never made again;
// 3. replace the handle's document (synchronously, so no keystroke is lost)
//    and let automerge-repo send the fresh changes;
// 4. make IndexedDB forget T, or a reload would bring it back;
// 5. keep what was dropped, readable, for the notice (refusals.js).
//
// The server's refusal is an automerge-repo `error` message with `refusal`
// (a code), `refused` (hex change hashes) and `documentId`; connection.js
// hands those to `recoverFromRefusal`.

import * as A from "@automerge/automerge/slim"
import { addRefusal, updateRefusal } from "./refusals.js"

/** Codes whose refused changes are only some of the message's: the member's other edits are fine and are made again. */
export const REAPPLIED_CODES = new Set(["foreign-actor", "decision", "membership", "kind", "identity"])

/** Keys never made again: a refused decision must not be offered again under a new name. */
const NEVER_REAPPLIED = new Set(["status", "statusLog"])
/** Keys that only say who wrote what (open servers): not the member's content. */
const BOOKKEEPING = new Set(["authors"])

const RECOMMENDATION_SCHEMA = "konsens/recommendation@1"
const PROCESS_SCHEMA = "konsens/process@1"

// ---------------------------------------------------------------------------
// The rebuild itself: pure, on Automerge documents (exposed to tests).

/**
 * Rebuild `doc` without the refused changes and whatever depends on them.
 *
 * @param doc      the current document (not changed)
 * @param refused  hex hashes of the refused changes
 * @param options  {reapply: make the later edits again, skip: more top-level keys not to make again, actor}
 * @returns null when none of the refused changes is in `doc`; otherwise
 *   {doc, dropped: Uint8Array[] (the binary changes of T), refusedHere,
 *    removed: number, later: whether edits depended on the refused ones,
 *    reapplied: [keys], skipped: [keys], content: [{field, text, reapplied}]}
 */
export function rebuild(doc, refused, { reapply = true, skip = [], actor } = {}) {
  const meta = A.getChangesMetaSince(doc, [])
  const deps = new Map(meta.map(m => [m.hash, m.deps]))
  const F = new Set(refused.map(hex).filter(h => deps.has(h)))
  if (F.size === 0) return null

  // T = F and its descendants. The metadata lists every change after its
  // dependencies, so one pass in order finds them all.
  const T = new Set()
  for (const m of meta) if (F.has(m.hash) || m.deps.some(d => T.has(d))) T.add(m.hash)

  // Both "clean" (no T) and "before" (no T \ F) contain every ancestor of what
  // they contain, so each is the document at its own heads.
  const cleanHeads = headsOf(meta, h => !T.has(h))
  const beforeHeads = headsOf(meta, h => !T.has(h) || F.has(h))
  const dropped = A.getChangesSince(doc, cleanHeads)
  const clean = A.view(doc, cleanHeads)
  const before = A.view(doc, beforeHeads)
  const after = doc

  let rebuilt = cleanHeads.length ? A.clone(clean, actor) : A.init(actor)
  const reapplied = []
  const skipped = []
  if (reapply && T.size > F.size) {
    const skipKeys = new Set([...NEVER_REAPPLIED, ...skip])
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    const todo = keys.filter(k => !BOOKKEEPING.has(k) && !same(before, after, [k]))
    for (const k of todo) (skipKeys.has(k) ? skipped : reapplied).push(k)
    if (reapplied.length) {
      rebuilt = A.change(rebuilt, { message: "edits made again after a refused change" }, d => {
        for (const k of reapplied) merge(d, { clean, before, after }, [k])
        reanchorComments(d, after)
      })
    }
  } else if (T.size > F.size) {
    for (const k of Object.keys(after)) if (!BOOKKEEPING.has(k) && !same(before, after, [k])) skipped.push(k)
  }

  // What the member wrote that the server does not have: every top-level
  // value that differs between the current document and clean.
  const content = []
  for (const k of new Set([...Object.keys(clean), ...Object.keys(after)])) {
    if (BOOKKEEPING.has(k) || same(clean, after, [k])) continue
    content.push({ field: k, text: readable(after[k]), reapplied: reapplied.includes(k) })
  }
  return { doc: rebuilt, dropped, refusedHere: [...F], removed: T.size, later: T.size > F.size, reapplied, skipped, content }
}

const hex = h => (typeof h === "string" ? h : Array.from(h, b => b.toString(16).padStart(2, "0")).join(""))

function headsOf(meta, keep) {
  const heads = new Set()
  for (const m of meta) {
    if (!keep(m.hash)) continue
    for (const d of m.deps) heads.delete(d)
    heads.add(m.hash)
  }
  return [...heads].sort()
}

const isText = v => typeof v === "string"
const isImmutable = v => v instanceof A.ImmutableString
const isMap = v => v != null && typeof v === "object" && !Array.isArray(v) && !isImmutable(v) && !(v instanceof Date) && !(v instanceof Uint8Array) && !(v instanceof A.Counter)
const get = (doc, path) => path.reduce((v, k) => (v == null ? undefined : v[k]), doc)

/** A stable key of a value, telling text from ImmutableString and marks from none. */
function keyOf(doc, path, v = get(doc, path)) {
  if (isText(v)) return stable(["text", A.spans(doc, path)])
  return stable(v)
}

/**
 * JSON with sorted keys: Automerge does not promise one order of the keys of
 * a block marker's value (or of marks) from one view of a document to another.
 */
function stable(v) {
  return JSON.stringify(v, (_k, x) => {
    if (isImmutable(x)) return { "\u0000s": x.val }
    if (x instanceof A.Counter) return { "\u0000c": x.value }
    if (isMap(x)) return Object.fromEntries(Object.keys(x).sort().map(k => [k, x[k]]))
    return x
  })
}

const same = (a, b, path) => {
  const x = get(a, path)
  const y = get(b, path)
  if (x === undefined || y === undefined) return x === y
  return keyOf(a, path, x) === keyOf(b, path, y)
}

/**
 * Make onto `d` (clean, being changed) what the member changed between
 * `before` and `after` at `path`, keeping what others and clean have there.
 */
function merge(d, docs, path) {
  const { clean, before, after } = docs
  const c = get(clean, path)
  const b = get(before, path)
  const a = get(after, path)
  if (same(before, after, path)) return
  const parent = get(d, path.slice(0, -1))
  const key = path[path.length - 1]
  if (parent == null) return
  if (a === undefined) {
    // Deleted after the refusal: delete it here too.
    if (c !== undefined) deleteAt(parent, key)
    return
  }
  if (b !== undefined && c === undefined) return // created by a refused change: the server has it not, and gets it not
  if (isText(a) && isText(b) && isText(c)) return mergeText(d, docs, path)
  if (isMap(a) && isMap(b) && isMap(c)) {
    for (const k of new Set([...Object.keys(b), ...Object.keys(a)])) merge(d, docs, [...path, k])
    return
  }
  if (Array.isArray(a) && Array.isArray(b) && Array.isArray(c)) return mergeList(d, docs, path)
  put(parent, key, a, after, path)
}

function deleteAt(parent, key) {
  if (Array.isArray(parent)) parent.splice(key, 1)
  else delete parent[key]
}

/** Put a copy of `v` (read from `src` at `path`); text keeps its blocks and marks. */
function put(parent, key, v, src, path) {
  parent[key] = copy(v)
  if (isText(v)) {
    const spans = A.spans(src, path)
    if (spans.some(s => s.type === "block" || s.marks)) A.updateSpans(parent, [key], spans)
  }
}

function copy(v) {
  if (isImmutable(v)) return new A.ImmutableString(v.val)
  if (v instanceof A.Counter) return new A.Counter(v.value)
  if (v instanceof Date) return new Date(v.getTime())
  if (v instanceof Uint8Array) return new Uint8Array(v)
  if (Array.isArray(v)) return v.map(copy)
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copy(x)]))
  return v
}

/**
 * Comment anchors are cursors on characters. Re-applied text has new
 * characters, so an anchor on a dropped one moves to the same position (the
 * re-applied text reads as it did, so positions agree). As the Rust
 * client's protocol::recovery does.
 */
function reanchorComments(d, after) {
  for (const [id, comment] of Object.entries(d.comments ?? {})) {
    const was = after.comments?.[id]
    const field = str(comment?.field)
    if (!was || typeof d[field] !== "string" || typeof after[field] !== "string") continue
    for (const end of ["start", "end"]) {
      const cursor = str(was[end])
      if (!cursor) continue
      try {
        A.getCursorPosition(d, [field], cursor)
        continue
      } catch {
        // Not in the rebuilt text: move it.
      }
      try {
        const position = A.getCursorPosition(after, [field], cursor)
        comment[end] = new A.ImmutableString(A.getCursor(d, [field], position))
      } catch {
        // Nowhere in the member's text either: left as it was.
      }
    }
  }
}

// -- text -----------------------------------------------------------------------
// A text is a list of tokens: one per character (with its marks) and one per
// block marker. The three-way merge takes clean's text and applies the
// member's edits (before → after) to it.

function tokens(doc, path) {
  const out = []
  for (const span of A.spans(doc, path)) {
    if (span.type === "block") out.push({ key: "b" + stable(span.value), span })
    else {
      const marks = span.marks && Object.keys(span.marks).length ? span.marks : undefined
      const m = marks ? stable(marks) : ""
      for (const ch of span.value) out.push({ key: `c${ch}\u0000${m}`, ch, marks })
    }
  }
  return out
}

function toSpans(list) {
  const spans = []
  for (const tok of list) {
    if (tok.span) spans.push(tok.span)
    else {
      const last = spans[spans.length - 1]
      const m = tok.marks ? stable(tok.marks) : ""
      if (last && last.type === "text" && (last.marks ? stable(last.marks) : "") === m) last.value += tok.ch
      else spans.push(tok.marks ? { type: "text", value: tok.ch, marks: tok.marks } : { type: "text", value: tok.ch })
    }
  }
  return spans
}

function mergeText(d, { clean, before, after }, path) {
  const merged = diff3(tokens(before, path), tokens(clean, path), tokens(after, path))
  const rich = merged.some(tok => tok.span || tok.marks) || tokens(clean, path).some(tok => tok.span || tok.marks)
  if (rich) A.updateSpans(d, path, toSpans(merged))
  else A.updateText(d, path, merged.map(tok => tok.ch).join(""))
}

// -- lists ----------------------------------------------------------------------

function mergeList(d, { clean, before, after }, path) {
  const items = doc => (get(doc, path) ?? []).map((v, i) => ({ key: keyOf(doc, [...path, i], v), v }))
  const c = items(clean)
  const merged = diff3(items(before), c, items(after))
  // Splice only the middle that differs, so untouched entries keep their identity.
  let start = 0
  while (start < c.length && start < merged.length && c[start].key === merged[start].key) start++
  let end = 0
  while (end < c.length - start && end < merged.length - start && c[c.length - 1 - end].key === merged[merged.length - 1 - end].key) end++
  const list = get(d, path)
  const inserted = merged.slice(start, merged.length - end).map(tok => copy(tok.v))
  list.splice(start, c.length - start - end, ...inserted)
}

// -- three-way merge ------------------------------------------------------------

/**
 * diff3 over token lists with `key`s: the result is `ours` with the changes
 * from `base` to `theirs` applied. Where both changed the same stretch, the
 * tokens of `theirs` that `ours` removed stay out, and those `ours` added come
 * first.
 */
export function diff3(base, ours, theirs) {
  const mo = matches(base, ours)
  const mt = matches(base, theirs)
  // Too different to line up: the member's version wins.
  if (!mo || !mt) return theirs
  const out = []
  let o = 0
  let a = 0
  let b = 0
  for (;;) {
    let k = o
    while (k < base.length && !(mo[k] >= 0 && mt[k] >= 0)) k++
    const ka = k < base.length ? mo[k] : ours.length
    const kb = k < base.length ? mt[k] : theirs.length
    const O = base.slice(o, k)
    const X = ours.slice(a, ka)
    const Y = theirs.slice(b, kb)
    if (sameKeys(X, O)) out.push(...Y)
    else if (sameKeys(Y, O) || sameKeys(X, Y)) out.push(...X)
    else {
      // Both changed it: what ours added, then theirs without what ours removed.
      const inOurs = new Set()
      for (let i = o; i < k; i++) if (mo[i] >= 0) inOurs.add(i)
      const theirsFromBase = new Map()
      for (let i = o; i < k; i++) if (mt[i] >= 0) theirsFromBase.set(mt[i], i)
      const oursFromBase = new Set()
      for (let i = o; i < k; i++) if (mo[i] >= 0) oursFromBase.add(mo[i])
      for (let j = a; j < ka; j++) if (!oursFromBase.has(j)) out.push(ours[j])
      for (let j = b; j < kb; j++) {
        const from = theirsFromBase.get(j)
        if (from === undefined || inOurs.has(from)) out.push(theirs[j])
      }
    }
    if (k >= base.length) break
    out.push(ours[ka])
    o = k + 1
    a = ka + 1
    b = kb + 1
  }
  return out
}

const sameKeys = (x, y) => x.length === y.length && x.every((t, i) => t.key === y[i].key)

/** For each index of `x`, the index of its partner in `y` in a longest common subsequence, or -1. */
function matches(x, y) {
  const m = new Array(x.length).fill(-1)
  let pre = 0
  while (pre < x.length && pre < y.length && x[pre].key === y[pre].key) m[pre] = pre++
  let suf = 0
  while (suf < x.length - pre && suf < y.length - pre && x[x.length - 1 - suf].key === y[y.length - 1 - suf].key) {
    m[x.length - 1 - suf] = y.length - 1 - suf
    suf++
  }
  const pairs = myers(x.slice(pre, x.length - suf).map(t => t.key), y.slice(pre, y.length - suf).map(t => t.key))
  if (!pairs) return null
  for (const [i, j] of pairs) m[pre + i] = pre + j
  return m
}

/** Myers' O(ND) diff: the matched index pairs, or null past MAX_D edits (the trace costs D² memory). */
const MAX_D = 1000
function myers(x, y) {
  const n = x.length
  const m = y.length
  if (n === 0 || m === 0) return []
  const max = Math.min(n + m, MAX_D)
  const off = max + 1
  let v = new Int32Array(2 * max + 3)
  const trace = []
  for (let dist = 0; dist <= max; dist++) {
    trace.push(v.slice())
    for (let k = -dist; k <= dist; k += 2) {
      let i = k === -dist || (k !== dist && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1
      let j = i - k
      while (i < n && j < m && x[i] === y[j]) {
        i++
        j++
      }
      v[off + k] = i
      if (i >= n && j >= m) return backtrack(trace, off, n, m, dist)
    }
  }
  return null
}

function backtrack(trace, off, n, m, dist) {
  const pairs = []
  let i = n
  let j = m
  for (let dd = dist; dd > 0; dd--) {
    const v = trace[dd]
    const k = i - j
    const prevK = k === -dd || (k !== dd && v[off + k - 1] < v[off + k + 1]) ? k + 1 : k - 1
    const prevI = v[off + prevK]
    const prevJ = prevI - prevK
    while (i > prevI && j > prevJ) pairs.push([--i, --j])
    i = prevI
    j = prevJ
  }
  while (i > 0 && j > 0) pairs.push([--i, --j])
  return pairs.reverse()
}

/** A value as text someone can read and copy: rich text as lines, the rest as its strings. */
function readable(v) {
  if (v === undefined) return ""
  if (isText(v)) return v.replace(/^\uFFFC/, "").replace(/\uFFFC/g, "\n")
  if (isImmutable(v)) return v.val
  if (Array.isArray(v)) return v.map(readable).filter(Boolean).join("\n")
  if (isMap(v))
    return Object.entries(v)
      .map(([k, x]) => [k, x, readable(x)])
      .filter(([, , r]) => r !== "")
      .map(([k, x, r]) => (isMap(x) || Array.isArray(x) ? `${k}:\n${indent(r)}` : `${k}: ${r}`))
      .join("\n")
  return String(v)
}
const indent = s => s.split("\n").map(l => `  ${l}`).join("\n")

// ---------------------------------------------------------------------------
// Wiring: the refusal arrives, the handle's document is replaced, storage
// forgets, the notice is recorded.

let knownRole = null
const forgetting = new Map()

/** Ask the server who we are now (an observer's refusal says so too). */
async function refreshRole() {
  try {
    const res = await fetch("/api/me", { credentials: "same-origin" })
    if (res.ok) knownRole = (await res.json()).role ?? knownRole
  } catch {
    // Offline: the refusal code still tells.
  }
}

/**
 * Handle one refusal message. Returns the refusal record, or null when it
 * concerns nothing this app holds.
 */
export function recoverFromRefusal(app, storage, message) {
  const documentId = String(message.documentId ?? "")
  const handle = app.repo.handles?.[documentId]
  if (!handle || !handle.isReady()) return null
  const code = String(message.refusal ?? "")
  const role = app.me?.role ?? knownRole
  const reapply = REAPPLIED_CODES.has(code) && role !== "observer"
  const skip = code === "membership" ? ["members"] : []

  // From reading the document to replacing it, nothing may await: a
  // keystroke in between would be lost.
  const doc = handle.doc()
  const plan = rebuild(doc, message.refused ?? [], { reapply, skip, actor: freshActor() })
  if (!plan) return null
  const focus = rememberFocus()
  app.onRebuilding?.(documentId)
  handle.update(() => plan.doc)
  app.onRecovered?.(documentId)
  restoreFocus(focus)

  const record = addRefusal({
    documentId,
    title: titleOf(doc),
    kind: kindOf(doc),
    code,
    message: String(message.message ?? ""),
    at: Date.now(),
    refused: plan.refusedHere,
    later: plan.later,
    reapply,
    reapplied: plan.reapplied,
    skipped: plan.skipped,
    content: plan.content,
    changes: plan.dropped.map(base64),
    cleaned: false,
  })
  // One clean-up at a time per document: a second one lists the first's snapshot.
  const done = (forgetting.get(documentId) ?? Promise.resolve())
    .then(() => forget(app, storage, handle))
    .then(
      () => updateRefusal(record.id, { cleaned: true }),
      err => console.error("konsens: could not clean local storage after a refusal", err)
    )
  forgetting.set(documentId, done)
  void refreshRole()
  return record
}

function freshActor() {
  const bytes = new Uint8Array(16)
  crypto.getRandomValues(bytes)
  return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("")
}

const base64 = bytes => {
  let s = ""
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

const str = v => (v == null ? "" : isImmutable(v) ? v.val : String(v))
const titleOf = doc => str(doc?.title)
const kindOf = doc => {
  const schema = str(doc?.schema)
  return schema === RECOMMENDATION_SCHEMA ? "recommendation" : schema === PROCESS_SCHEMA ? "process" : ""
}

/**
 * Local storage forgets T. The IndexedDB adapter keeps a document as chunks
 * under [documentId, "snapshot" | "incremental", hash]; every chunk written
 * before the rebuild may hold refused changes. Write the current document as
 * one snapshot, delete every chunk listed before it, then write the document
 * once more so nothing typed meanwhile lives only in a deleted chunk.
 */
async function forget(app, storage, handle) {
  const id = handle.documentId
  // The repo's own save of the rebuilt document, so its bookkeeping follows.
  await app.repo.flush?.([id])
  const listed = [...(await storage.loadRange([id, "snapshot"])), ...(await storage.loadRange([id, "incremental"]))].map(c => c.key)
  const first = await writeSnapshot(storage, id, handle.doc())
  for (const key of listed) if (key[2] !== first[2]) await storage.remove(key)
  const second = await writeSnapshot(storage, id, handle.doc())
  if (second[2] !== first[2]) await storage.remove(first)
}

async function writeSnapshot(storage, id, doc) {
  const heads = A.getHeads(doc).sort().join(",")
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(heads)))
  const key = [id, "snapshot", Array.from(digest, b => b.toString(16).padStart(2, "0")).join("")]
  await storage.save(key, A.save(doc))
  return key
}

// -- focus ----------------------------------------------------------------------
// The page is rebuilt around the new document; the member keeps typing where
// they were. Text is the same before and after (their edits were made again),
// so a character offset finds the caret again.

function rememberFocus() {
  const el = document.activeElement
  if (!el || el === document.body) return null
  const rich = el.closest?.("[data-field]")
  if (rich) {
    const sel = getSelection()
    if (!sel || sel.rangeCount === 0 || !rich.contains(sel.anchorNode)) return { field: rich.dataset.field }
    return { field: rich.dataset.field, anchor: offsetIn(rich, sel.anchorNode, sel.anchorOffset), focus: offsetIn(rich, sel.focusNode, sel.focusOffset) }
  }
  if (el.id) return { id: el.id, start: el.selectionStart, end: el.selectionEnd }
  return null
}

function restoreFocus(focus) {
  if (!focus) return
  const find = () => (focus.field ? document.querySelector(`[data-field="${CSS.escape(focus.field)}"]`) : document.getElementById(focus.id))
  const apply = el => {
    el.focus({ preventScroll: true })
    if (focus.field && focus.anchor) {
      const a = pointAt(el, focus.anchor)
      const f = pointAt(el, focus.focus ?? focus.anchor)
      if (a && f) getSelection()?.setBaseAndExtent(a.node, a.offset, f.node, f.offset)
    } else if (focus.id && typeof focus.start === "number") {
      try {
        el.setSelectionRange(focus.start, focus.end)
      } catch {
        // Not a text input.
      }
    }
  }
  const now = find()
  if (now) return apply(now)
  // The page renders its editor once the handle is found: a mutation
  // observer runs before the next event, so no keystroke goes astray.
  const observer = new MutationObserver(() => {
    const el = find()
    if (!el) return
    observer.disconnect()
    apply(el)
  })
  observer.observe(document.body, { childList: true, subtree: true })
  setTimeout(() => observer.disconnect(), 5000)
}

/** [block index, characters into the block] of a DOM point inside a rich-text root. */
function offsetIn(root, node, offset) {
  let block = node
  while (block && block.parentNode !== root) block = block.parentNode
  if (!block) return null
  const index = Array.prototype.indexOf.call(root.childNodes, block)
  let count = 0
  const range = document.createRange()
  range.setStart(block, 0)
  try {
    range.setEnd(node, offset)
  } catch {
    return { index, chars: 0 }
  }
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT)
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    if (t.parentElement?.closest(".peer-caret")) continue
    if (!range.intersectsNode(t)) continue
    count += t === node ? offset : t.textContent.length
    if (t === node) break
  }
  return { index, chars: count }
}

function pointAt(root, { index, chars }) {
  const block = root.childNodes[Math.min(index, root.childNodes.length - 1)]
  if (!block) return null
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT)
  let left = chars
  let last = null
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    if (t.parentElement?.closest(".peer-caret")) continue
    if (left <= t.textContent.length) return { node: t, offset: left }
    left -= t.textContent.length
    last = t
  }
  return last ? { node: last, offset: last.textContent.length } : { node: block, offset: 0 }
}
