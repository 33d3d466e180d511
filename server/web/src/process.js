// Process overview: workshops with their recommendations (status, sectors,
// endorsements, open comments), filters and a search over titles and text,
// and creating workshops and recommendations. Participants create
// recommendations; facilitators also prepare the workshops and organise the
// process: rename and re-order workshops, move recommendations between
// workshops, archive (never delete) and restore both. The server enforces
// the same (access.rs, `Guarded::Structure`); observers only read.

import { h, fill, field, batched } from "./dom.js"
import { t, formatDate } from "./i18n.js"
import * as M from "./model.js"
import { rememberProcess, readOnlyNotice } from "./start.js"
import { reportPanel } from "./report.js"
import { membersSection } from "./members.js"
import * as A from "@automerge/automerge/slim"
import "./desk.css"

const docId = url => String(url).replace(/^automerge:/, "").split("#")[0]
const S = value => new A.ImmutableString(String(value))

/**
 * Text as the search compares it: lower case, umlauts and ß spelled out, other
 * accents dropped, so "Anerkennung" finds "anerkennung", "Gebühr" finds
 * "Gebuehr" and "Fachkräfte" finds "fachkrafte" too.
 */
export function searchable(text) {
  const lower = String(text).toLowerCase()
  const spelled = lower.replace(/ä/g, "ae").replace(/ö/g, "oe").replace(/ü/g, "ue").replace(/ß/g, "ss")
  const plain = lower.normalize("NFD").replace(/\p{M}/gu, "")
  return `${spelled} ${plain}`
}

/** Whether every word of the query occurs in the recommendation's title or text. */
function matches(rec, query) {
  if (!String(query).trim()) return true
  const haystack = searchable([M.str(rec.title), ...M.TEXT_FIELDS.map(f => M.linesOf(rec, f))].join("\n"))
  const spelledQuery = String(query).toLowerCase().replace(/ä/g, "ae").replace(/ö/g, "oe").replace(/ü/g, "ue").replace(/ß/g, "ss").split(/\s+/).filter(Boolean)
  const plainQuery = String(query).toLowerCase().normalize("NFD").replace(/\p{M}/gu, "").split(/\s+/).filter(Boolean)
  return spelledQuery.every(w => haystack.includes(w)) || plainQuery.every(w => haystack.includes(w))
}

export async function loadHandle(app, id) {
  return app.repo.find(`automerge:${id}`)
}

export function processPage(app, id) {
  let alive = true
  const recHandles = new Map()
  const heading = h("h1", {}, t("loading"))
  const description = h("p", { class: "description" })
  const statusFilter = h("select", {}, h("option", { value: "" }, t("all")), M.STATUSES.map(s => h("option", { value: s }, t(s))))
  const sectorFilter = h("select", {}, h("option", { value: "" }, t("all")))
  const workshopsEl = h("div", { id: "workshops" })
  const search = h("input", { type: "search", id: "rec-search" })
  const showArchived = h("input", { type: "checkbox", id: "show-archived" })
  // The workshop being renamed, and its input (kept across renders while typing).
  let renaming = null
  const recWorkshop = h("select", { required: true })
  const recTitle = h("input", { type: "text", required: true })
  const wsTitle = h("input", { type: "text", required: true })
  const wsTheme = h("input", { type: "text" })
  const wsSectors = h("input", { type: "text" })
  const wsDate = h("input", { type: "date" })
  let handle = null

  const exportButtons = reportPanel(id)

  const newRecForm = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "new-rec",
      onSubmit: e => {
        e.preventDefault()
        const title = recTitle.value.trim()
        const workshop = recWorkshop.value
        if (!handle || !title || !workshop) return
        const process = handle.doc()
        const ws = (process.workshops ?? []).find(w => M.str(w.id) === workshop)
        const rec = app.repo.create()
        M.change(rec, `create recommendation ${JSON.stringify(title)}`, d =>
          M.initRecommendation(d, handle.url, workshop, title, (ws?.sectors ?? []).map(M.str))
        )
        // Only the link: membership is the server's, and a participant's
        // change that touched it would be refused whole.
        M.change(handle, "add recommendation", d => M.linkRecommendation(d, workshop, rec.url))
        app.navigate(`/r/${rec.documentId}`)
      },
    },
    h("h2", { id: "new-rec" }, t("newRecommendation")),
    field(t("workshop"), recWorkshop),
    field(t("recommendationTitle"), recTitle),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("create")))
  )

  const newWorkshopForm = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "new-ws",
      onSubmit: e => {
        e.preventDefault()
        const title = wsTitle.value.trim()
        if (!handle || !title) return
        const id = M.workshopId(handle.doc(), title)
        const sectors = wsSectors.value.split(",").map(s => s.trim()).filter(Boolean)
        M.change(handle, `add workshop ${JSON.stringify(title)}`, d => {
          M.addWorkshop(d, { id, title, theme: wsTheme.value.trim(), sectors, date: wsDate.value || null })
          // Its (empty) list of recommendations now, so participants who add
          // the first ones at the same time add to one list, not two.
          if (!d.recommendations) d.recommendations = {}
          if (!d.recommendations[id]) d.recommendations[id] = []
        })
        for (const input of [wsTitle, wsTheme, wsSectors, wsDate]) input.value = ""
        recWorkshop.value = id
      },
    },
    h("h2", { id: "new-ws" }, t("addWorkshop")),
    field(t("workshopTitle"), wsTitle),
    field(t("theme"), wsTheme),
    field(t("sectors"), wsSectors, t("sectorsHint")),
    field(t("date"), wsDate),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("addWorkshop")))
  )

  fill(
    app.main,
    h("nav", { class: "crumbs" }, h("a", { href: "/" }, t("backToStart"))),
    readOnlyNotice(app),
    heading,
    description,
    h(
      "div",
      { class: "filters", role: "group", "aria-label": t("filters") },
      field(t("filterStatus"), statusFilter),
      field(t("filterSector"), sectorFilter),
      h("div", { class: "search-box" }, field(t("desk_search"), search, t("desk_searchHint"))),
      h("div", { class: "field" }, h("label", {}, showArchived, " ", t("desk_showArchived")))
    ),
    workshopsEl,
    exportButtons,
    M.can(app, "write") ? h("div", { class: "columns" }, newRecForm, M.can(app, "addWorkshop") ? newWorkshopForm : null) : null,
    membersSection(app, id)
  )

  const render = batched(() => {
    if (!alive || !handle) return
    const process = handle.doc()
    const title = M.str(process.title)
    fill(heading, title)
    document.title = `${title} · konsens`
    fill(description, M.str(process.description))
    rememberProcess(handle.url, title)

    const workshops = process.workshops ?? []
    const current = recWorkshop.value
    const open = workshops.filter(w => process.archivedWorkshops?.[M.str(w.id)] !== true)
    fill(recWorkshop, open.map(w => h("option", { value: M.str(w.id) }, M.str(w.title))))
    if (current) recWorkshop.value = current

    const sectors = new Set()
    for (const w of workshops) for (const s of w.sectors ?? []) sectors.add(M.str(s))
    for (const hd of recHandles.values()) if (hd?.isReady()) for (const s of hd.doc().sectors ?? []) sectors.add(M.str(s))
    const selectedSector = sectorFilter.value
    fill(sectorFilter, h("option", { value: "" }, t("all")), [...sectors].sort().map(s => h("option", { value: s }, s)))
    sectorFilter.value = selectedSector

    if (workshops.length === 0) {
      fill(workshopsEl, h("p", { class: "intro" }, t(M.can(app, "addWorkshop") ? "noWorkshops" : "noWorkshopsYet")))
      return
    }
    const organise = M.can(app, "addWorkshop")
    const archivedWorkshops = process.archivedWorkshops ?? {}
    const archivedRecs = process.archivedRecommendations ?? {}
    const query = search.value.trim()
    let shown = 0
    const sections = workshops.map((w, index) => {
      const wid = M.str(w.id)
      const title = M.str(w.title)
      const wsArchived = archivedWorkshops[wid] === true
      if (wsArchived && !showArchived.checked) return null
      const urls = (process.recommendations?.[wid] ?? []).map(M.str)
      const items = []
      for (const url of urls) {
        const rid = docId(url)
        const archived = archivedRecs[url] === true
        if (archived && !showArchived.checked) continue
        const hd = watch(rid)
        if (!hd?.isReady()) {
          if (!query) items.push(h("li", {}, h("a", { href: `/r/${rid}` }, t("loading"))))
          continue
        }
        const r = hd.doc()
        const status = M.str(r.status)
        const recSectors = (r.sectors ?? []).map(M.str)
        if (statusFilter.value && status !== statusFilter.value) continue
        if (sectorFilter.value && !recSectors.includes(sectorFilter.value)) continue
        if (query && !matches(r, query)) continue
        const endorsements = Object.keys(r.endorsements ?? {}).length
        const open = Object.values(r.comments ?? {}).filter(c => !c.resolved).length
        const recTitle = M.str(r.title) || "—"
        items.push(
          h(
            "li",
            { class: `rec${archived ? " is-archived" : ""}`, dataset: { status, archived: String(archived) } },
            h("a", { href: `/r/${rid}` }, recTitle),
            " ",
            h("span", { class: `badge status-${status}` }, t(status)),
            archived ? h("span", { class: "chip" }, t("desk_archived")) : null,
            recSectors.map(s => h("span", { class: "chip" }, s)),
            h("span", { class: "meta" }, t("endorsementsCount", { n: endorsements }), open ? ` · ${t("openComments", { n: open })}` : ""),
            organise ? recControls(url, hd, wid, recTitle, archived, workshops) : null
          )
        )
      }
      shown += items.length
      if (query && items.length === 0) return null
      return h(
        "section",
        { class: `workshop${wsArchived ? " is-archived" : ""}`, "aria-labelledby": `ws-${wid}`, dataset: { workshop: wid, archived: String(wsArchived) } },
        h(
          "h3",
          { id: `ws-${wid}` },
          title,
          wsArchived ? h("span", { class: "chip" }, t("desk_archived")) : null,
          organise ? workshopControls(wid, title, index, workshops.length, wsArchived) : null
        ),
        renaming?.wid === wid ? renaming.form : null,
        h("p", { class: "meta" }, [M.str(w.theme), formatDate(M.str(w.date)), (w.sectors ?? []).map(M.str).join(", ")].filter(Boolean).join(" · ")),
        items.length ? h("ul", { class: "list" }, items) : h("p", { class: "meta" }, t("noRecommendations"))
      )
    })
    fill(
      workshopsEl,
      h("h2", {}, t("workshops")),
      sections,
      query && shown === 0 ? h("p", { class: "intro", id: "search-none" }, t("desk_searchNone", { q: query })) : null
    )
  })

  // -- organising the process (facilitators) ---------------------------------------
  function workshopControls(wid, title, index, count, archived) {
    const button = (label, aria, onClick, disabled) => h("button", { type: "button", class: "link", "aria-label": aria, disabled, onClick }, label)
    return h(
      "span",
      { class: "structure-controls" },
      button(t("desk_rename"), t("desk_renameWorkshop", { title }), () => startRename(wid, title)),
      button("↑", t("desk_moveUp", { title }), () => moveWorkshop(wid, index - 1), index === 0),
      button("↓", t("desk_moveDown", { title }), () => moveWorkshop(wid, index + 1), index === count - 1),
      archived
        ? button(t("desk_unarchive"), t("desk_unarchiveWorkshop", { title }), () => archiveWorkshop(wid, false))
        : button(t("desk_archive"), t("desk_archiveWorkshop", { title }), () => archiveWorkshop(wid, true))
    )
  }

  function recControls(url, recHandle, wid, title, archived, workshops) {
    const move = h(
      "select",
      { "aria-label": t("desk_moveRec", { title }) },
      workshops.map(w => h("option", { value: M.str(w.id), selected: M.str(w.id) === wid }, M.str(w.title)))
    )
    move.addEventListener("change", () => moveRecommendation(url, recHandle, wid, move.value))
    return h(
      "span",
      { class: "structure-controls" },
      move,
      h(
        "button",
        { type: "button", class: "link", "aria-label": t(archived ? "desk_unarchiveRec" : "desk_archiveRec", { title }), onClick: () => archiveRecommendation(url, !archived) },
        t(archived ? "desk_unarchive" : "desk_archive")
      )
    )
  }

  function startRename(wid, title) {
    const input = h("input", { type: "text", value: title, required: true, "aria-label": t("desk_newTitle") })
    const form = h(
      "form",
      {
        class: "rename actions",
        onSubmit: e => {
          e.preventDefault()
          const next = input.value.trim()
          if (next && handle) {
            M.change(handle, "rename workshop", d => {
              const w = (d.workshops ?? []).find(x => M.str(x.id) === wid)
              if (w) w.title = S(next)
            })
          }
          renaming = null
          render()
        },
      },
      input,
      h("button", { type: "submit" }, t("desk_save")),
      h("button", { type: "button", onClick: () => ((renaming = null), render()) }, t("cancel"))
    )
    renaming = { wid, form }
    render()
    setTimeout(() => input.focus(), 30)
  }

  function moveWorkshop(wid, to) {
    M.change(handle, "move workshop", d => {
      const from = (d.workshops ?? []).findIndex(x => M.str(x.id) === wid)
      if (from < 0 || to < 0 || to >= d.workshops.length) return
      const w = d.workshops[from]
      // A list has no move: the workshop is written again at its new place.
      const copy = { id: S(M.str(w.id)), title: S(M.str(w.title)), theme: S(M.str(w.theme)), sectors: (w.sectors ?? []).map(x => S(M.str(x))) }
      if (w.date) copy.date = S(M.str(w.date))
      d.workshops.splice(from, 1)
      d.workshops.splice(to, 0, copy)
    })
  }

  function archiveWorkshop(wid, archived) {
    M.change(handle, archived ? "archive workshop" : "restore workshop", d => {
      if (!d.archivedWorkshops) d.archivedWorkshops = {}
      d.archivedWorkshops[wid] = archived
    })
  }

  function archiveRecommendation(url, archived) {
    M.change(handle, archived ? "archive recommendation" : "restore recommendation", d => {
      if (!d.archivedRecommendations) d.archivedRecommendations = {}
      d.archivedRecommendations[url] = archived
    })
  }

  function moveRecommendation(url, recHandle, from, to) {
    if (from === to) return
    M.change(handle, "move recommendation", d => {
      const list = d.recommendations?.[from]
      const at = list ? [...list].map(M.str).indexOf(url) : -1
      if (at >= 0) list.splice(at, 1)
      M.linkRecommendation(d, to, url)
    })
    // The recommendation says which workshop it is in, too.
    M.change(recHandle, "move recommendation", d => {
      d.workshop = S(to)
    })
  }

  function watch(rid) {
    if (recHandles.has(rid)) return recHandles.get(rid)
    recHandles.set(rid, null)
    // A recommendation linked a moment ago may not be on the server yet (its
    // creator's two changes travel separately): take the handle even while
    // it is unavailable; the server sends the document once it has it, and
    // the handle's "change" renders it then.
    app.repo
      .find(`automerge:${rid}`, { allowableStates: ["ready", "unavailable"] })
      .then(hd => {
        if (!alive) return
        recHandles.set(rid, hd)
        hd.on("change", render)
        render()
      })
      .catch(() => {})
    return null
  }

  statusFilter.addEventListener("change", render)
  sectorFilter.addEventListener("change", render)
  search.addEventListener("input", render)
  showArchived.addEventListener("change", render)

  loadHandle(app, id)
    .then(hd => {
      if (!alive) return
      const doc = hd.doc()
      if (M.str(doc?.schema) !== M.PROCESS_SCHEMA) {
        fill(heading, t("wrongKind", { kind: t("process") }))
        return
      }
      handle = hd
      app.status.track(hd)
      hd.on("change", render)
      render()
    })
    .catch(() => alive && fill(heading, t("notFound")))

  return {
    destroy() {
      alive = false
      handle?.off("change", render)
      for (const hd of recHandles.values()) hd?.off("change", render)
    },
  }
}
