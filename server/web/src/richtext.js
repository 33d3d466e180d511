// One ProseMirror editor per rich-text field, bound to the Automerge text by
// `@automerge/prosemirror` (which writes exactly the blocks and marks the
// Rust side reads; see protocol/model/src/richtext/). On top of it: highlights for
// comment anchors and the carets of others, both kept as Automerge cursors so
// they follow the text through everyone's edits.
//
// When someone else's text arrives exactly at the caret, the caret stays in
// front of it (ProseMirror would move it behind). So each person's next
// keystroke continues their own run, and two people typing at the same spot
// produce two whole words rather than interleaved letters: Automerge places
// an insertion made after seeing the other's text before it, consistently on
// every peer.

import * as A from "@automerge/automerge/slim"
import { init, basicSchemaAdapter } from "@automerge/prosemirror"
import { pmRangeToAmRange, amSpliceIdxToPmIdx } from "@automerge/prosemirror/dist/traversal.js"
import { EditorState, Plugin, PluginKey, TextSelection } from "prosemirror-state"
import { EditorView, Decoration, DecorationSet } from "prosemirror-view"
import { keymap } from "prosemirror-keymap"
import { baseKeymap, toggleMark, setBlockType } from "prosemirror-commands"
import { history, undo, redo } from "prosemirror-history"
import { wrapInList, splitListItem, liftListItem, sinkListItem } from "prosemirror-schema-list"
import { editorHandle, can } from "./model.js"

const decorationsKey = new PluginKey("konsens-decorations")

/**
 * @param {object} opts
 * @param handle the recommendation's DocHandle
 * @param field  "problem" | "recommendation" | "rationale"
 * @param label  accessible name of the editable area
 * @param overlays () => ({ comments: [{id, start, end, active}], peers: [{name, color, anchor, head}] }) in automerge indexes
 * @param onSelection (range|null) called with the selected automerge range
 * @param editable whether typing is allowed at first (see setEditable)
 */
export function createRichText({ mount, handle, field, label, overlays, onSelection, onFocusComment, editable = true }) {
  const doc = handle.doc()
  // An older document may lack the field. Only someone who may write adds it;
  // for an observer the editor shows it empty.
  if (!(field in doc) && can(null, "write")) handle.change(d => { d[field] = "" })
  // The sync plugin applies everyone else's changes from inside the handle's
  // "change" callback: count those calls, so dispatchTransaction knows which
  // transactions carry other people's text.
  let applyingRemote = 0
  const wrapped = new Map()
  const synced = {
    ...editorHandle(handle, field),
    on: (event, cb) => {
      const run = (...args) => {
        applyingRemote++
        try {
          return cb(...args)
        } finally {
          applyingRemote--
        }
      }
      wrapped.set(cb, run)
      handle.on(event, run)
    },
    off: (event, cb) => {
      handle.off(event, wrapped.get(cb) ?? cb)
      wrapped.delete(cb)
    },
  }
  const { schema, pmDoc, plugin } = init(synced, [field])
  let isEditable = editable

  const spans = () => A.spans(handle.doc(), [field])
  const toPm = (sp, idx) => amSpliceIdxToPmIdx(basicSchemaAdapter, sp, idx)

  const decorate = state => {
    const sp = spans()
    const { comments, peers } = overlays()
    const max = state.doc.content.size
    const clamp = n => Math.max(0, Math.min(max, n))
    const decos = []
    for (const c of comments) {
      const from = toPm(sp, c.start)
      const to = toPm(sp, c.end)
      if (from == null || to == null || to <= from) continue
      decos.push(Decoration.inline(clamp(from), clamp(to), {
        class: c.active ? "comment-anchor active" : "comment-anchor",
        "data-comment": c.id,
      }))
    }
    for (const p of peers) {
      const head = toPm(sp, p.head)
      if (head == null) continue
      const anchor = toPm(sp, p.anchor) ?? head
      if (anchor !== head) {
        decos.push(Decoration.inline(clamp(Math.min(anchor, head)), clamp(Math.max(anchor, head)), {
          class: "peer-selection",
          style: `background-color: ${p.color}33`,
        }))
      }
      decos.push(Decoration.widget(clamp(head), () => caret(p), { key: `peer-${p.peerId}-${p.name}-${p.color}`, side: -1 }))
    }
    return DecorationSet.create(state.doc, decos)
  }

  const overlayPlugin = new Plugin({
    key: decorationsKey,
    state: {
      init: (_, state) => decorate(state),
      apply: (tr, old, _oldState, newState) => (tr.docChanged || tr.getMeta(decorationsKey) ? decorate(newState) : old),
    },
    props: {
      decorations: state => decorationsKey.getState(state),
      handleClick: (_view, _pos, event) => {
        const id = event.target?.closest?.("[data-comment]")?.getAttribute("data-comment")
        if (id) onFocusComment?.(id)
        return false
      },
    },
  })

  const t = schema.marks
  const nodes = schema.nodes
  const listItem = nodes.list_item
  const keys = {
    "Mod-z": undo,
    "Mod-y": redo,
    "Shift-Mod-z": redo,
    "Mod-b": toggleMark(t.strong),
    "Mod-i": toggleMark(t.em),
  }
  if (listItem) {
    keys.Enter = splitListItem(listItem)
    keys["Mod-["] = liftListItem(listItem)
    keys["Mod-]"] = sinkListItem(listItem)
  }

  const view = new EditorView(mount, {
    editable: () => isEditable,
    state: EditorState.create({
      schema,
      doc: pmDoc,
      plugins: [keymap(keys), keymap(baseKeymap), history(), plugin, overlayPlugin],
    }),
    attributes: {
      "aria-label": label,
      role: "textbox",
      "aria-multiline": "true",
      class: "richtext",
      "data-field": field,
      spellcheck: "true",
    },
    dispatchTransaction(tr) {
      if (applyingRemote > 0 && tr.docChanged && !tr.selectionSet) keepCaretBeforeRemoteText(view.state.selection, tr)
      const state = view.state.apply(tr)
      view.updateState(state)
      if (tr.selectionSet || tr.docChanged) onSelection?.(selectionRange())
    },
  })
  view.dom.addEventListener("focus", () => onSelection?.(selectionRange()))

  function selectionRange() {
    const { from, to, anchor, head } = view.state.selection
    const sp = spans()
    const r = pmRangeToAmRange(basicSchemaAdapter, sp, { from, to })
    const a = pmRangeToAmRange(basicSchemaAdapter, sp, { from: anchor, to: anchor })
    const h = pmRangeToAmRange(basicSchemaAdapter, sp, { from: head, to: head })
    if (!r) return null
    // A read-only editor never has focus, but its text can be selected (to comment on it).
    const focused = view.hasFocus() || (!isEditable && view.dom.contains(document.getSelection()?.anchorNode ?? null))
    return { field, start: r.start, end: r.end, anchor: a?.start ?? r.start, head: h?.start ?? r.end, focused }
  }

  const command = cmd => () => isEditable && cmd && cmd(view.state, view.dispatch, view)
  const commands = {
    bold: command(toggleMark(t.strong)),
    italic: command(toggleMark(t.em)),
    bulletList: command(nodes.bullet_list && wrapInList(nodes.bullet_list)),
    heading: command(nodes.heading && setBlockType(nodes.heading, { level: 3 })),
  }

  return {
    view,
    commands,
    selectionRange,
    /** Allow or forbid typing (observers; an adopted wording). */
    setEditable(value) {
      if (isEditable === Boolean(value)) return
      isEditable = Boolean(value)
      view.setProps({ editable: () => isEditable })
      if (!isEditable) view.dom.blur()
    },
    /** Re-render overlays (comments or peers changed without a text change). */
    refresh: () => !view.isDestroyed && view.dispatch(view.state.tr.setMeta(decorationsKey, true).setMeta("addToHistory", false)),
    /** Select [start, end) automerge indexes and scroll there. */
    select(start, end) {
      const sp = spans()
      const from = toPm(sp, start)
      const to = toPm(sp, end)
      if (from == null || to == null) return
      view.dispatch(view.state.tr.setSelection(TextSelection.create(view.state.doc, from, to)).scrollIntoView())
      view.focus()
    },
    destroy: () => view.destroy(),
  }
}

/**
 * Map the selection through a transaction of other people's changes so that
 * text inserted exactly at a caret lands after it (assoc -1), and text
 * inserted at the edges of a range stays outside the range. ProseMirror's
 * own mapping (assoc +1) would carry the caret past the newcomer's text, and
 * the next keystroke would land inside their run.
 */
function keepCaretBeforeRemoteText(selection, tr) {
  if (!(selection instanceof TextSelection)) return
  const map = tr.mapping
  let anchor, head
  if (selection.empty) {
    anchor = head = map.map(selection.head, -1)
  } else {
    const from = map.map(selection.from, 1)
    const to = Math.max(from, map.map(selection.to, -1))
    ;[anchor, head] = selection.head >= selection.anchor ? [from, to] : [to, from]
  }
  const $head = tr.doc.resolve(head)
  if (!$head.parent.inlineContent) return // the caret's block went: ProseMirror finds a place
  const $anchor = tr.doc.resolve(anchor)
  const kept = new TextSelection($anchor.parent.inlineContent ? $anchor : $head, $head)
  if (!kept.eq(selection.map(tr.doc, tr.mapping))) tr.setSelection(kept)
}

function caret(peer) {
  const el = document.createElement("span")
  el.className = "peer-caret"
  el.style.borderColor = peer.color
  el.setAttribute("aria-hidden", "true")
  const name = document.createElement("span")
  name.className = "peer-name"
  name.style.backgroundColor = peer.color
  name.textContent = peer.name
  el.appendChild(name)
  return el
}

/** Automerge spans → HTML, for read-only versions (escaped; safe links only). */
export function spansToHtml(spans) {
  const esc = s => s.replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c])
  let out = ""
  let open = null
  const close = () => { if (open) out += `</${open}>`; open = null }
  for (const span of spans) {
    if (span.type === "block") {
      close()
      const type = String(span.value.type?.val ?? span.value.type)
      const parents = (span.value.parents ?? []).map(p => String(p?.val ?? p))
      if (type === "heading") open = "h4"
      else if (type.endsWith("list-item")) open = "li"
      else if (type === "code-block") open = "pre"
      else open = parents.includes("blockquote") ? "blockquote" : "p"
      out += `<${open}>`
    } else {
      if (!open) { open = "p"; out += "<p>" }
      let text = esc(span.value)
      const marks = span.marks ?? {}
      if (marks.strong) text = `<strong>${text}</strong>`
      if (marks.em) text = `<em>${text}</em>`
      if (marks.link) {
        try {
          const href = JSON.parse(String(marks.link)).href ?? ""
          if (/^(https?:|mailto:|\/|#)/i.test(href)) text = `<a href="${esc(href)}" rel="noopener">${text}</a>`
        } catch { /* not a link we understand: plain text */ }
      }
      out += text
    }
  }
  close()
  return out
}
