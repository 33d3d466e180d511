// Who wrote what: the title and the three text fields, each run of text
// coloured by the member who wrote it, with a legend (name, organisation).
//
// The runs are the server's (GET /api/docs/<id>/authorship): Automerge's op
// ids of each character, mapped through the server's actor bindings to the
// verified member. Nothing a document says about its authors is used; an
// actor the server has no binding for is shown as "unverified".
//
// DOM hooks (tests rely on them): the panel is `#authorship`, each coloured
// run a `span.authored[data-author="<participant id>"]` inside
// `[data-field="<field>"]`, unverified runs `[data-author=""][data-unverified]`,
// and each legend entry `#authorship-legend li[data-author="<participant id>"]`.

import { h, fill, oneAtATime } from "./dom.js"
import { t } from "./i18n.js"
import "./authorship.css"

// The presence palette's colours (see recommendation.js): dark enough for
// white text, far apart from each other. Assigned in order of first
// appearance, so two authors differ until there are more than eight.
const COLOURS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#9e5a00", "#5d4037"]
const UNVERIFIED = "#757575"
const FIELDS = ["title", "problem", "recommendation", "rationale"]

export function authorshipView(handle) {
  const toggle = h("button", { type: "button", id: "authorship-toggle", "aria-expanded": "false", "aria-controls": "authorship" }, t("author_show"))
  const status = h("p", { class: "hint", role: "status", id: "authorship-status" })
  const legend = h("ul", { class: "authorship-legend", id: "authorship-legend", "aria-label": t("author_legend") })
  const fields = h("div", { class: "authorship-fields" })
  const panel = h("div", { id: "authorship", class: "authorship", hidden: true }, h("p", { class: "hint" }, t("author_hint")), status, legend, fields)
  const el = h("section", { class: "authorship-section", "aria-labelledby": "h-authorship" }, h("h2", { id: "h-authorship" }, t("author_title")), toggle, panel)
  let open = false
  let timer = null
  let lateTimer = null

  function render(answer) {
    const colours = new Map()
    const people = new Map()
    const colourOf = run => {
      if (!run.verified || !run.author) return UNVERIFIED
      const id = run.author.participant
      if (!colours.has(id)) colours.set(id, COLOURS[colours.size % COLOURS.length])
      if (!people.has(id)) people.set(id, run.author)
      return colours.get(id)
    }
    let unverified = false
    const sections = FIELDS.map(name => {
      const entry = answer.find(f => f.field === name)
      const runs = entry?.runs ?? []
      const body = runs.length
        ? runs.map(run => {
            const verified = run.verified && run.author
            if (!verified) unverified = true
            const who = verified ? label(run.author) : t("author_unverified")
            return h(
              "span",
              {
                class: verified ? "authored" : "authored unverified",
                dataset: verified ? { author: run.author.participant } : { author: "", unverified: "" },
                style: `--c: ${colourOf(run)}`,
                title: who,
              },
              run.text
            )
          })
        : h("span", { class: "none" }, t("author_empty"))
      return h("div", { class: "authorship-field", dataset: { authorshipField: name } }, h("h3", {}, t(name)), h("p", { class: "authored-text" }, body))
    })
    fill(
      legend,
      [...people.entries()].map(([id, person]) =>
        h("li", { dataset: { author: id } }, h("span", { class: "swatch", style: `--c: ${colours.get(id)}`, "aria-hidden": "true" }), label(person))
      ),
      unverified ? h("li", { dataset: { author: "", unverified: "" } }, h("span", { class: "swatch", style: `--c: ${UNVERIFIED}`, "aria-hidden": "true" }), t("author_unverified")) : null
    )
    fill(fields, sections)
  }

  const load = oneAtATime(async () => {
    try {
      const res = await fetch(`/api/docs/${handle.documentId}/authorship`)
      if (res.ok) {
        const answer = await res.json()
        if (Array.isArray(answer) && open) {
          render(answer)
          fill(status, "")
        }
      } else if (open) {
        fill(status, t("author_failed"))
      }
    } catch {
      if (open) fill(status, t("author_offline"))
    }
  })

  toggle.addEventListener("click", () => {
    open = !open
    panel.hidden = !open
    toggle.setAttribute("aria-expanded", String(open))
    fill(toggle, open ? t("author_hide") : t("author_show"))
    if (open) {
      fill(status, t("loading"))
      load()
    }
  })

  // While open, follow the document: the server's answer reflects a change
  // once it has it, so ask a moment after the last one (typing), and once
  // more later for a local change the server had not acknowledged yet.
  const onChange = () => {
    if (!open) return
    clearTimeout(timer)
    clearTimeout(lateTimer)
    timer = setTimeout(load, 700)
    lateTimer = setTimeout(load, 3000)
  }
  handle.on("change", onChange)

  return {
    el,
    destroy() {
      open = false
      clearTimeout(timer)
      clearTimeout(lateTimer)
      handle.off("change", onChange)
    },
  }
}

function label(person) {
  const name = person.name ?? person.participant
  return person.organisation ? `${name} (${person.organisation})` : name
}
