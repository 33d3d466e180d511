// The process report as a download. The server renders it when it offers
// GET /api/processes/<id>/report (konsens_model::report); without that
// endpoint we render a simpler one here from the same documents. Like the
// server's, it prints each recommendation as it was adopted (at the heads the
// adoption recorded), not with what was merged after.

import * as A from "@automerge/automerge/slim"
import { str, TEXT_FIELDS, textOf, adoptedVersion } from "./model.js"
import { spansToHtml } from "./richtext.js"
import { t } from "./i18n.js"

export async function downloadReport(app, processHandle, recHandles, format) {
  const id = processHandle.documentId
  const ext = format === "html" ? "html" : "md"
  let text = null
  try {
    const res = await fetch(`/api/processes/${id}/report?format=${format}`)
    if (res.ok) text = await res.text()
  } catch {
    // Offline or no such endpoint: render locally.
  }
  if (text == null) text = format === "html" ? renderHtml(processHandle.doc(), recHandles) : renderMarkdown(processHandle.doc(), recHandles)
  const title = str(processHandle.doc().title) || "report"
  const blob = new Blob([text], { type: format === "html" ? "text/html;charset=utf-8" : "text/markdown;charset=utf-8" })
  const a = document.createElement("a")
  a.href = URL.createObjectURL(blob)
  a.download = `${title.replace(/[^\p{L}\p{N}]+/gu, "-").replace(/^-|-$/g, "").toLowerCase() || "report"}.${ext}`
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000)
}

function adopted(process, recHandles) {
  return (process.workshops ?? []).map(w => {
    const urls = (process.recommendations?.[str(w.id)] ?? []).map(str)
    const recs = urls
      .map(u => recHandles.get(u.replace(/^automerge:/, "").split("#")[0]))
      .filter(hd => hd?.isReady() && str(hd.doc().status) === "adopted")
      .map(hd => adoptedVersion(hd.doc()))
    return { workshop: w, recs }
  })
}

function spansToMarkdown(spans) {
  const blocks = []
  let cur = null
  for (const span of spans) {
    if (span.type === "block") {
      const type = String(span.value.type?.val ?? span.value.type)
      cur = { prefix: type === "heading" ? "#### " : type === "unordered-list-item" ? "- " : type === "ordered-list-item" ? "1. " : "", text: "" }
      blocks.push(cur)
    } else {
      if (!cur) blocks.push((cur = { prefix: "", text: "" }))
      let s = span.value
      const m = span.marks ?? {}
      if (m.strong) s = `**${s}**`
      if (m.em) s = `*${s}*`
      if (m.link) try { s = `[${s}](${JSON.parse(String(m.link)).href})` } catch { /* keep text */ }
      cur.text += s
    }
  }
  return blocks.filter(b => b.text.trim()).map(b => b.prefix + b.text).join("\n\n")
}

function renderMarkdown(process, recHandles) {
  let out = `# ${str(process.title)}\n\n`
  if (str(process.description)) out += `${str(process.description)}\n\n`
  for (const { workshop, recs } of adopted(process, recHandles)) {
    out += `## ${str(workshop.title)}\n\n`
    for (const r of recs) {
      out += `### ${str(r.title)}\n\n`
      for (const f of TEXT_FIELDS) if (textOf(r, f).trim()) out += `**${t(f)}**\n\n${spansToMarkdown(A.spans(r, [f]))}\n\n`
      const addressees = (r.addressees ?? []).map(str)
      if (addressees.length) out += `**${t("addressees")}:** ${addressees.join(", ")}\n\n`
    }
  }
  return out
}

function renderHtml(process, recHandles) {
  const esc = s => s.replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])
  let out = `<!doctype html><meta charset="utf-8"><title>${esc(str(process.title))}</title><h1>${esc(str(process.title))}</h1>`
  if (str(process.description)) out += `<p>${esc(str(process.description))}</p>`
  for (const { workshop, recs } of adopted(process, recHandles)) {
    out += `<h2>${esc(str(workshop.title))}</h2>`
    for (const r of recs) {
      out += `<h3>${esc(str(r.title))}</h3>`
      for (const f of TEXT_FIELDS) if (textOf(r, f).trim()) out += `<h4>${esc(t(f))}</h4>${spansToHtml(A.spans(r, [f]))}`
      const addressees = (r.addressees ?? []).map(str)
      if (addressees.length) out += `<p><strong>${esc(t("addressees"))}:</strong> ${esc(addressees.join(", "))}</p>`
    }
  }
  return out + "\n"
}
