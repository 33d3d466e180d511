// The process report as a download: the server renders it (konsens-model's
// report for Markdown and HTML, konsens-publish for PDF and DOCX) in the
// process's language, with the verified members' organisations. There is no
// local rendering: a report people publish must be the server's, so without
// a connection the panel says so instead of producing a lesser one.

import { h } from "./dom.js"
import { t } from "./i18n.js"

const FORMATS = ["pdf", "docx", "html", "markdown"]
const KINDS = ["final", "interim"]

/** The report panel of a process page. */
export function reportPanel(processId) {
  const kind = h("select", { id: "report-kind" }, KINDS.map(k => h("option", { value: k }, t(`reportKind_${k}`))))
  const format = h("select", { id: "report-format" }, FORMATS.map(f => h("option", { value: f }, t(`reportFormat_${f}`))))
  const note = h("p", { class: "hint", id: "report-note", role: "status", "aria-live": "polite" })
  const button = h("button", { type: "button", class: "primary", id: "report-download" }, t("reportDownload"))
  button.addEventListener("click", async () => {
    note.textContent = ""
    button.disabled = true
    try {
      await download(processId, kind.value, format.value)
    } catch (err) {
      note.textContent = err?.offline ? t("reportOffline") : t("reportFailed", { reason: String(err?.message ?? err) })
    } finally {
      button.disabled = false
    }
  })
  return h(
    "section",
    { class: "card report-panel", "aria-labelledby": "report-title" },
    h("h2", { id: "report-title" }, t("reportTitle")),
    h("p", { class: "hint" }, t("reportIntro")),
    h(
      "div",
      { class: "actions" },
      h("label", {}, t("reportKind"), " ", kind),
      h("label", {}, t("reportFormat"), " ", format),
      button
    ),
    note
  )
}

async function download(processId, kind, format) {
  let res
  try {
    res = await fetch(`/api/processes/${processId}/report?format=${format}&kind=${kind}`)
  } catch {
    throw { offline: true }
  }
  if (!res.ok) {
    let reason = res.statusText
    try {
      reason = (await res.json()).error ?? reason
    } catch {
      // Not JSON: the status says enough.
    }
    throw new Error(reason)
  }
  const blob = await res.blob()
  // The server names the file (bericht.pdf, zwischenbericht.docx, …).
  const named = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") ?? "")
  const a = document.createElement("a")
  a.href = URL.createObjectURL(blob)
  a.download = named?.[1] ?? `report.${format === "markdown" ? "md" : format}`
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}
