// History: a timeline of changes (author, time, what), any version opened
// read-only, and what changed between it and now. On a secure server the
// names are the server's: it records who delivered each change
// (GET /api/docs/<id>/history); an --open server has only what the
// documents say about their authors.

import * as A from "@automerge/automerge/slim"
import { h, fill } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import * as M from "./model.js"
import { spansToHtml } from "./richtext.js"

// Typing makes one change per keystroke; consecutive changes by the same
// actor with the same message within this window are one entry.
const GROUP_MS = 10 * 60 * 1000

export function historyPanel(app, handle) {
  const list = h("ol", { class: "timeline", id: "timeline" })
  const version = h("section", { class: "version card", id: "version", hidden: true, "aria-labelledby": "version-title" })
  const toggle = h("button", { type: "button", "aria-expanded": "false", "aria-controls": "history-body" }, t("showHistory"))
  const body = h("div", { id: "history-body", hidden: true }, list)
  const el = h("section", { class: "history", "aria-labelledby": "h-history" }, h("h2", { id: "h-history" }, t("history")), toggle, body, version)
  let open = false
  let shownHeads = null
  // change hash → {name, organisation}, as the server verified them.
  const verified = new Map()
  let asking = false
  let askAgain = false
  async function askServer() {
    if (app.me?.open !== false) return
    if (asking) {
      askAgain = true
      return
    }
    asking = true
    try {
      const res = await fetch(`/api/docs/${handle.documentId}/history`)
      const changes = res.ok ? await res.json() : []
      for (const c of Array.isArray(changes) ? changes : []) if (c?.hash && c.author?.name) verified.set(c.hash, c.author)
    } catch {
      // Offline: names come once the server answers again.
    } finally {
      asking = false
    }
    if (askAgain) {
      askAgain = false
      askServer()
    } else if (open) {
      renderList(entries())
    }
  }

  toggle.addEventListener("click", () => {
    open = !open
    body.hidden = !open
    toggle.setAttribute("aria-expanded", String(open))
    fill(toggle, open ? t("hideHistory") : t("showHistory"))
    refresh()
  })

  function entries() {
    const doc = handle.doc()
    const who = M.authors(doc)
    // Our own changes are ours, whatever the server has acknowledged yet.
    if (app.me?.open === false) who[A.getActorId(doc)] = M.identity()
    const out = []
    for (const bytes of A.getAllChanges(doc)) {
      const c = A.decodeChange(bytes)
      const time = (c.time ?? 0) * 1000
      const message = c.message ?? ""
      const last = out[out.length - 1]
      if (last && last.actor === c.actor && last.message === message && time - last.time < GROUP_MS) {
        last.time = time
        last.hash = c.hash
        last.count += 1
        continue
      }
      out.push({ actor: c.actor, message, time, hash: c.hash, count: 1 })
    }
    return out.reverse().map(e => ({ ...e, author: verified.get(e.hash) ?? who[e.actor] }))
  }

  function refresh() {
    if (open) {
      const list = entries()
      renderList(list)
      // Changes the server has not named for us yet (ours not yet acknowledged, or new).
      if (app.me?.open === false && list.some(e => !e.author)) askSoon()
    }
    if (shownHeads) renderVersion()
  }

  let askTimer = null
  function askSoon() {
    if (askTimer) return
    askTimer = setTimeout(() => {
      askTimer = null
      askServer()
    }, 500)
  }

  function renderList(entries) {
    fill(
      list,
      entries.map(e =>
        h(
          "li",
          { dataset: { hash: e.hash } },
          h("span", { class: "when" }, formatTime(e.time)),
          " ",
          h("strong", {}, e.author ? `${e.author.name} (${e.author.organisation})` : t("unknownAuthor")),
          " ",
          h("span", { class: "what" }, e.message || t("changes", { n: e.count }), e.count > 1 && e.message ? ` (${t("changes", { n: e.count })})` : ""),
          " ",
          h("button", { type: "button", class: "link", onClick: () => show([e.hash], e.time) }, t("viewVersion"))
        )
      )
    )
  }

  let shownTime = 0
  function show(heads, time) {
    shownHeads = heads
    shownTime = time
    renderVersion()
    version.hidden = false
    version.querySelector("h2")?.focus()
  }

  function renderVersion() {
    const now = handle.doc()
    const then = A.view(now, shownHeads)
    const fields = [
      ["title", M.str(then.title), M.str(now.title)],
      ["status", t(M.str(then.status)), t(M.str(now.status))],
      ["addressees", (then.addressees ?? []).map(M.str).join(", "), (now.addressees ?? []).map(M.str).join(", ")],
      ...M.TEXT_FIELDS.map(f => [f, M.textOf(then, f), M.textOf(now, f)]),
      ["endorsements", endorsementText(then), endorsementText(now)],
    ]
    const diffs = fields.filter(([, a, b]) => a !== b)
    fill(
      version,
      h("h2", { id: "version-title", tabindex: "-1" }, t("versionOf", { time: formatTime(shownTime) })),
      h("p", { class: "hint" }, t("readOnly")),
      h("h3", {}, M.str(then.title)),
      h("p", {}, h("span", { class: `badge status-${M.str(then.status)}` }, t(M.str(then.status)))),
      M.TEXT_FIELDS.map(f => {
        const div = h("div", { class: "readonly-text", "aria-label": t(f) })
        div.innerHTML = spansToHtml(safeSpans(then, f)) // escaped by spansToHtml
        return [h("h4", {}, t(f)), div]
      }),
      h("h3", {}, t("changesSince")),
      diffs.length
        ? h("dl", { class: "diff" }, diffs.map(([f, a, b]) => [h("dt", {}, t(f)), h("dd", {}, wordDiff(a, b))]))
        : h("p", {}, t("noDifferences")),
      h("button", { type: "button", onClick: () => { shownHeads = null; version.hidden = true } }, t("backToCurrent"))
    )
  }

  return { el, refresh, destroy: () => clearTimeout(askTimer) }
}

function safeSpans(doc, field) {
  try {
    return A.spans(doc, [field])
  } catch {
    return []
  }
}

function endorsementText(doc) {
  return Object.entries(doc.endorsements ?? {})
    .map(([org, e]) => `${org}: ${t(M.str(e.stance))}`)
    .join("; ")
}

/** Word-level diff as <del>/<ins> (LCS; texts here are paragraphs, not books). */
export function wordDiff(before, after) {
  const a = before.split(/(\s+)/)
  const b = after.split(/(\s+)/)
  if (a.length * b.length > 4_000_000) return [h("del", {}, before), h("ins", {}, after)]
  const n = a.length
  const m = b.length
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1])
  const out = []
  let i = 0
  let j = 0
  const push = (kind, text) => {
    const last = out[out.length - 1]
    if (last && last.kind === kind) last.text += text
    else out.push({ kind, text })
  }
  while (i < n && j < m) {
    if (a[i] === b[j]) { push("same", a[i]); i++; j++ }
    else if (dp[i + 1][j] >= dp[i][j + 1]) push("del", a[i++])
    else push("ins", b[j++])
  }
  while (i < n) push("del", a[i++])
  while (j < m) push("ins", b[j++])
  return out.map(p => (p.kind === "same" ? p.text : h(p.kind, {}, p.text)))
}
