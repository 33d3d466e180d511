// The recommendation editor: title, the three rich-text fields, addressees,
// status with a note, anchored comments, endorsements per organisation, who
// else is here (and where their cursor is), and the history.
//
// What is offered follows the member's role (observers read; participants
// write, comment and state their organisation's position; facilitators also
// decide), and an adopted wording is fixed until a facilitator re-opens it.

import * as A from "@automerge/automerge/slim"
import { Presence } from "@automerge/automerge-repo/slim"
import { h, fill, field, batched } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import * as M from "./model.js"
import { createRichText } from "./richtext.js"
import { historyPanel, wordDiff } from "./history.js"
import { readOnlyNotice } from "./start.js"
import { consentSection } from "./consent.js"
import { amendmentsSection } from "./amendments.js"
import { authorshipView } from "./authorship.js"

// Presence colours: dark enough for white names on them (contrast ≥ 4.5:1)
// and far apart from each other (CIELAB ΔE ≥ 37 for every pair; the
// earlier palette had a purple and a pink 28 apart).
export const PRESENCE_COLOURS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#9e5a00", "#5d4037"]
const hashOf = participant => {
  let n = 0
  for (const c of String(participant)) n = (n * 31 + c.charCodeAt(0)) >>> 0
  return n
}
const colorFor = participant => PRESENCE_COLOURS[hashOf(participant) % PRESENCE_COLOURS.length]

/**
 * The colour each person present is drawn in on this screen: their own
 * choice unless someone drawn earlier has it (ourselves first, then by
 * participant id), then the next free one. Two people share a colour only
 * when there are more people than colours.
 */
function assignColours(mine, participants) {
  const taken = new Set([mine.color])
  const out = new Map([[mine.participant, mine.color]])
  for (const participant of [...new Set(participants)].sort()) {
    if (out.has(participant)) continue
    const start = hashOf(participant) % PRESENCE_COLOURS.length
    let colour = PRESENCE_COLOURS[start]
    for (let i = 0; i < PRESENCE_COLOURS.length && taken.has(colour); i++) colour = PRESENCE_COLOURS[(start + i) % PRESENCE_COLOURS.length]
    taken.add(colour)
    out.set(participant, colour)
  }
  return out
}

/**
 * The single insertion or deletion that turned `before` into `after` with the
 * caret now at `caret` (typing, Backspace, Delete, pasting over nothing), or
 * null for anything else (the caller falls back to a diff).
 */
function editAtCaret(before, after, caret) {
  const grown = after.length - before.length
  if (grown > 0) {
    const at = caret - grown
    if (at >= 0 && after.slice(0, at) === before.slice(0, at) && after.slice(caret) === before.slice(at)) return { at, remove: 0, insert: after.slice(at, caret) }
  } else if (grown < 0) {
    const removed = -grown
    if (after.slice(0, caret) === before.slice(0, caret) && after.slice(caret) === before.slice(caret + removed)) return { at: caret, remove: removed, insert: "" }
  }
  return null
}

export function recommendationPage(app, id) {
  let alive = true
  const cleanups = []
  const root = h("div", { class: "editor-page" }, h("p", {}, t("loading")))
  fill(app.main, root)

  // A document kept on this device opens from IndexedDB at once, connection
  // or not. One that is not waits for the server, which offline never
  // answers: say so instead of "Loading …" forever (it opens when back online).
  let found = false
  const waiting = setTimeout(() => {
    if (alive && !found && !app.status.connected) fill(root, h("p", { role: "status", id: "waiting-for-connection" }, t("waitingForConnection")))
  }, 1500)
  cleanups.push(() => clearTimeout(waiting))

  app.repo
    .find(`automerge:${id}`)
    .then(handle => {
      found = true
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
  const mayWrite = M.can(app, "write")
  const mayDecide = M.can(app, "decide")
  // On an amendment (a branch of a recommendation), who may edit follows its entry.
  let render = () => {}
  const amendments = amendmentsSection(app, handle, processId, { onAccess: () => render() })
  // Whether the wording (title, texts, addressees) may be edited now.
  const wordingOpen = doc => mayWrite && M.str(doc.status) !== "adopted" && amendments.mayEditWording()

  // -- presence -----------------------------------------------------------
  const presence = new Presence({ handle })
  const user = { name: me.name, organisation: me.organisation, participant: me.participant, color: colorFor(me.participant) }
  presence.start({ initialState: { user, cursor: null }, heartbeatMs: 5000, peerTtlMs: 15000 })
  // Without a connection nobody's presence is current: show none (their
  // last heartbeat would otherwise keep them "here" until it expires).
  let connected = app.status.connected
  const peers = () => {
    if (!connected) return []
    const list = Object.entries(presence.getPeerStates().value ?? {})
      .filter(([peerId]) => peerId !== app.repo.peerId)
      .map(([peerId, s]) => ({ peerId, ...s.value }))
      .filter(p => p.user?.name)
    const colours = assignColours(user, list.map(p => p.user.participant ?? p.user.name))
    return list.map(p => ({ ...p, user: { ...p.user, color: colours.get(p.user.participant ?? p.user.name) ?? p.user.color } }))
  }

  // -- title --------------------------------------------------------------
  const title = h("input", { type: "text", id: "title", class: "title-input", autocomplete: "off", readonly: !wordingOpen(doc0) })
  title.value = M.str(doc0.title)
  // The caret as an Automerge cursor on the character before it ("start"
  // before the first), so text someone else inserts at the caret lands after
  // it, as in the rich-text fields, and the next keystroke continues our run.
  let titleCaret = null
  const rememberCaret = () => {
    try {
      const pos = title.selectionStart ?? 0
      titleCaret = pos === 0 ? "start" : A.getCursor(handle.doc(), ["title"], pos - 1, "before")
    } catch {
      titleCaret = null
    }
  }
  const caretPosition = (doc, length) => {
    if (titleCaret === "start") return 0
    return Math.min(length, A.getCursorPosition(doc, ["title"], titleCaret) + 1)
  }
  // The box follows the document at once, not on the next render: the input
  // handler diffs the box against the document, and must never see text of
  // others that the box does not show yet (it would delete it).
  let shownTitle = title.value
  const syncTitle = () => {
    const doc = handle.doc()
    const value = M.str(doc.title)
    if (title.value === value) return
    const focused = document.activeElement === title
    title.value = shownTitle = value
    if (focused && titleCaret) {
      try {
        const pos = caretPosition(doc, value.length)
        title.setSelectionRange(pos, pos)
      } catch {
        // The caret's character is unknown here: leave the browser's choice.
      }
    }
  }
  title.addEventListener("input", () => {
    const before = shownTitle
    const value = (shownTitle = title.value)
    if (title.readOnly) return
    // The edit where the caret says it happened: a diff alone cannot tell
    // which of two equal neighbours (two spaces, one ours, one someone
    // else's) was typed, and guessing wrong would put our next keystrokes
    // inside their run.
    const edit = editAtCaret(before, value, title.selectionStart ?? value.length)
    M.change(handle, "edit title", d => {
      if (edit && (typeof d.title === "string" || d.title == null) && M.str(d.title) === before) A.splice(d, ["title"], edit.at, edit.remove, edit.insert)
      else if (typeof d.title === "string" || d.title == null) A.updateText(d, ["title"], value)
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
        if (!M.nextStatuses(from, mayDecide).includes(to)) {
          fill(statusError, t("forbiddenMove", { from: t(from), to: t(to) }))
          return
        }
        fill(statusError)
        // The adopted wording is the document as it is now, before this change.
        const heads = to === "adopted" ? A.getHeads(handle.doc()) : null
        M.change(handle, `status → ${to}`, (d, who) => M.changeStatus(d, to, who, statusNote.value.trim(), heads))
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
      hidden: !wordingOpen(doc0),
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

  const toolbars = []
  const fieldSections = M.TEXT_FIELDS.map(f => {
    const mount = h("div", { class: "richtext-mount" })
    const toolbar = h("div", { class: "toolbar", role: "toolbar", "aria-label": t("formatting", { field: t(f) }), hidden: !wordingOpen(doc0) })
    toolbars.push(toolbar)
    const labelId = `label-${f}`
    const section = h("section", { class: "text-field", "aria-labelledby": labelId }, h("h2", { id: labelId }, t(f)), toolbar, mount)
    const ed = createRichText({
      mount,
      handle,
      field: f,
      label: t(f),
      overlays: overlays(f),
      editable: wordingOpen(doc0),
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
    const state = h("span", { class: "badge resolved-badge", hidden: true }, t("resolvedBadge"))
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
    // Observers read the discussion; they do not take part in it.
    replyForm.hidden = !mayWrite
    resolveBtn.hidden = !mayWrite
    card = { el: h("article", { class: "comment", id: `comment-${cid}`, dataset: { comment: cid } }, state, quote, meta, body, replies, replyForm, resolveBtn), quote, meta, body, replies, resolveBtn, state }
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
      id: "endorse-form",
      hidden: !mayWrite,
      onSubmit: e => {
        e.preventDefault()
        M.change(handle, `endorse: ${stance.value}`, (d, who) => M.endorse(d, stance.value, endorseNote.value.trim(), who))
        endorseNote.value = ""
      },
    },
    // Keyed by the organisation the server verified (secure servers).
    field(t("stance", { org: me.organisation }), stance),
    field(t("endorsementNote"), endorseNote),
    h("button", { type: "submit" }, t("endorse"))
  )

  // -- breadcrumb: process › workshop › this recommendation -----------------------
  // Which workshop a recommendation belongs to is in its process document:
  // the names are filled in once that is loaded (or left as plain links).
  const crumbProcess = h("a", { href: processId ? `/p/${processId}` : "/", id: "crumb-process" }, t("backToProcess"))
  const crumbWorkshop = h("a", { id: "crumb-workshop", hidden: true })
  const crumbHere = h("span", { "aria-current": "page", id: "crumb-here" })
  const crumbs = h(
    "nav",
    { class: "crumbs", "aria-label": t("breadcrumb") },
    h("ol", {}, h("li", {}, h("a", { href: "/" }, t("backToStart"))), processId ? h("li", {}, crumbProcess) : null, h("li", { class: "crumb-workshop", hidden: true }, crumbWorkshop), h("li", {}, crumbHere))
  )
  let processHandle = null
  const cleanupsLocal = []
  let gone = false
  const renderCrumbs = () => {
    const doc = handle.doc()
    fill(crumbHere, M.str(doc.title) || "—")
    const process = processHandle?.isReady() ? processHandle.doc() : null
    if (!process) return
    fill(crumbProcess, M.str(process.title) || t("backToProcess"))
    const wid = M.str(doc.workshop)
    const workshop = (process.workshops ?? []).find(w => M.str(w.id) === wid)
    crumbWorkshop.hidden = !workshop
    crumbWorkshop.parentElement.hidden = !workshop
    if (workshop) {
      fill(crumbWorkshop, M.str(workshop.title))
      crumbWorkshop.setAttribute("href", `/p/${processId}#ws-${wid}`)
    }
  }
  if (processId) {
    app.repo
      .find(`automerge:${processId}`)
      .then(hd => {
        if (gone) return
        processHandle = hd
        hd.on("change", renderCrumbs)
        cleanupsLocal.push(() => hd.off("change", renderCrumbs))
        renderCrumbs()
      })
      .catch(() => {})
  }

  // -- history --------------------------------------------------------------------
  const history = historyPanel(app, handle)
  const consent = consentSection(app, handle, processId)
  const authorship = authorshipView(handle)

  // -- layout -----------------------------------------------------------------------
  const sectorsEl = h("p", { class: "meta", id: "sectors" })
  const adoptedNotice = h("p", { id: "adopted-notice", class: "notice", role: "status", hidden: true })
  const changedSince = h("section", { id: "changed-since-adoption", class: "notice changed", hidden: true, "aria-labelledby": "h-changed-since" })
  fill(
    root,
    crumbs,
    readOnlyNotice(app),
    amendments.banner,
    h("div", { class: "editor-head" }, field(t("title"), title), presenceEl),
    sectorsEl,
    adoptedNotice,
    changedSince,
    h(
      "div",
      { class: "editor-grid" },
      h(
        "div",
        { class: "editor-main" },
        fieldSections,
        amendments.isBranch ? null : h("section", { "aria-labelledby": "h-addressees" }, h("h2", { id: "h-addressees" }, t("addressees")), addresseeList, addresseeForm),
        amendments.el,
        authorship.el
      ),
      // A branch carries only wording: status, comments, positions and consent are the recommendation's.
      amendments.isBranch ? null : h(
        "aside",
        { class: "editor-side" },
        h("section", { "aria-labelledby": "h-status" }, h("h2", { id: "h-status" }, t("status"), " ", statusBadge), mayWrite ? statusForm : null, statusError, h("details", {}, h("summary", {}, t("statusLog")), statusLog)),
        h(
          "section",
          { "aria-labelledby": "h-comments" },
          h("h2", { id: "h-comments" }, t("comments")),
          mayWrite ? [commentButton, h("p", { class: "hint", id: "comment-help" }, t("selectTextFirst"))] : null,
          commentForm,
          commentsEl,
          resolvedEl
        ),
        h("section", { "aria-labelledby": "h-endorsements" }, h("h2", { id: "h-endorsements" }, t("endorsements")), endorsementList, endorseForm),
        consent.el
      )
    ),
    history.el
  )

  // -- rendering of what others change --------------------------------------------
  const refreshOverlays = () => {
    for (const ed of Object.values(editors)) ed.refresh()
  }

  render = batched(() => {
    const doc = handle.doc()
    const label = p => M.participantLabel(doc, p)
    document.title = `${M.str(doc.title) || "—"} · konsens`
    renderCrumbs()
    const open = wordingOpen(doc)
    title.readOnly = !open
    for (const ed of Object.values(editors)) ed.setEditable(open)
    for (const bar of toolbars) bar.hidden = !open
    addresseeForm.hidden = !open
    renderAdoption(doc)
    fill(sectorsEl, (doc.sectors ?? []).map(s => h("span", { class: "chip" }, M.str(s))))

    const status = M.str(doc.status)
    statusBadge.className = `badge status-${status}`
    statusBadge.dataset.status = status
    fill(statusBadge, t(status))
    const chosen = moveTo.value
    const moves = M.nextStatuses(status, mayDecide)
    fill(moveTo, moves.map(s => h("option", { value: s }, t(s))))
    if (moves.includes(chosen)) moveTo.value = chosen
    statusForm.hidden = moves.length === 0
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
          open && h(
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
    const unresolved = []
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
      card.state.hidden = !c.resolved
      card.el.classList.toggle("is-resolved", Boolean(c.resolved))
      card.el.classList.toggle("active", cid === activeComment)
      ;(c.resolved ? done : unresolved).push(card.el)
    }
    fill(commentsEl, unresolved.length ? unresolved : h("p", { class: "hint" }, t(mayWrite ? "noComments" : "noCommentsYet")))
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

    consent.render(doc)
    history.refresh()
    refreshOverlays()
  })

  // -- adoption -----------------------------------------------------------------
  // While adopted, the wording is fixed. An edit made offline before the
  // adoption was known still merges (nothing anyone wrote is dropped), so
  // show what differs from the adopted wording; the report keeps the latter.
  function renderAdoption(doc) {
    const adopted = M.adoption(doc)
    adoptedNotice.hidden = !adopted
    if (adopted) fill(adoptedNotice, t(adopted.at ? "adoptedFixed" : "adoptedFixedUndated", { date: formatTime(adopted.at) }))
    const then = adopted?.heads ? A.view(doc, adopted.heads) : null
    const diffs = then
      ? [
          ["title", M.str(then.title), M.str(doc.title)],
          ...M.TEXT_FIELDS.map(f => [f, M.linesOf(then, f), M.linesOf(doc, f)]),
          ["addressees", (then.addressees ?? []).map(M.str).join(", "), (doc.addressees ?? []).map(M.str).join(", ")],
        ].filter(([, a, b]) => a !== b)
      : []
    changedSince.hidden = diffs.length === 0
    if (diffs.length === 0) {
      changedSince.replaceChildren()
      return
    }
    fill(
      changedSince,
      h("h2", { id: "h-changed-since" }, t("changedSinceAdoption")),
      h("p", {}, t(mayDecide ? "changedSinceAdoptionFacilitator" : "changedSinceAdoptionMember")),
      h("dl", { class: "diff" }, diffs.map(([f, a, b]) => [h("dt", {}, t(f)), h("dd", { dataset: { diff: f } }, wordDiff(a, b))]))
    )
  }

  // On a secure server the documents name people by id: the server's member
  // list has their names.
  if (!app.me.open && processId) {
    fetch(`/api/processes/${processId}/members`)
      .then(r => (r.ok ? r.json() : null))
      .then(list => {
        if (!Array.isArray(list)) return
        M.learnPeople(list)
        render()
      })
      .catch(() => {})
  }

  const renderPresence = batched(() => {
    const list = peers()
    presenceEl.dataset.connected = String(connected)
    fill(
      presenceEl,
      h("span", { class: "meta" }, `${t("hereNow")}: `),
      h("span", { class: "who", style: `--c: ${user.color}` }, `${me.name} (${t("you")})`),
      connected ? null : h("span", { class: "meta", id: "presence-offline" }, t("presenceOffline")),
      list.map(p =>
        h("span", { class: "who", style: `--c: ${p.user.color}`, dataset: { peer: p.user.name }, title: p.cursor ? t(p.cursor.field) : "" }, `${p.user.name} (${p.user.organisation})`, p.cursor ? ` · ${t(p.cursor.field)}` : "")
      )
    )
    refreshOverlays()
  })
  for (const ev of ["update", "snapshot", "heartbeat", "goodbye", "pruning"]) presence.on(ev, renderPresence)
  const unsubscribeStatus = app.status.subscribe(s => {
    if (s.connected === connected) return
    connected = s.connected
    renderPresence()
  })

  handle.on("change", syncTitle)
  handle.on("change", render)
  render()
  renderPresence()

  return () => {
    unsubscribeStatus()
    gone = true
    for (const fn of cleanupsLocal) fn()
    handle.off("change", syncTitle)
    handle.off("change", render)
    clearTimeout(broadcastTimer)
    presence.stop()
    history.destroy()
    consent.destroy()
    amendments.destroy()
    authorship.destroy()
    for (const ed of Object.values(editors)) ed.destroy()
  }
}
