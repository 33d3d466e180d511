// The recommendation editor: title, the three rich-text fields, addressees,
// status with a note, anchored comments, endorsements per organisation, who
// else is here (and where their cursor is), and the history.

import * as A from "@automerge/automerge/slim"
import { Presence } from "@automerge/automerge-repo/slim"
import { h, fill, field, batched } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import * as M from "./model.js"
import { createRichText } from "./richtext.js"
import { historyPanel } from "./history.js"

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#e377c2", "#8c564b", "#ff7f0e", "#17becf"]
const colorFor = participant => {
  let n = 0
  for (const c of participant) n = (n * 31 + c.charCodeAt(0)) >>> 0
  return COLORS[n % COLORS.length]
}

export function recommendationPage(app, id) {
  let alive = true
  const cleanups = []
  const root = h("div", { class: "editor-page" }, h("p", {}, t("loading")))
  fill(app.main, root)

  app.repo
    .find(`automerge:${id}`)
    .then(handle => {
      if (!alive) return
      if (M.str(handle.doc()?.schema) !== M.RECOMMENDATION_SCHEMA) {
        fill(root, h("p", { role: "alert" }, t("wrongKind", { kind: t("recommendationKind") })))
        return
      }
      app.status.track(handle)
      cleanups.push(editor(app, handle, root))
    })
    .catch(() => alive && fill(root, h("p", { role: "alert" }, t("notFound"))))

  return {
    destroy() {
      alive = false
      for (const fn of cleanups) fn()
    },
  }
}

function editor(app, handle, root) {
  const me = M.identity()
  const doc0 = handle.doc()
  const processId = M.str(doc0.process).replace(/^automerge:/, "").split("#")[0]

  // -- presence -----------------------------------------------------------
  const presence = new Presence({ handle })
  const user = { name: me.name, organisation: me.organisation, participant: me.participant, color: colorFor(me.participant) }
  presence.start({ initialState: { user, cursor: null }, heartbeatMs: 5000, peerTtlMs: 15000 })
  const peers = () =>
    Object.entries(presence.getPeerStates().value ?? {})
      .filter(([peerId]) => peerId !== app.repo.peerId)
      .map(([peerId, s]) => ({ peerId, ...s.value }))
      .filter(p => p.user?.name)

  // -- title --------------------------------------------------------------
  const title = h("input", { type: "text", id: "title", class: "title-input", autocomplete: "off" })
  title.value = M.str(doc0.title)
  // The caret as an Automerge cursor, so a remote edit does not move it.
  let titleCaret = null
  const rememberCaret = () => {
    try {
      titleCaret = A.getCursor(handle.doc(), ["title"], title.selectionStart ?? 0)
    } catch {
      titleCaret = null
    }
  }
  title.addEventListener("input", () => {
    const value = title.value
    M.change(handle, "edit title", d => {
      if (typeof d.title === "string" || d.title == null) A.updateText(d, ["title"], value)
      else d.title = value
    })
    rememberCaret()
  })
  for (const ev of ["keyup", "click", "focus", "select"]) title.addEventListener(ev, rememberCaret)

  // -- presence bar ---------------------------------------------------------
  const presenceEl = h("div", { class: "presence", id: "presence", "aria-live": "polite" })

  // -- status -------------------------------------------------------------------
  const statusBadge = h("span", { class: "badge", id: "status-badge" })
  const moveTo = h("select", {})
  const statusNote = h("input", { type: "text" })
  const statusError = h("p", { class: "error", role: "alert" })
  const statusLog = h("ol", { class: "log" })
  const statusForm = h(
    "form",
    {
      class: "inline",
      onSubmit: e => {
        e.preventDefault()
        const to = moveTo.value
        const from = M.str(handle.doc().status)
        if (!M.nextStatuses(from).includes(to)) {
          fill(statusError, t("forbiddenMove", { from: t(from), to: t(to) }))
          return
        }
        fill(statusError)
        M.change(handle, `status → ${to}`, (d, who) => M.changeStatus(d, to, who, statusNote.value.trim()))
        statusNote.value = ""
      },
    },
    field(t("moveTo"), moveTo),
    field(t("statusNote"), statusNote),
    h("button", { type: "submit" }, t("changeStatus"))
  )

  // -- addressees -------------------------------------------------------------
  const addresseeList = h("ul", { class: "chips" })
  const addresseeInput = h("input", { type: "text" })
  const addresseeForm = h(
    "form",
    {
      class: "inline",
      onSubmit: e => {
        e.preventDefault()
        const v = addresseeInput.value.trim()
        if (!v) return
        M.change(handle, "set addressees", d => {
          if (!d.addressees) d.addressees = []
          d.addressees.push(new A.ImmutableString(v))
        })
        addresseeInput.value = ""
      },
    },
    field(t("addAddressee"), addresseeInput),
    h("button", { type: "submit" }, t("addAddressee"))
  )

  // -- rich text ------------------------------------------------------------------
  let lastSelection = null
  let activeComment = null
  const editors = {}
  const commentButton = h("button", { type: "button", id: "comment-button", disabled: true, "aria-describedby": "comment-help", onClick: () => openCommentForm() }, t("comment"))
  const overlays = fieldName => () => {
    const doc = handle.doc()
    const comments = []
    for (const [cid, c] of Object.entries(doc.comments ?? {})) {
      if (c.resolved || M.str(c.field) !== fieldName) continue
      const r = M.commentRange(doc, c)
      if (r) comments.push({ id: cid, start: r.start, end: r.end, active: cid === activeComment })
    }
    const ps = []
    for (const p of peers()) {
      if (p.cursor?.field !== fieldName) continue
      try {
        const head = A.getCursorPosition(doc, [fieldName], p.cursor.head)
        const anchor = A.getCursorPosition(doc, [fieldName], p.cursor.anchor)
        ps.push({ peerId: p.peerId, name: p.user.name, color: p.user.color, head, anchor })
      } catch {
        // A cursor from a change we do not have yet: shown once it arrives.
      }
    }
    return { comments, peers: ps }
  }

  let broadcastTimer = null
  const broadcastCursor = range => {
    clearTimeout(broadcastTimer)
    broadcastTimer = setTimeout(() => {
      if (!range || !range.focused) return
      try {
        const doc = handle.doc()
        const cursor = {
          field: range.field,
          anchor: A.getCursor(doc, [range.field], range.anchor),
          head: A.getCursor(doc, [range.field], range.head),
        }
        presence.broadcast("cursor", cursor)
      } catch {
        // Empty text has no position to point at.
      }
    }, 50)
  }

  const fieldSections = M.TEXT_FIELDS.map(f => {
    const mount = h("div", { class: "richtext-mount" })
    const toolbar = h("div", { class: "toolbar", role: "toolbar", "aria-label": t("formatting", { field: t(f) }) })
    const labelId = `label-${f}`
    const section = h("section", { class: "text-field", "aria-labelledby": labelId }, h("h2", { id: labelId }, t(f)), toolbar, mount)
    const ed = createRichText({
      mount,
      handle,
      field: f,
      label: t(f),
      overlays: overlays(f),
      onSelection: range => {
        if (range && range.focused) {
          lastSelection = range
          commentButton.disabled = !(range.end > range.start)
        }
        broadcastCursor(range)
      },
      onFocusComment: cid => focusComment(cid),
    })
    editors[f] = ed
    const tool = (label, key, glyph, cmd) =>
      h("button", { type: "button", "aria-label": label, title: key ? `${label} (${key})` : label, onMousedown: e => e.preventDefault(), onClick: () => { cmd(); ed.view.focus() } }, glyph)
    fill(
      toolbar,
      tool(t("bold"), "Ctrl+B", h("b", {}, "B"), ed.commands.bold),
      tool(t("italic"), "Ctrl+I", h("i", {}, "I"), ed.commands.italic),
      tool(t("bulletList"), "", "•", ed.commands.bulletList),
      tool(t("heading"), "", "H", ed.commands.heading)
    )
    return section
  })

  // -- comments ---------------------------------------------------------------------
  const commentsEl = h("div", { id: "comments" })
  const resolvedEl = h("details", { class: "resolved" })
  const commentForm = h("form", { class: "card comment-form", hidden: true })
  const commentBody = h("textarea", { rows: 3, required: true })
  const commentQuote = h("blockquote", {})
  let pendingRange = null
  fill(
    commentForm,
    commentQuote,
    field(t("commentBody"), commentBody),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("addComment")), h("button", { type: "button", onClick: () => { commentForm.hidden = true } }, t("cancel")))
  )
  commentForm.addEventListener("submit", e => {
    e.preventDefault()
    const body = commentBody.value.trim()
    if (!body || !pendingRange) return
    // Take the selection as it is now: ProseMirror has mapped it through any
    // edits that arrived while the comment was being written.
    const r = editors[pendingRange.field].selectionRange() ?? pendingRange
    const range = r.end > r.start ? r : pendingRange
    const cid = `c-${M.randomHex(6)}`
    const quote = M.str(handle.doc()[range.field]).slice(range.start, range.end).replace(/\uFFFC/g, "")
    M.change(handle, `comment on ${range.field}`, (d, who) => M.addComment(d, cid, range.field, range.start, range.end, quote, body, who))
    commentBody.value = ""
    commentForm.hidden = true
    activeComment = cid
  })
  function openCommentForm() {
    const r = lastSelection
    if (!r || r.end <= r.start) return
    pendingRange = r
    fill(commentQuote, M.str(handle.doc()[r.field]).slice(r.start, r.end).replace(/\uFFFC/g, ""))
    commentForm.hidden = false
    commentBody.focus()
  }
  function focusComment(cid) {
    activeComment = cid
    refreshOverlays()
    const card = document.getElementById(`comment-${cid}`)
    card?.scrollIntoView({ block: "nearest" })
    card?.classList.add("active")
  }

  const cards = new Map()
  function commentCard(cid) {
    let card = cards.get(cid)
    if (card) return card
    const quote = h("button", { type: "button", class: "quote link" })
    const meta = h("p", { class: "meta" })
    const body = h("p", { class: "body" })
    const replies = h("ol", { class: "replies" })
    const replyInput = h("input", { type: "text", "aria-label": t("replyBody"), placeholder: t("replyBody") })
    const resolveBtn = h("button", { type: "button" })
    const replyForm = h(
      "form",
      {
        class: "inline",
        onSubmit: e => {
          e.preventDefault()
          const v = replyInput.value.trim()
          if (!v) return
          M.change(handle, "reply to comment", (d, who) => M.reply(d, cid, v, who))
          replyInput.value = ""
        },
      },
      replyInput,
      h("button", { type: "submit" }, t("reply"))
    )
    quote.addEventListener("click", () => {
      const c = handle.doc().comments?.[cid]
      const r = c && M.commentRange(handle.doc(), c)
      if (r) editors[r.field]?.select(r.start, r.end)
      focusComment(cid)
    })
    resolveBtn.addEventListener("click", () => {
      const c = handle.doc().comments?.[cid]
      if (!c) return
      M.change(handle, c.resolved ? "reopen comment" : "resolve comment", d => M.resolveComment(d, cid, !c.resolved))
    })
    card = { el: h("article", { class: "comment", id: `comment-${cid}`, dataset: { comment: cid } }, quote, meta, body, replies, replyForm, resolveBtn), quote, meta, body, replies, resolveBtn }
    cards.set(cid, card)
    return card
  }

  // -- endorsements -------------------------------------------------------------
  const endorsementList = h("ul", { class: "list", id: "endorsements" })
  const stance = h("select", {}, M.STANCES.map(s => h("option", { value: s }, t(s))))
  const endorseNote = h("input", { type: "text" })
  const endorseForm = h(
    "form",
    {
      class: "inline",
      onSubmit: e => {
        e.preventDefault()
        M.change(handle, `endorse: ${stance.value}`, (d, who) => M.endorse(d, stance.value, endorseNote.value.trim(), who))
        endorseNote.value = ""
      },
    },
    field(t("stance", { org: me.organisation }), stance),
    field(t("endorsementNote"), endorseNote),
    h("button", { type: "submit" }, t("endorse"))
  )

  // -- history --------------------------------------------------------------------
  const history = historyPanel(app, handle)

  // -- layout -----------------------------------------------------------------------
  const sectorsEl = h("p", { class: "meta", id: "sectors" })
  fill(
    root,
    h("nav", { class: "crumbs" }, h("a", { href: "/" }, t("backToStart")), processId ? [" › ", h("a", { href: `/p/${processId}` }, t("backToProcess"))] : null),
    h("div", { class: "editor-head" }, field(t("title"), title), presenceEl),
    sectorsEl,
    h(
      "div",
      { class: "editor-grid" },
      h(
        "div",
        { class: "editor-main" },
        fieldSections,
        h("section", { "aria-labelledby": "h-addressees" }, h("h2", { id: "h-addressees" }, t("addressees")), addresseeList, addresseeForm)
      ),
      h(
        "aside",
        { class: "editor-side" },
        h("section", { "aria-labelledby": "h-status" }, h("h2", { id: "h-status" }, t("status"), " ", statusBadge), statusForm, statusError, h("details", {}, h("summary", {}, t("statusLog")), statusLog)),
        h(
          "section",
          { "aria-labelledby": "h-comments" },
          h("h2", { id: "h-comments" }, t("comments")),
          commentButton,
          h("p", { class: "hint", id: "comment-help" }, t("selectTextFirst")),
          commentForm,
          commentsEl,
          resolvedEl
        ),
        h("section", { "aria-labelledby": "h-endorsements" }, h("h2", { id: "h-endorsements" }, t("endorsements")), endorsementList, endorseForm)
      )
    ),
    history.el
  )

  // -- rendering of what others change --------------------------------------------
  const refreshOverlays = () => {
    for (const ed of Object.values(editors)) ed.refresh()
  }

  const render = batched(() => {
    const doc = handle.doc()
    const label = p => M.participantLabel(doc, p)
    const value = M.str(doc.title)
    document.title = `${value || "—"} · konsens`
    if (title.value !== value) {
      const focused = document.activeElement === title
      title.value = value
      if (focused && titleCaret) {
        try {
          const pos = A.getCursorPosition(doc, ["title"], titleCaret)
          title.setSelectionRange(pos, pos)
        } catch {
          // The caret's character is unknown here: leave the browser's choice.
        }
      }
    }
    fill(sectorsEl, (doc.sectors ?? []).map(s => h("span", { class: "chip" }, M.str(s))))

    const status = M.str(doc.status)
    statusBadge.className = `badge status-${status}`
    statusBadge.dataset.status = status
    fill(statusBadge, t(status))
    const chosen = moveTo.value
    fill(moveTo, M.nextStatuses(status).map(s => h("option", { value: s }, t(s))))
    if (M.nextStatuses(status).includes(chosen)) moveTo.value = chosen
    fill(
      statusLog,
      (doc.statusLog ?? []).map(e =>
        h("li", {}, `${t(M.str(e.from))} → ${t(M.str(e.to))} · ${label(M.str(e.by))} · ${formatTime(e.at)}`, M.str(e.note) ? h("div", { class: "note" }, M.str(e.note)) : null)
      )
    )

    fill(
      addresseeList,
      (doc.addressees ?? []).map((a, i) =>
        h(
          "li",
          { class: "chip" },
          M.str(a),
          h(
            "button",
            {
              type: "button",
              class: "remove",
              "aria-label": t("removeAddressee", { name: M.str(a) }),
              onClick: () =>
                M.change(handle, "set addressees", d => {
                  // Remove this entry where it is now (others may have added some meanwhile).
                  const list = d.addressees ?? []
                  const at = M.str(list[i]) === M.str(a) ? i : list.findIndex(x => M.str(x) === M.str(a))
                  if (at >= 0) list.splice(at, 1)
                }),
            },
            "×"
          )
        )
      )
    )

    // Comments: cards are kept (with what is typed into their reply box).
    const open = []
    const done = []
    const entries = Object.entries(doc.comments ?? {}).sort((a, b) => (a[1].at ?? 0) - (b[1].at ?? 0))
    for (const [cid, c] of entries) {
      const card = commentCard(cid)
      const r = M.commentRange(doc, c)
      const now = r ? M.str(doc[r.field]).slice(r.start, r.end).replace(/\uFFFC/g, "") : null
      fill(card.quote, now ?? `${M.str(c.quote)} ${t("textGone")}`)
      card.quote.setAttribute("aria-label", `${t(M.str(c.field))}: ${now ?? M.str(c.quote)}`)
      fill(card.meta, `${label(M.str(c.author))} · ${formatTime(c.at)} · ${t(M.str(c.field))}`)
      fill(card.body, M.str(c.body))
      fill(card.replies, (c.replies ?? []).map(rp => h("li", {}, h("span", { class: "meta" }, `${label(M.str(rp.author))} · ${formatTime(rp.at)}`), h("p", {}, M.str(rp.body)))))
      fill(card.resolveBtn, c.resolved ? t("reopen") : t("resolve"))
      card.el.classList.toggle("is-resolved", Boolean(c.resolved))
      card.el.classList.toggle("active", cid === activeComment)
      ;(c.resolved ? done : open).push(card.el)
    }
    fill(commentsEl, open.length ? open : h("p", { class: "hint" }, t("noComments")))
    fill(resolvedEl, h("summary", {}, t("showResolved", { n: done.length })), done)
    resolvedEl.hidden = done.length === 0

    const endorsements = Object.entries(doc.endorsements ?? {})
    fill(
      endorsementList,
      endorsements.length
        ? endorsements.map(([org, e]) =>
            h(
              "li",
              { dataset: { organisation: org, stance: M.str(e.stance) } },
              h("strong", {}, org),
              ": ",
              h("span", { class: `badge stance-${M.str(e.stance)}` }, t(M.str(e.stance))),
              M.str(e.note) ? ` – ${M.str(e.note)}` : "",
              h("span", { class: "meta" }, ` ${t("by", { name: label(M.str(e.by)) })} · ${formatTime(e.at)}`)
            )
          )
        : h("li", { class: "hint" }, t("noEndorsements"))
    )
    const mine = doc.endorsements?.[me.organisation]
    if (mine && document.activeElement !== stance) stance.value = M.str(mine.stance)

    history.refresh()
    refreshOverlays()
  })

  const renderPresence = batched(() => {
    const list = peers()
    fill(
      presenceEl,
      h("span", { class: "meta" }, `${t("hereNow")}: `),
      h("span", { class: "who", style: `--c: ${user.color}` }, `${me.name} (${t("you")})`),
      list.map(p =>
        h("span", { class: "who", style: `--c: ${p.user.color}`, dataset: { peer: p.user.name }, title: p.cursor ? t(p.cursor.field) : "" }, `${p.user.name} (${p.user.organisation})`, p.cursor ? ` · ${t(p.cursor.field)}` : "")
      )
    )
    refreshOverlays()
  })
  for (const ev of ["update", "snapshot", "heartbeat", "goodbye", "pruning"]) presence.on(ev, renderPresence)

  handle.on("change", render)
  render()
  renderPresence()

  return () => {
    handle.off("change", render)
    clearTimeout(broadcastTimer)
    presence.stop()
    history.destroy()
    for (const ed of Object.values(editors)) ed.destroy()
  }
}
