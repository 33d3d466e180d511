// Notifications: a bell in the header with the number of new items, and a
// list of what changed in the member's process since they last looked —
// decisions, consent rounds opened, closing within a day or closed, and
// replies to their comments.
//
// The list is the server's (GET /api/processes/<id>/notifications, from
// konsens_model::notifications, with the names it verified). "Last looked"
// is kept on the server per member, so it follows them across devices; it
// is recorded when the member opens the list (POST …/notifications/seen),
// not when the page loads, so a reload never swallows what they have not
// read. Items stay marked as new while the list is open.
//
// DOM hooks: `#notify-bell` (its `data-count` and `#notify-count`), the
// panel `#notify-panel`, each item `#notify-list li[data-kind][data-new]`.

import { h, fill } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import "./notifications.css"

/** How often the list is asked for while the app is open. */
const REFRESH_MS = 60_000

export function notificationBell(app) {
  const processUrl = app.me?.process
  if (!processUrl) return null
  const processId = String(processUrl).replace(/^automerge:/, "").split("#")[0]
  const count = h("span", { class: "notify-count", id: "notify-count", hidden: true })
  const bell = h(
    "button",
    { type: "button", class: "notify-bell", id: "notify-bell", "aria-expanded": "false", "aria-controls": "notify-panel", "data-count": "0", title: t("notify_title") },
    h("span", { "aria-hidden": "true" }, "🔔"),
    h("span", { class: "visually-hidden" }, t("notify_title")),
    count
  )
  const list = h("ol", { class: "notify-list", id: "notify-list" })
  const empty = h("p", { class: "hint", id: "notify-empty" }, t("notify_none"))
  const panel = h(
    "section",
    { class: "notify-panel card", id: "notify-panel", hidden: true, "aria-labelledby": "notify-heading" },
    h("h2", { id: "notify-heading" }, t("notify_title")),
    empty,
    list
  )
  let open = false
  let items = []

  const showCount = n => {
    bell.dataset.count = String(n)
    count.hidden = n === 0
    fill(count, n > 99 ? "99+" : String(n))
    bell.setAttribute("aria-label", n ? t("notify_new", { n }) : t("notify_title"))
  }

  const render = () => {
    empty.hidden = items.length > 0
    fill(
      list,
      items.map(item =>
        h(
          "li",
          { class: item.new ? "new" : "", dataset: { kind: item.kind, new: String(item.new), rec: item.id } },
          h("a", { href: `/r/${encodeURIComponent(item.id)}`, onClick: () => close() }, sentence(item)),
          h("span", { class: "meta" }, " · ", formatTime(item.at)),
          item.value && (item.kind === "reply" || item.kind === "round-closed") ? h("q", { class: "notify-quote" }, item.value) : null
        )
      )
    )
  }

  async function load() {
    try {
      const res = await fetch(`/api/processes/${processId}/notifications`, { credentials: "same-origin" })
      if (!res.ok) return
      const answer = await res.json()
      if (!Array.isArray(answer?.items)) return
      // While the list is open, what was new when it opened stays marked.
      const wasNew = new Set(items.filter(i => i.new).map(key))
      items = answer.items.map(i => ({ ...i, new: i.new || (open && wasNew.has(key(i))) }))
      showCount(open ? 0 : answer.new)
      render()
    } catch {
      // Offline: the bell shows what it knew; it asks again later.
    }
  }

  async function markSeen() {
    try {
      await fetch(`/api/processes/${processId}/notifications/seen`, { method: "POST", credentials: "same-origin", headers: { "content-type": "application/json" }, body: "{}" })
    } catch {
      // Offline: the items are still new next time.
    }
  }

  function close() {
    open = false
    panel.hidden = true
    bell.setAttribute("aria-expanded", "false")
  }

  bell.addEventListener("click", () => {
    if (open) {
      close()
      return
    }
    open = true
    panel.hidden = false
    bell.setAttribute("aria-expanded", "true")
    showCount(0)
    markSeen()
    load()
  })
  document.addEventListener("keydown", e => {
    if (e.key === "Escape" && open) {
      close()
      bell.focus()
    }
  })

  load()
  const timer = setInterval(load, REFRESH_MS)
  const onVisible = () => document.visibilityState === "visible" && load()
  document.addEventListener("visibilitychange", onVisible)
  return {
    bell,
    panel,
    refresh: load,
    destroy() {
      clearInterval(timer)
      document.removeEventListener("visibilitychange", onVisible)
    },
  }
}

const key = item => `${item.kind}|${item.id}|${item.at}`

/** "Anna Keller (Gewerkschaft) adopted “Keine Gebühren”" and so on. */
function sentence(item) {
  const who = item.by ? (item.by.name ? (item.by.organisation ? `${item.by.name} (${item.by.organisation})` : item.by.name) : item.by.participant) : ""
  const title = item.title || "—"
  switch (item.kind) {
    case "status":
      return t(`notify_status_${item.value}`, { who, title })
    case "round-opened":
      return t("notify_roundOpened", { who, title, deadline: formatTime(Number(item.value)) })
    case "round-closing":
      return t("notify_roundClosing", { title, deadline: formatTime(item.at) })
    case "round-closed":
      return t("notify_roundClosed", { who, title })
    case "reply":
      return t("notify_reply", { who, title })
    case "amendment-opened":
      return t("notify_amendmentOpened", { who, title, amendment: item.value || "" })
    case "amendment-decided":
      return t(`notify_amendment_${String(item.value).replace(/-/g, "_")}`, { who, title })
    default:
      return title
  }
}
