// History: what people did, in sessions ("Anna Schmidt (Caritas) edited
// Recommendation, 14:02–14:09, +120 / −8 characters"), marked when they are
// new since the reader's last visit; any version opened in a dialog where
// the reader is; any two versions compared word by word with paragraphs kept
// apart; and a past version of a field restored as a new change.
//
// The grouping is the server's (GET /api/docs/<id>/sessions, from
// konsens_model::history), so the app and `konsens history` show the same
// entries, with the names the server verified. An --open server names whom
// the documents declare.

import * as A from "@automerge/automerge/slim"
import { h, fill, oneAtATime } from "./dom.js"
import { t, lang, formatTime } from "./i18n.js"
import * as M from "./model.js"
import { spansToHtml } from "./richtext.js"
import { wordDiff } from "./diff.js"
import "./desk.css"

// The word diff moved to diff.js (the amendments use it too).
export { wordDiff }

const LAST_VISIT = id => `konsens.lastVisit.${id}`
const RESTORABLE = ["title", ...M.TEXT_FIELDS]

export function historyPanel(app, handle) {
  const list = h("ol", { class: "timeline sessions", id: "timeline" })
  const newCount = h("p", { class: "hint", id: "history-new", role: "status" })
  const version = h("dialog", { class: "version-dialog", id: "version", "aria-labelledby": "version-title" })
  const toggle = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "history-body" }, t("showHistory"))
  const compareButton = h("button", { type: "button", id: "compare-open", onClick: () => openCompare(null, null) }, t("desk_compareTitle"))
  const body = h("div", { id: "history-body", hidden: true }, newCount, compareButton, list)
  const el = h("section", { class: "history", "aria-labelledby": "h-history" }, h("h2", { id: "h-history" }, t("history")), toggle, body, version)
  let open = false
  let sessions = []
  // The reader's previous visit (what is newer is marked); this visit is
  // remembered at once, so a second tab or a reload counts from now.
  const previousVisit = Number(localStorage.getItem(LAST_VISIT(handle.documentId)) ?? 0)
  try {
    localStorage.setItem(LAST_VISIT(handle.documentId), String(Date.now()))
  } catch {
    // Storage full or forbidden: nothing is marked next time.
  }

  const load = oneAtATime(
    async () => {
      try {
        const res = await fetch(`/api/docs/${handle.documentId}/sessions`)
        if (res.ok) {
          const answer = await res.json()
          if (Array.isArray(answer)) sessions = answer
        }
      } catch {
        // Offline: the list comes once the server answers again.
      }
    },
    () => {
      if (open) renderList()
    }
  )

  toggle.addEventListener("click", () => {
    open = !open
    body.hidden = !open
    toggle.setAttribute("aria-expanded", String(open))
    fill(toggle, open ? t("hideHistory") : t("showHistory"))
    if (open) {
      renderList()
      load()
    }
  })

  let loadTimer = null
  function refresh() {
    // Typing changes the document many times a second: ask once it settles.
    if (!open || loadTimer) return
    loadTimer = setTimeout(() => {
      loadTimer = null
      load()
    }, 1000)
  }

  function isNew(s) {
    return previousVisit > 0 && s.end > previousVisit && s.author?.participant !== app.me?.participant
  }

  function renderList() {
    const newest = [...sessions].reverse()
    const fresh = newest.filter(isNew).length
    fill(newCount, fresh ? t("desk_newCount", { n: fresh }) : "")
    fill(
      list,
      newest.map(s =>
        h(
          "li",
          { class: isNew(s) ? "is-new" : null, dataset: { hash: s.last, field: s.field, changes: s.changes } },
          h("strong", {}, describe(s)),
          isNew(s) ? h("span", { class: "new-badge" }, t("desk_newSince")) : null,
          h("div", { class: "meta" }, [timeRange(s), characters(s)].filter(Boolean).join(" · ")),
          h("button", { type: "button", class: "link", onClick: () => showVersion(s) }, t("viewVersion"))
        )
      )
    )
  }

  // -- one version, in a dialog -------------------------------------------------
  function showVersion(s) {
    const now = handle.doc()
    let then
    try {
      then = A.view(now, [s.last])
    } catch {
      return // Not here yet: the next sync brings it.
    }
    const texts = RESTORABLE.map(f => [f, fieldText(then, f), fieldText(now, f)])
    const diffs = texts.filter(([, a, b]) => a !== b)
    const mayWrite = M.can(app, "write")
    const restored = h("p", { role: "status", class: "hint", id: "restore-result" })
    fill(
      version,
      h("h2", { id: "version-title", tabindex: "-1" }, t("versionOf", { time: formatTime(s.end) })),
      h("p", { class: "hint" }, describe(s), " · ", t("readOnly")),
      h("h3", {}, M.str(then.title)),
      h("p", {}, h("span", { class: `badge status-${M.str(then.status)}` }, t(M.str(then.status)))),
      M.TEXT_FIELDS.map(f => {
        const div = h("div", { class: "readonly-text", "aria-label": t(f) })
        div.innerHTML = spansToHtml(safeSpans(then, f)) // escaped by spansToHtml
        return [h("h4", {}, t(f)), div]
      }),
      h("h3", {}, t("changesSince")),
      diffs.length
        ? h(
            "dl",
            { class: "diff" },
            diffs.map(([f, a, b]) => [
              h("dt", {}, t(f)),
              h(
                "dd",
                { dataset: { diff: f } },
                wordDiff(a, b),
                mayWrite
                  ? h("button", { type: "button", class: "restore", dataset: { field: f }, onClick: () => restore(f, s, restored) }, t("desk_restore", { field: t(f) }))
                  : null
              ),
            ])
          )
        : h("p", {}, t("noDifferences")),
      restored,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", onClick: () => openCompare(s, null) }, t("desk_compare")),
        h("button", { type: "button", id: "version-close", onClick: () => version.close() }, t("backToCurrent"))
      )
    )
    if (!version.open) version.showModal()
    version.querySelector("h2")?.focus()
  }

  /** Make a field as it was after session `s`, as a new change (access rules apply as to any edit). */
  function restore(field, s, status) {
    const then = A.view(handle.doc(), [s.last])
    const changed = M.change(handle, `restore ${field}`, d => {
      if (field === "title") A.updateText(d, ["title"], M.str(then.title))
      else A.updateSpans(d, [field], safeSpans(then, field))
    })
    if (changed) fill(status, t("desk_restored", { field: t(field) }))
    load()
  }

  // -- any two versions ---------------------------------------------------------
  function openCompare(from, to) {
    const options = [h("option", { value: "" }, t("desk_now")), ...[...sessions].reverse().map(s => h("option", { value: s.last }, `${formatTime(s.end)} · ${describe(s)}`))]
    const fromSelect = h("select", { id: "compare-from" }, options.map(o => o.cloneNode(true)))
    const toSelect = h("select", { id: "compare-to" }, options)
    fromSelect.value = from?.last ?? sessions[0]?.last ?? ""
    toSelect.value = to?.last ?? ""
    const result = h("div", { id: "compare-result" })
    const render = () => {
      const now = handle.doc()
      const at = heads => {
        if (!heads) return now
        try {
          return A.view(now, [heads])
        } catch {
          return now
        }
      }
      const a = at(fromSelect.value)
      const b = at(toSelect.value)
      fill(
        result,
        h(
          "dl",
          { class: "diff" },
          RESTORABLE.map(f => {
            const before = fieldText(a, f)
            const after = fieldText(b, f)
            return [h("dt", {}, t(f)), h("dd", { dataset: { diff: f } }, before === after ? h("p", { class: "hint" }, t("desk_noChange")) : wordDiff(before, after))]
          })
        )
      )
    }
    fromSelect.addEventListener("change", render)
    toSelect.addEventListener("change", render)
    const label = (text, control) => h("label", {}, text, " ", control)
    fill(
      version,
      h("h2", { id: "version-title", tabindex: "-1" }, t("desk_compareTitle")),
      h("div", { class: "compare-form" }, label(t("desk_compareFrom"), fromSelect), label(t("desk_compareTo"), toSelect)),
      result,
      h("div", { class: "actions" }, h("button", { type: "button", id: "version-close", onClick: () => version.close() }, t("desk_close")))
    )
    render()
    if (!version.open) version.showModal()
    version.querySelector("h2")?.focus()
  }

  return { el, refresh, destroy: () => clearTimeout(loadTimer) }
}

/** "Anna Schmidt (Caritas) edited Recommendation", in the app's language. */
function describe(s) {
  const name = s.author?.name ? (s.author.organisation ? `${s.author.name} (${s.author.organisation})` : s.author.name) : t("desk_someone")
  const who = s.author && !s.verified && s.author.name ? `${name} (${t("desk_unverified")})` : name
  switch (s.field) {
    case "created":
      return t("desk_historyCreated", { who })
    case "status":
      return t("desk_historyStatus", { who, status: t(s.value ?? "") })
    case "endorsements":
      return s.value ? t("desk_historyEndorsed", { who, stance: t(s.value) }) : t("desk_historyOther", { who })
    case "comments":
      return t("desk_historyCommented", { who })
    case "workshop":
      return t("desk_historyMoved", { who })
    case "other":
      return t("desk_historyOther", { who })
    default:
      return t("desk_historyEdited", { who, field: t(s.field) })
  }
}

function timeRange(s) {
  if (!s.start) return ""
  if (s.end - s.start < 60_000) return formatTime(s.start)
  const sameDay = new Date(s.start).toDateString() === new Date(s.end).toDateString()
  const end = sameDay
    ? new Intl.DateTimeFormat(lang === "de" ? "de-DE" : "en-GB", { timeStyle: "short" }).format(new Date(s.end))
    : formatTime(s.end)
  return `${formatTime(s.start)}–${end}`
}

function characters(s) {
  return s.inserted || s.deleted ? t("desk_chars", { ins: s.inserted, del: s.deleted }) : ""
}

/** A field's text with its paragraphs as line breaks (rich-text block markers are paragraphs). */
function fieldText(doc, field) {
  return field === "title" ? M.str(doc?.title) : M.linesOf(doc, field)
}

function safeSpans(doc, field) {
  try {
    return A.spans(doc, [field])
  } catch {
    return []
  }
}
