// The refusals the member has not dismissed: kept in localStorage (they
// survive a reload, and they hold the only copy of what the server refused)
// and shown in a panel under the header, in the member's language: which
// document, why, what was made again, and the refused text to copy.

import { h, fill } from "./dom.js"
import { t } from "./i18n.js"

const KEY = "konsens.refusals"
const KEEP = 20
const CODES = new Set(["read-only", "foreign-actor", "decision", "membership", "admin-only", "outside-process", "document-too-large", "creation-limit", "unreadable", "kind", "identity", "malformed", "structure", "consent", "round-closed", "consent-required", "amendment"])
const listeners = new Set()

export function listRefusals() {
  try {
    const list = JSON.parse(localStorage.getItem(KEY) ?? "[]")
    return Array.isArray(list) ? list : []
  } catch {
    return []
  }
}

function store(list) {
  list = list.slice(-KEEP)
  // The binary changes are the bulk; under a full quota the oldest go first.
  for (let i = 0; ; i++) {
    try {
      localStorage.setItem(KEY, JSON.stringify(list))
      break
    } catch {
      if (i >= list.length) break
      list[i] = { ...list[i], changes: [] }
    }
  }
  for (const fn of listeners) fn(list)
}

/**
 * Keep a refusal. One that repeats an open notice (same document, same
 * reason: say, every edit to a document at its size limit) joins it instead
 * of piling up.
 */
export function addRefusal(record) {
  const list = listRefusals()
  const open = list.find(r => !r.dismissed && r.documentId === record.documentId && r.code === record.code)
  if (open) {
    const joined = {
      ...open,
      ...record,
      id: open.id,
      refused: [...(open.refused ?? []), ...(record.refused ?? [])],
      changes: [...(open.changes ?? []), ...(record.changes ?? [])],
      content: [...(open.content ?? []), ...(record.content ?? [])],
      reapplied: [...new Set([...(open.reapplied ?? []), ...(record.reapplied ?? [])])],
      skipped: [...new Set([...(open.skipped ?? []), ...(record.skipped ?? [])])],
      later: Boolean(open.later || record.later),
    }
    store([...list.filter(r => r.id !== open.id), joined])
    return joined
  }
  const entry = { id: `r-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`, dismissed: false, ...record }
  store([...list, entry])
  return entry
}

export function updateRefusal(id, patch) {
  store(listRefusals().map(r => (r.id === id ? { ...r, ...patch } : r)))
}

export function dismissRefusal(id) {
  updateRefusal(id, { dismissed: true })
}

export function onRefusals(fn) {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

/** The refused content as one text to read or copy. */
export function refusedText(record) {
  return (record.content ?? [])
    .map(c => `${t(c.field)} (${t(c.reapplied ? "refusalSentAgain" : "refusalNotSentAgain")}):\n${c.field === "status" ? t(c.text) : c.text}`)
    .join("\n\n")
}

/** The notice panel: hidden while there is nothing to say. */
export function refusalNotice() {
  const panel = h("section", { id: "refusal-notice", class: "refusal-notice", role: "alert", "aria-label": t("refusalNoticeLabel"), hidden: true })
  const render = list => {
    const open = list.filter(r => !r.dismissed)
    panel.hidden = open.length === 0
    fill(panel, open.map(notice))
  }
  onRefusals(render)
  render(listRefusals())
  // Another tab of the same member refused something: show it here too.
  window.addEventListener("storage", e => e.key === KEY && render(listRefusals()))
  return panel
}

function notice(r) {
  const path = r.kind === "recommendation" ? `/r/${r.documentId}` : r.kind === "process" ? `/p/${r.documentId}` : null
  const name = r.title || "—"
  const text = refusedText(r)
  // Whether anything was made again: nothing for a member who may not write
  // (or change this), the later edits for the others if there were any.
  const again = r.reapply === false ? "refusalNothingReapplied" : r.later ? (r.reapplied?.length ? "refusalReapplied" : "refusalNothingReapplied") : null
  // Said only when some edits were made again but not these (a later status change).
  const skipped = r.reapplied?.length ? r.skipped ?? [] : []
  return h(
    "article",
    { class: "refusal", dataset: { code: r.code, document: r.documentId, refusal: r.id } },
    h("h2", {}, t("refusalTitle"), " ", path ? h("a", { href: path }, name) : h("strong", {}, name)),
    h("p", { class: "reason" }, t(CODES.has(r.code) ? `refusal_${r.code}` : "refusal_other")),
    r.message ? h("p", { class: "meta server-message" }, t("refusalServerSays", { message: r.message })) : null,
    again ? h("p", { class: "reapplied" }, t(again)) : null,
    skipped.length ? h("p", { class: "skipped" }, t("refusalSkipped", { fields: skipped.map(k => t(k)).join(", ") })) : null,
    text
      ? h(
          "details",
          {},
          h("summary", {}, t("refusalShowText")),
          h("textarea", { readonly: true, rows: Math.min(12, text.split("\n").length + 1), "aria-label": t("refusalRefusedText"), value: text })
        )
      : null,
    h("button", { type: "button", class: "dismiss", onClick: () => dismissRefusal(r.id) }, t("refusalDismiss"))
  )
}
