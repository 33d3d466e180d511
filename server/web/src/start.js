// Start page: the processes this user can see (from the server, and the ones
// opened or created in this browser), and creating a new one (administrators,
// or anyone on an --open server).

import { h, fill, field } from "./dom.js"
import { t, lang } from "./i18n.js"
import { change, identity, initProcess, can } from "./model.js"

const RECENT_KEY = "konsens.processes"

export function recentProcesses() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]")
    return Array.isArray(list) ? list.filter(p => typeof p?.url === "string") : []
  } catch {
    return []
  }
}

export function rememberProcess(url, title) {
  const list = recentProcesses().filter(p => p.url !== url)
  list.unshift({ url, title })
  localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 50)))
}

/** GET /api/processes when the server has it; otherwise nothing (we still list local ones). */
async function serverProcesses() {
  try {
    const res = await fetch("/api/processes", { headers: { accept: "application/json" } })
    if (!res.ok) return []
    const list = await res.json()
    return Array.isArray(list) ? list.filter(p => typeof p?.url === "string") : []
  } catch {
    return []
  }
}

/** The banner an observer sees on every page: they read, they do not change. */
export function readOnlyNotice(app) {
  if (can(app, "write")) return null
  return h("p", { id: "read-only-notice", class: "notice", role: "note" }, t("readOnlyObserver"))
}

const idOf = url => url.replace(/^automerge:/, "").split("#")[0]

export function startPage(app) {
  const list = h("ul", { class: "list", id: "process-list", "aria-busy": "true" })
  const intro = h("p", { class: "intro" })
  const title = h("input", { type: "text", required: true })
  const description = h("textarea", { rows: 2 })
  const form = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "create-process",
      onSubmit: e => {
        e.preventDefault()
        const value = title.value.trim()
        if (!value) return
        const handle = app.repo.create()
        change(handle, `create process ${JSON.stringify(value)}`, (d, me) => initProcess(d, value, description.value.trim(), me ?? identity(), lang))
        rememberProcess(handle.url, value)
        app.navigate(`/p/${handle.documentId}`)
      },
    },
    h("h2", { id: "create-process" }, t("createProcess")),
    field(t("processTitle"), title),
    field(t("description"), description),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("create")))
  )
  const mayCreate = can(app, "createProcess")
  fill(app.main, readOnlyNotice(app), h("h1", {}, t("processes")), intro, list, mayCreate ? form : null)

  let alive = true
  serverProcesses().then(remote => {
    if (!alive) return
    const seen = new Set()
    const all = []
    for (const p of [...remote, ...recentProcesses()]) {
      const id = idOf(p.url)
      if (seen.has(id)) continue
      seen.add(id)
      all.push({ id, title: p.title || id })
    }
    list.removeAttribute("aria-busy")
    if (all.length === 0) {
      fill(intro, t(mayCreate ? "noProcesses" : "noProcessesMember"))
      list.hidden = true
      if (mayCreate) title.focus()
    } else {
      fill(list, all.map(p => h("li", {}, h("a", { href: `/p/${p.id}` }, p.title))))
    }
  })
  return { destroy: () => { alive = false } }
}
