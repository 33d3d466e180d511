// Process overview: workshops with their recommendations (status, sectors,
// endorsements, open comments), filters, and creating workshops and
// recommendations. Participants create recommendations; facilitators also
// prepare the workshops; observers only read.

import { h, fill, field, batched } from "./dom.js"
import { t } from "./i18n.js"
import * as M from "./model.js"
import { rememberProcess, readOnlyNotice } from "./start.js"
import { downloadReport } from "./report.js"
import { membersSection } from "./members.js"

const docId = url => String(url).replace(/^automerge:/, "").split("#")[0]

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
  const recWorkshop = h("select", { required: true })
  const recTitle = h("input", { type: "text", required: true })
  const wsTitle = h("input", { type: "text", required: true })
  const wsTheme = h("input", { type: "text" })
  const wsSectors = h("input", { type: "text" })
  const wsDate = h("input", { type: "date" })
  let handle = null

  const exportButtons = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", onClick: () => handle && downloadReport(app, handle, recHandles, "markdown") }, t("exportMarkdown")),
    h("button", { type: "button", onClick: () => handle && downloadReport(app, handle, recHandles, "html") }, t("exportHtml"))
  )

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
        M.change(handle, `add workshop ${JSON.stringify(title)}`, d =>
          M.addWorkshop(d, { id, title, theme: wsTheme.value.trim(), sectors, date: wsDate.value || null })
        )
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
    h("div", { class: "filters", role: "group", "aria-label": t("filters") }, field(t("filterStatus"), statusFilter), field(t("filterSector"), sectorFilter)),
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
    fill(recWorkshop, workshops.map(w => h("option", { value: M.str(w.id) }, M.str(w.title))))
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
    fill(
      workshopsEl,
      h("h2", {}, t("workshops")),
      workshops.map(w => {
        const wid = M.str(w.id)
        const urls = (process.recommendations?.[wid] ?? []).map(M.str)
        const items = []
        for (const url of urls) {
          const rid = docId(url)
          const hd = watch(rid)
          if (!hd?.isReady()) {
            items.push(h("li", {}, h("a", { href: `/r/${rid}` }, t("loading"))))
            continue
          }
          const r = hd.doc()
          const status = M.str(r.status)
          const recSectors = (r.sectors ?? []).map(M.str)
          if (statusFilter.value && status !== statusFilter.value) continue
          if (sectorFilter.value && !recSectors.includes(sectorFilter.value)) continue
          const endorsements = Object.keys(r.endorsements ?? {}).length
          const open = Object.values(r.comments ?? {}).filter(c => !c.resolved).length
          items.push(
            h(
              "li",
              { class: "rec", dataset: { status } },
              h("a", { href: `/r/${rid}` }, M.str(r.title) || "—"),
              " ",
              h("span", { class: `badge status-${status}` }, t(status)),
              recSectors.map(s => h("span", { class: "chip" }, s)),
              h("span", { class: "meta" }, t("endorsementsCount", { n: endorsements }), open ? ` · ${t("openComments", { n: open })}` : "")
            )
          )
        }
        return h(
          "section",
          { class: "workshop", "aria-labelledby": `ws-${wid}` },
          h("h3", { id: `ws-${wid}` }, M.str(w.title)),
          h("p", { class: "meta" }, [M.str(w.theme), M.str(w.date), (w.sectors ?? []).map(M.str).join(", ")].filter(Boolean).join(" · ")),
          items.length ? h("ul", { class: "list" }, items) : h("p", { class: "meta" }, t("noRecommendations"))
        )
      })
    )
  })

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
