// The konsens document model in JS, mirroring protocol/model/src/schema.rs: the same
// keys, the same shapes, and the same way of recording who changed what as the
// CLI (client-core/src/workspace.rs). Strings that Rust reads as plain strings
// are written as ImmutableString scalars: automerge JS would otherwise store
// them as collaborative text, which `autosurgeon` refuses for `String` fields.
// Only `title`, `description` and the rich-text fields are text objects.

import * as A from "@automerge/automerge/slim"

export const PROCESS_SCHEMA = "konsens/process@1"
export const RECOMMENDATION_SCHEMA = "konsens/recommendation@1"
export const TEXT_FIELDS = ["problem", "recommendation", "rationale"]
export const STATUSES = ["draft", "discussion", "consensus", "adopted", "rejected"]
export const STANCES = ["support", "concerns", "object"]

const S = value => new A.ImmutableString(String(value))

/** A scalar, ImmutableString or text value read back as a JS string. */
export function str(value) {
  if (value == null) return ""
  if (typeof value === "string") return value
  if (value instanceof A.ImmutableString) return value.val
  return String(value)
}

// Same table as `Status::can_move_to`.
const MOVES = {
  draft: ["discussion"],
  discussion: ["draft", "consensus"],
  consensus: ["discussion", "adopted", "rejected"],
  adopted: ["discussion", "consensus"],
  rejected: ["discussion", "consensus"],
}
const DECISIONS = new Set(["adopted", "rejected"])

/** Deciding, and undoing a decision, is the facilitators' (the server refuses it from others). */
export const facilitatorOnly = (from, to) => DECISIONS.has(from) || DECISIONS.has(to)

/** Where a recommendation may move from `from`, for someone who may (or may not) decide. */
export const nextStatuses = (from, mayDecide = true) => (MOVES[from] ?? []).filter(to => mayDecide || !facilitatorOnly(from, to))

// ---------------------------------------------------------------------------
// The session: who the server says we are (GET /api/me) and what that role
// may do. On an --open server everybody may do everything. Kept in
// localStorage so a reload without network still knows the role; the server
// decides anyway, this only keeps the app from offering what it would refuse.

const SESSION_KEY = "konsens.session"
const OPEN = { open: true, role: "facilitator", participant: null, name: "", organisation: "", process: null }
let session = OPEN

const RIGHTS = {
  write: ["admin", "facilitator", "participant"],
  decide: ["admin", "facilitator"],
  manageMembers: ["admin", "facilitator"],
  addWorkshop: ["admin", "facilitator"],
  createProcess: ["admin"],
}

/**
 * Take the answer of GET /api/me (or null when it could not be asked) as the
 * session. Returns it; the app keeps it as `app.me`.
 */
export function setSession(who) {
  if (who) {
    session = who.open
      ? { ...OPEN }
      : {
          open: false,
          role: String(who.role),
          participant: String(who.participant),
          name: String(who.name ?? ""),
          organisation: String(who.organisation || who.role),
          process: who.process ?? null,
        }
    try {
      localStorage.setItem(SESSION_KEY, JSON.stringify(session))
    } catch {
      // Private mode: the next offline reload asks again.
    }
  } else {
    try {
      const kept = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null")
      session = kept && typeof kept.role === "string" ? kept : OPEN
    } catch {
      session = OPEN
    }
  }
  return session
}

/**
 * May the member do `action` ("write", "decide", "manageMembers",
 * "addWorkshop", "createProcess")? `app` may be omitted: the session then.
 */
export function can(app, action) {
  const me = app?.me ?? session
  if (me.open) return true
  return RIGHTS[action]?.includes(me.role) ?? false
}

// ---------------------------------------------------------------------------
// Identity: on an --open server asked once and kept in localStorage; the
// participant id has the CLI's form. The actor is not part of it: every page
// load gets a fresh Automerge actor (two tabs sharing one would reuse
// sequence numbers), and each change records its actor under `authors`, so
// history still names the person. On a secure server the identity is the
// server's, and the server records who delivered each change: nothing about
// authors is written into the documents.

const IDENTITY_KEY = "konsens.identity"

export function identity() {
  if (!session.open) return { participant: session.participant, name: session.name, organisation: session.organisation }
  try {
    const stored = JSON.parse(localStorage.getItem(IDENTITY_KEY) ?? "null")
    if (stored && stored.name && stored.organisation && stored.participant) return stored
  } catch {
    // A damaged entry is asked for again.
  }
  return null
}

export function saveIdentity(name, organisation) {
  const existing = identity()
  const participant = existing?.participant ?? `p-${randomHex(8)}`
  const me = { participant, name: name.trim(), organisation: organisation.trim() }
  localStorage.setItem(IDENTITY_KEY, JSON.stringify(me))
  return me
}

/** The identity the server verified for our session (secure servers). */
export function adoptServerIdentity(who) {
  const me = { participant: who.participant, name: who.name, organisation: who.organisation || who.role }
  localStorage.setItem(IDENTITY_KEY, JSON.stringify(me))
  return me
}

export function randomHex(bytes) {
  const buf = new Uint8Array(bytes)
  crypto.getRandomValues(buf)
  return Array.from(buf, b => b.toString(16).padStart(2, "0")).join("")
}

function recordAuthor(d, me, actor) {
  if (!d.authors) d.authors = {}
  const current = d.authors[actor]
  if (current && str(current.name) === me.name && str(current.organisation) === me.organisation && str(current.participant) === me.participant) return
  d.authors[actor] = { participant: S(me.participant), name: S(me.name), organisation: S(me.organisation) }
}

/**
 * Change a document as the current identity: one change with a message, on
 * an --open server recording `authors[actor]` in the same change (as the
 * CLI's `write` does). Every change the app makes goes through here, so an
 * observer's client never makes one. Returns whether it changed anything.
 */
export function change(handle, message, fn) {
  if (!can(null, "write")) return false
  const me = identity()
  const actor = A.getActorId(handle.doc())
  const before = A.getHeads(handle.doc())
  handle.change(
    d => {
      fn(d, me)
      if (me && session.open) recordAuthor(d, me, actor)
    },
    { message }
  )
  return A.getHeads(handle.doc()).join() !== before.join()
}

/**
 * The handle as `@automerge/prosemirror` sees it: the same document, but every
 * change it makes carries a message and records its author.
 */
export function editorHandle(handle, field) {
  return {
    doc: () => handle.doc(),
    change: fn => change(handle, `edit ${field}`, d => fn(d)),
    on: (event, cb) => handle.on(event, cb),
    off: (event, cb) => handle.off(event, cb),
  }
}

// ---------------------------------------------------------------------------
// Operations (see the functions of the same names in schema.rs).

export function initProcess(d, title, description, me, language) {
  d.schema = S(PROCESS_SCHEMA)
  // The language it works and publishes in (the reports' default): the creator's.
  if (language) d.language = S(language)
  d.title = title
  d.description = description
  d.workshops = []
  d.members = {}
  d.recommendations = {}
  if (me) d.members[me.participant] = { name: S(me.name), organisation: S(me.organisation), role: S("facilitator") }
}

/** A workshop id: a slug of the title, unique in the process (as `Workspace::add_workshop`). */
export function workshopId(process, title) {
  let base = ""
  for (const c of title.toLowerCase()) {
    if (/[\p{L}\p{N}]/u.test(c)) base += c
    else if (base && !base.endsWith("-")) base += "-"
  }
  base = base.replace(/-+$/, "") || "workshop"
  const taken = new Set((process.workshops ?? []).map(w => str(w.id)))
  let id = base
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`
  return id
}

export function addWorkshop(d, workshop) {
  if (!d.workshops) d.workshops = []
  const entry = { id: S(workshop.id), title: S(workshop.title), theme: S(workshop.theme ?? ""), sectors: (workshop.sectors ?? []).map(S) }
  if (workshop.date) entry.date = S(workshop.date)
  d.workshops.push(entry)
}

export function linkRecommendation(d, workshop, url) {
  if (!d.recommendations) d.recommendations = {}
  if (!d.recommendations[workshop]) d.recommendations[workshop] = []
  d.recommendations[workshop].push(S(url))
}

export function initRecommendation(d, processUrl, workshop, title, sectors) {
  d.schema = S(RECOMMENDATION_SCHEMA)
  d.process = S(processUrl)
  d.workshop = S(workshop)
  d.title = title
  d.sectors = sectors.map(S)
  d.addressees = []
  d.status = S("draft")
  d.statusLog = []
  for (const field of TEXT_FIELDS) d[field] = ""
  d.comments = {}
  d.endorsements = {}
}

/**
 * Move to `to`, logged. An adoption carries `heads`: the document's heads
 * just before it, the wording that was adopted (the report prints that
 * version, whatever is merged later).
 */
export function changeStatus(d, to, me, note, heads = null) {
  const from = str(d.status)
  if (!nextStatuses(from).includes(to)) throw new Error(`forbidden move ${from} → ${to}`)
  d.status = S(to)
  if (!d.statusLog) d.statusLog = []
  const entry = { by: S(me.participant), at: Date.now(), from: S(from), to: S(to), note: S(note) }
  if (to === "adopted" && heads) entry.heads = heads.map(S)
  d.statusLog.push(entry)
}

/**
 * The adoption in force: {at, by, heads} of the last move to adopted, while
 * the recommendation is adopted; null otherwise. `heads` is null when the
 * adoption did not record them (or this copy lacks a change they name).
 */
export function adoption(doc) {
  if (str(doc?.status) !== "adopted") return null
  const log = doc.statusLog ?? []
  for (let i = log.length - 1; i >= 0; i--) {
    const e = log[i]
    if (str(e.to) !== "adopted") continue
    let heads = Array.isArray(e.heads) ? e.heads.map(str) : null
    if (heads && !heads.every(h => /^[0-9a-f]{64}$/.test(h))) heads = null
    if (heads) {
      try {
        A.view(doc, heads)
      } catch {
        heads = null
      }
    }
    return { at: e.at, by: str(e.by), heads }
  }
  return { at: null, by: "", heads: null }
}

/** The document as it was adopted (the version at the adoption's heads), or the document itself. */
export function adoptedVersion(doc) {
  const a = adoption(doc)
  return a?.heads ? A.view(doc, a.heads) : doc
}

/**
 * Anchor a comment to [start, end) of a text field (automerge indexes, UTF-16
 * code units in JS). Like `add_comment`: `start` is a cursor at the first
 * quoted character, `end` one at the last.
 */
export function addComment(d, id, field, start, end, quote, body, me) {
  if (!d.comments) d.comments = {}
  d.comments[id] = {
    author: S(me.participant),
    at: Date.now(),
    body: S(body),
    resolved: false,
    field: S(field),
    start: S(A.getCursor(d, [field], start)),
    end: S(A.getCursor(d, [field], Math.max(start, end - 1))),
    quote: S(quote),
    replies: [],
  }
}

export function reply(d, id, body, me) {
  const c = d.comments?.[id]
  if (!c) return
  if (!c.replies) c.replies = []
  c.replies.push({ author: S(me.participant), at: Date.now(), body: S(body) })
}

export function resolveComment(d, id, resolved) {
  const c = d.comments?.[id]
  if (c) c.resolved = resolved
}

export function endorse(d, stance, note, me) {
  if (!d.endorsements) d.endorsements = {}
  d.endorsements[me.organisation] = { stance: S(stance), note: S(note), by: S(me.participant), at: Date.now() }
}

/** Where a comment's quoted range is now: [start, end) automerge indexes, or null. */
export function commentRange(doc, comment) {
  const field = str(comment.field)
  try {
    const start = A.getCursorPosition(doc, [field], str(comment.start))
    const end = A.getCursorPosition(doc, [field], str(comment.end)) + 1
    if (end <= start) return null
    return { field, start, end }
  } catch {
    return null
  }
}

/** actor hex → {participant, name, organisation}. */
export function authors(doc) {
  const out = {}
  for (const [actor, a] of Object.entries(doc?.authors ?? {})) {
    out[actor] = { participant: str(a.participant), name: str(a.name), organisation: str(a.organisation) }
  }
  return out
}

// participant id → {name, organisation}, from the server's member list
// (secure servers, where documents carry no `authors`).
const people = new Map()
export function learnPeople(list) {
  for (const p of list ?? []) if (p?.participant) people.set(p.participant, { name: String(p.name ?? ""), organisation: String(p.organisation ?? "") })
}

/** "Name (Organisation)" for a participant id, or the id itself. */
export function participantLabel(doc, participant) {
  const known = people.get(participant) ?? (participant && participant === session.participant ? session : null)
  if (known) return known.organisation ? `${known.name} (${known.organisation})` : known.name
  const a = Object.values(authors(doc)).find(a => a.participant === participant)
  if (a) return `${a.name} (${a.organisation})`
  const m = doc?.members?.[participant]
  if (m) return `${str(m.name)} (${str(m.organisation)})`
  return participant
}

export const textOf = (doc, field) => str(doc?.[field]).replace(/\uFFFC/g, "")

/** A text field with its blocks as lines (for comparing wordings). */
export const linesOf = (doc, field) => str(doc?.[field]).replace(/\uFFFC/g, "\n").replace(/^\n+/, "")
