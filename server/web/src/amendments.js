// Amendments on the recommendation page (see the contract in
// protocol/model/src/amendment.rs): a branch of the recommendation kept as
// its own document, edited in the same editor, listed on the recommendation
// with its diff against the merged preview, endorsements by organisation,
// co-authors, and the facilitators' decision with an official answer.
//
// On a recommendation, `amendmentsSection` lists them and offers "Propose an
// amendment"; on a branch it shows whose amendment this is, a way back, and
// the same card. The server's access rules decide; this only offers what
// they would admit.

import * as A from "@automerge/automerge/slim"
import { h, fill, field, batched } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import * as M from "./model.js"
import { hunks, paragraphs } from "./diff.js"
import "./amendments.css"

const S = value => new A.ImmutableString(String(value))
const idOf = url => M.str(url).replace(/^automerge:/, "").split("#")[0]

/** The fields an amendment may change, in reading order (hunk ids are `<field>:<n>`). */
export const AMENDABLE = ["title", ...M.TEXT_FIELDS]
const PROPOSABLE = new Set(["draft", "discussion", "consensus"])
const EDITABLE = new Set(["open", "changes-requested"])

/** A field's text with block markers as "\n" (same length: indexes stay automerge's). */
const plain = (doc, f) => M.str(doc?.[f]).replace(/\uFFFC/g, "\n")

/** The branch this document is, or null: {of: recommendation id, base}. */
export function branchOf(doc) {
  const a = doc?.amendment
  if (!a || !M.str(a.of)) return null
  return { of: idOf(a.of), base: (a.base ?? []).map(M.str) }
}

/** The recommendation as accepting the branch would leave it (before any hunk is reverted). */
export function mergedPreview(rec, branch) {
  return A.merge(A.clone(rec), branch)
}

/** Per field, the parts of the diff from `rec` to `merged` (see diff.js: hunks). */
export function fieldHunks(rec, merged) {
  const out = []
  for (const f of AMENDABLE) {
    const parts = hunks(plain(rec, f), plain(merged, f))
    out.push({ field: f, parts, hunks: parts.filter(p => "hunk" in p).map(p => ({ ...p, id: `${f}:${p.hunk}` })) })
  }
  return out
}

/**
 * Inside a change of the merged recommendation: put back the
 * recommendation's text for every hunk not in `chosen` (from the end of
 * each field, so earlier indexes stay right). `rec` is the recommendation
 * before the merge (for the paragraphs a hunk removed).
 */
function revertHunks(d, rec, diff, chosen) {
  for (const { field: f, hunks: list } of diff) {
    const undo = [...list].reverse().filter(hk => !chosen.has(hk.id))
    if (!undo.length) continue
    if (f === "title") {
      // The title may be a plain string (older documents): write it whole.
      let text = M.str(d.title)
      for (const hk of undo) text = text.slice(0, hk.at) + hk.del + text.slice(hk.at + hk.ins.length)
      if (typeof d.title === "string") A.updateText(d, ["title"], text)
      else d.title = text
      continue
    }
    for (const hk of undo) {
      if (hk.ins.length) A.splice(d, [f], hk.at, hk.ins.length)
      // The removed text, with its paragraph breaks as the blocks they were.
      const raw = M.str(rec[f]).slice(hk.from, hk.to)
      const pieces = raw.split("\uFFFC")
      let at = hk.at
      for (const [i, piece] of pieces.entries()) {
        if (i > 0) {
          let block = { type: "paragraph", parents: [], attrs: {} }
          try {
            block = A.block(rec, [f], hk.from + pieces.slice(0, i).join("\uFFFC").length) ?? block
          } catch {
            // Not a block there after all: a plain paragraph.
          }
          A.splitBlock(d, [f], at, block)
          at += 1
        }
        if (piece) {
          A.splice(d, [f], at, 0, piece)
          at += piece.length
        }
      }
    }
  }
}

/** What a facilitator's decision writes into the entry. */
function writeDecision(d, id, state, answer, me, accepted = [], rejected = []) {
  const e = d.amendments?.[id]
  if (!e) return
  e.state = S(state)
  e.decision = { state: S(state), answer: S(answer), by: S(me.participant), at: Date.now(), accepted: accepted.map(S), rejected: rejected.map(S) }
}

/** The merged recommendation a decision would leave, for the preview (nothing is written). */
function decidedPreview(rec, branch, chosen) {
  const diff = fieldHunks(rec, mergedPreview(rec, branch))
  const merged = mergedPreview(rec, branch)
  return A.change(merged, d => revertHunks(d, rec, diff, chosen))
}

export function amendmentsSection(app, handle, processId, { onAccess } = {}) {
  const me = M.identity()
  const mayWrite = M.can(app, "write")
  const mayDecide = M.can(app, "decide")
  const mayEndorse = mayWrite && Boolean(me?.organisation) && (app.me.open || app.me.role === "participant")
  const branch = branchOf(handle.doc())
  let recHandle = branch ? null : handle
  let members = [] // the server's verified members of the process
  let gone = false
  const cleanups = []
  const branches = new Map() // branch id → its handle, once found
  const cards = new Map()

  const label = p => (app.me.open ? M.participantLabel(recHandle?.doc(), p) : M.participantLabel(null, p))

  // -- propose ------------------------------------------------------------------
  const proposeTitle = h("input", { type: "text", id: "amend-propose-title", autocomplete: "off" })
  const proposeError = h("p", { class: "error", role: "alert" })
  const proposeForm = h(
    "form",
    { class: "inline", id: "amend-propose", hidden: true, onSubmit: e => (e.preventDefault(), propose()) },
    field(t("amend_proposeTitle"), proposeTitle),
    h("button", { type: "submit" }, t("amend_propose")),
    proposeError
  )

  function propose() {
    const what = proposeTitle.value.trim()
    if (!what) {
      fill(proposeError, t("amend_titleMissing"))
      return
    }
    fill(proposeError)
    const rec = handle.doc()
    const base = A.getHeads(rec)
    // The branch keeps the recommendation's whole history (its changes are
    // already admitted there) and gets one change of ours that marks it; it
    // enters the repo marked, so the server never sees it unmarked.
    const marked = A.change(A.clone(rec), { message: "open amendment" }, d => {
      d.amendment = { of: S(`automerge:${handle.documentId}`), base: base.map(S) }
    })
    const branchHandle = app.repo.import(A.save(marked))
    const id = branchHandle.documentId
    // The entry is added once the server holds the branch: others look the
    // branch up when they see the entry, and a document the server does not
    // have yet would be "unavailable" to them for good.
    const started = Date.now()
    const addEntry = () => M.change(handle, `propose amendment ${JSON.stringify(what)}`, (d, who) => {
      if (!d.amendments) d.amendments = {}
      d.amendments[id] = {
        url: S(`automerge:${id}`),
        title: S(what),
        by: S(who.participant),
        opened: Date.now(),
        base: base.map(S),
        coauthors: [],
        state: S("open"),
        endorsements: {},
        decision: null,
      }
    })
    const onServer = () => Boolean(app.status.serverHeads(branchHandle)?.length)
    const waitForServer = () => (onServer() || Date.now() - started > 15_000 ? addEntry() : setTimeout(waitForServer, 100))
    waitForServer()
    proposeTitle.value = ""
    app.navigate(`/r/${id}`)
  }

  // -- the list (on a recommendation) or the banner (on a branch) -------------
  const list = h("div", { id: "amendments-list" })
  const banner = h("div", { id: "amendment-banner", class: "notice amendment-banner", hidden: !branch })
  const el = h(
    "section",
    { id: "amendments", "aria-labelledby": "h-amendments" },
    h("h2", { id: "h-amendments" }, t(branch ? "amend_thisAmendment" : "amend_amendments")),
    branch ? null : proposeForm,
    list
  )

  /** Whether the wording of this document may be edited (branches: the entry's author, co-authors and facilitators, while open). */
  function mayEditWording() {
    if (!branch) return true
    const entry = recHandle?.isReady() ? recHandle.doc().amendments?.[handle.documentId] : null
    if (!entry || !EDITABLE.has(M.str(entry.state))) return false
    if (app.me.open || mayDecide) return true
    return M.str(entry.by) === me.participant || (entry.coauthors ?? []).map(M.str).includes(me.participant)
  }

  // -- one card per amendment ----------------------------------------------------
  function card(id) {
    let c = cards.get(id)
    if (c) return c
    c = { id, unchosen: new Set(), view: "inline", preview: null }
    const heading = h("h3", {})
    const meta = h("p", { class: "meta amend-meta" })
    const state = h("span", { class: "badge amend-state" })
    const openLink = h("a", { href: `/r/${id}`, class: "amend-open" }, t("amend_open"))
    const viewInline = h("button", { type: "button", class: "amend-view", dataset: { view: "inline" }, "aria-pressed": "true" }, t("amend_inline"))
    const viewSide = h("button", { type: "button", class: "amend-view", dataset: { view: "side" }, "aria-pressed": "false" }, t("amend_sideBySide"))
    for (const b of [viewInline, viewSide])
      b.addEventListener("click", () => {
        c.view = b.dataset.view
        viewInline.setAttribute("aria-pressed", String(c.view === "inline"))
        viewSide.setAttribute("aria-pressed", String(c.view === "side"))
        renderCard(id)
      })
    const diff = h("div", { class: "amend-diff", dataset: { view: "inline" } })
    const decision = h("div", { class: "amend-decision" })
    const coauthors = h("ul", { class: "chips amend-coauthors" })
    const invitee = h("select", { class: "amend-invitee" })
    const inviteForm = h(
      "form",
      {
        class: "inline amend-invite",
        hidden: true,
        onSubmit: e => {
          e.preventDefault()
          const p = invitee.value
          if (!p) return
          M.change(recHandle, "invite co-author", d => {
            const e2 = d.amendments?.[id]
            if (!e2) return
            if (!e2.coauthors) e2.coauthors = []
            if (!e2.coauthors.map(M.str).includes(p)) e2.coauthors.push(S(p))
          })
        },
      },
      field(t("amend_inviteCoauthor"), invitee),
      h("button", { type: "submit" }, t("amend_invite"))
    )
    const authorActions = h("div", { class: "actions amend-author-actions", hidden: true })
    const endorsements = h("ul", { class: "list amend-endorsements" })
    const stance = h("select", {}, M.STANCES.map(s => h("option", { value: s }, t(s))))
    const endorseNote = h("input", { type: "text" })
    const endorseForm = h(
      "form",
      {
        class: "inline amend-endorse",
        hidden: true,
        onSubmit: e => {
          e.preventDefault()
          const note = endorseNote.value.trim()
          M.change(recHandle, `endorse amendment: ${stance.value}`, (d, who) => {
            const e2 = d.amendments?.[id]
            if (!e2) return
            if (!e2.endorsements) e2.endorsements = {}
            e2.endorsements[who.organisation] = { stance: S(stance.value), note: S(note), by: S(who.participant), at: Date.now() }
          })
          endorseNote.value = ""
        },
      },
      field(t("stance", { org: me?.organisation ?? "" }), stance),
      field(t("endorsementNote"), endorseNote),
      h("button", { type: "submit" }, t("amend_endorse"))
    )

    // The facilitators' decision: hunks to take, an official answer, a preview before confirming.
    const hunkList = h("ul", { class: "list amend-hunks" })
    const answer = h("textarea", { rows: 2, class: "amend-answer" })
    const decideError = h("p", { class: "error", role: "alert" })
    const preview = h("div", { class: "amend-preview card", hidden: true })
    const decideButton = (key, action) => h("button", { type: "button", dataset: { action }, onClick: () => decide(id, action) }, t(key))
    const decide_ = h(
      "div",
      { class: "amend-decide", hidden: true },
      h("h4", {}, t("amend_decide")),
      h("p", { class: "hint" }, t("amend_hunksHint")),
      hunkList,
      field(t("amend_answer"), answer),
      h(
        "div",
        { class: "actions" },
        decideButton("amend_acceptSelected", "accept-selected"),
        decideButton("amend_acceptAll", "accept-all"),
        decideButton("amend_reject", "reject"),
        decideButton("amend_askChanges", "ask-changes")
      ),
      decideError,
      preview
    )
    c.el = h(
      "article",
      { class: "amendment card", dataset: { amendment: id } },
      h("div", { class: "amend-head" }, heading, state),
      meta,
      branch ? null : openLink,
      h("div", { class: "amend-views", role: "group", "aria-label": t("amend_diffView") }, viewInline, viewSide),
      diff,
      decision,
      h("h4", {}, t("amend_coauthors")),
      coauthors,
      inviteForm,
      authorActions,
      h("h4", {}, t("amend_endorsements")),
      endorsements,
      endorseForm,
      decide_
    )
    Object.assign(c, { heading, meta, state, diff, decision, coauthors, invitee, inviteForm, authorActions, endorsements, endorseForm, stance, hunkList, answer, decideError, preview, decide: decide_ })
    cards.set(id, c)
    return c
  }

  /** Show what the decision would leave, then write it when confirmed. */
  function decide(id, action) {
    const c = cards.get(id)
    const rec = recHandle.doc()
    const entry = rec.amendments?.[id]
    const bh = branches.get(id)
    const answerText = c.answer.value.trim()
    fill(c.decideError)
    if (!entry) return
    if ((action === "reject" || action === "ask-changes") && !answerText) {
      fill(c.decideError, t("amend_answerMissing"))
      return
    }
    if (action === "reject" || action === "ask-changes") {
      const state = action === "reject" ? "rejected" : "changes-requested"
      M.change(recHandle, `amendment ${state}`, (d, who) => writeDecision(d, id, state, answerText, who))
      c.answer.value = ""
      c.preview.hidden = true
      return
    }
    if (!bh?.isReady()) return
    const diff = fieldHunks(rec, mergedPreview(rec, bh.doc()))
    const all = diff.flatMap(f => f.hunks.map(x => x.id))
    const chosen = new Set(action === "accept-all" ? all : all.filter(x => !c.unchosen.has(x)))
    if (chosen.size === 0) {
      fill(c.decideError, t("amend_noneChosen"))
      return
    }
    const result = decidedPreview(rec, bh.doc(), chosen)
    const signature = JSON.stringify(diff.map(f => f.hunks.map(x => [x.id, x.del, x.ins])))
    c.preview.hidden = false
    fill(
      c.preview,
      h("h4", {}, t("amend_previewTitle")),
      h("p", { class: "hint" }, t(action === "accept-all" ? "amend_previewAll" : "amend_previewSelected", { n: chosen.size, total: all.length })),
      h(
        "dl",
        { class: "diff" },
        AMENDABLE.filter(f => plain(rec, f) !== plain(result, f)).map(f => [
          h("dt", {}, t(f)),
          h("dd", { dataset: { preview: f } }, paragraphs([["same", plain(result, f)]], { skipLeadingBreaks: true })),
        ])
      ),
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "primary amend-confirm",
            onClick: () => {
              // The texts may have moved on since the preview: then show it again.
              const now = recHandle.doc()
              const again = fieldHunks(now, mergedPreview(now, bh.doc()))
              if (JSON.stringify(again.map(f => f.hunks.map(x => [x.id, x.del, x.ins]))) !== signature) {
                decide(id, action)
                fill(c.decideError, t("amend_changedMeanwhile"))
                return
              }
              accept(id, bh, again, chosen, answerText)
              c.preview.hidden = true
              c.answer.value = ""
            },
          },
          t("amend_confirm")
        ),
        h("button", { type: "button", onClick: () => (c.preview.hidden = true) }, t("cancel"))
      )
    )
  }

  /**
   * Accept: merge the branch (its changes keep their authors), then one
   * change of ours that reverts the hunks not chosen, removes the branch's
   * mark and records the decision.
   */
  function accept(id, bh, diff, chosen, answerText) {
    const before = recHandle.doc()
    const ids = diff.flatMap(f => f.hunks.map(x => x.id))
    recHandle.merge(bh)
    M.change(recHandle, "accept amendment", (d, who) => {
      revertHunks(d, before, diff, chosen)
      if (d.amendment) delete d.amendment
      writeDecision(
        d,
        id,
        "accepted",
        answerText,
        who,
        ids.filter(x => chosen.has(x)),
        ids.filter(x => !chosen.has(x))
      )
    })
  }

  function renderCard(id) {
    const c = card(id)
    const rec = recHandle.doc()
    const entry = rec.amendments?.[id]
    if (!entry) return c
    const st = M.str(entry.state) || "open"
    const by = M.str(entry.by)
    const coauthorIds = (entry.coauthors ?? []).map(M.str)
    const isAuthor = by === me?.participant
    c.el.dataset.state = st
    fill(c.heading, M.str(entry.title) || "—")
    c.state.className = `badge amend-state amend-state-${st}`
    fill(c.state, t(`amend_state_${st}`))
    fill(c.meta, t("amend_openedBy", { name: label(by), time: formatTime(entry.opened) }))

    // The diff against the merged preview, while there is something to decide.
    const bh = branches.get(id)
    const live = EDITABLE.has(st)
    let diff = null
    if (live && bh?.isReady()) {
      try {
        diff = fieldHunks(rec, mergedPreview(rec, bh.doc()))
      } catch {
        diff = null
      }
    }
    c.diff.dataset.view = c.view
    if (!live) c.diff.replaceChildren()
    else if (!diff) fill(c.diff, h("p", { class: "hint" }, t("loading")))
    else {
      const changed = diff.filter(f => f.hunks.length)
      c.diff.dataset.hunks = String(changed.reduce((n, f) => n + f.hunks.length, 0))
      fill(
        c.diff,
        changed.length
          ? h(
              "dl",
              { class: "diff" },
              changed.map(f => [h("dt", {}, t(f.field)), h("dd", { dataset: { diff: f.field } }, c.view === "side" ? sideBySide(f) : inline(f))])
            )
          : h("p", { class: "hint amend-nochange" }, t("amend_noChanges"))
      )
      fill(
        c.hunkList,
        changed.flatMap(f =>
          f.hunks.map(x => {
            const box = h("input", { type: "checkbox", checked: !c.unchosen.has(x.id), dataset: { hunk: x.id } })
            box.addEventListener("change", () => (box.checked ? c.unchosen.delete(x.id) : c.unchosen.add(x.id)))
            return h(
              "li",
              { dataset: { hunk: x.id } },
              h("label", {}, box, ` ${t("amend_hunk", { field: t(f.field), n: x.hunk + 1 })}: `, x.del.trim() ? h("del", {}, x.del) : null, " ", x.ins.trim() ? h("ins", {}, x.ins) : null)
            )
          })
        )
      )
    }

    // The official answer, once decided.
    const dec = entry.decision
    if (dec && M.str(dec.state)) {
      const accepted = (dec.accepted ?? []).length
      const rejected = (dec.rejected ?? []).length
      fill(
        c.decision,
        h("h4", {}, t("amend_officialAnswer")),
        h("p", { class: "amend-official-answer" }, M.str(dec.answer) || "—"),
        h("p", { class: "meta" }, t(`amend_decided_${M.str(dec.state)}`, { name: label(M.str(dec.by)), time: formatTime(dec.at) })),
        accepted || rejected ? h("p", { class: "meta amend-hunk-counts" }, t("amend_hunkCounts", { accepted, rejected })) : null
      )
    } else c.decision.replaceChildren()

    // Co-authors: invited by the author (or a facilitator) from the process's members.
    fill(c.coauthors, coauthorIds.length ? coauthorIds.map(p => h("li", { class: "chip", dataset: { participant: p } }, label(p))) : h("li", { class: "hint" }, t("amend_noCoauthors")))
    const mayInvite = live && (isAuthor || mayDecide) && mayWrite
    const candidates = members.filter(m => m.role !== "observer" && m.participant !== by && !coauthorIds.includes(m.participant))
    c.inviteForm.hidden = !mayInvite || (!app.me.open && candidates.length === 0)
    if (!c.inviteForm.hidden && document.activeElement !== c.invitee) {
      const chosen = c.invitee.value
      fill(c.invitee, candidates.map(m => h("option", { value: m.participant }, m.organisation ? `${m.name} (${m.organisation})` : m.name)))
      if (candidates.some(m => m.participant === chosen)) c.invitee.value = chosen
    }
    // The author withdraws, or resubmits after changes were asked for.
    fill(
      c.authorActions,
      isAuthor && live ? h("button", { type: "button", class: "amend-withdraw", onClick: () => setState(id, "withdrawn") }, t("amend_withdraw")) : null,
      isAuthor && st === "changes-requested" ? h("button", { type: "button", class: "amend-resubmit", onClick: () => setState(id, "open") }, t("amend_resubmit")) : null
    )
    c.authorActions.hidden = !(isAuthor && live && mayWrite)

    const ends = Object.entries(entry.endorsements ?? {}).sort(([a], [b]) => a.localeCompare(b))
    fill(
      c.endorsements,
      ends.length
        ? ends.map(([org, e]) =>
            h(
              "li",
              { dataset: { organisation: org, stance: M.str(e.stance) } },
              h("strong", {}, org),
              ": ",
              h("span", { class: `badge stance-${M.str(e.stance)}` }, t(M.str(e.stance))),
              M.str(e.note) ? ` – ${M.str(e.note)}` : "",
              h("span", { class: "meta" }, ` ${t("by", { name: label(M.str(e.by)) })}`)
            )
          )
        : h("li", { class: "hint" }, t("noEndorsements"))
    )
    c.endorseForm.hidden = !mayEndorse || !live
    c.decide.hidden = !mayDecide || !live || !diff
    return c
  }

  function setState(id, state) {
    M.change(recHandle, `amendment ${state}`, d => {
      const e = d.amendments?.[id]
      if (e) e.state = S(state)
    })
  }

  function inline(f) {
    const runs = []
    for (const p of f.parts) {
      if ("same" in p) runs.push(["same", p.same])
      else {
        const id = `${f.field}:${p.hunk}`
        if (p.del) runs.push(["del", p.del, text => h("del", { dataset: { hunk: id } }, text)])
        if (p.ins) runs.push(["ins", p.ins, text => h("ins", { dataset: { hunk: id } }, text)])
      }
    }
    return paragraphs(runs, { skipLeadingBreaks: true })
  }

  function sideBySide(f) {
    const left = []
    const right = []
    for (const p of f.parts) {
      if ("same" in p) {
        left.push(["same", p.same])
        right.push(["same", p.same])
      } else {
        const id = `${f.field}:${p.hunk}`
        if (p.del) left.push(["del", p.del, text => h("del", { dataset: { hunk: id } }, text)])
        if (p.ins) right.push(["ins", p.ins, text => h("ins", { dataset: { hunk: id } }, text)])
      }
    }
    return h(
      "div",
      { class: "amend-side" },
      h("div", { class: "amend-before" }, h("p", { class: "meta" }, t("amend_current")), paragraphs(left, { skipLeadingBreaks: true })),
      h("div", { class: "amend-after" }, h("p", { class: "meta" }, t("amend_withAmendment")), paragraphs(right, { skipLeadingBreaks: true }))
    )
  }

  /** Follow a branch document: its edits change the diff. */
  function watchBranch(id) {
    if (branches.has(id)) return
    branches.set(id, null)
    const found = id === handle.documentId ? Promise.resolve(handle) : app.repo.find(`automerge:${id}`)
    found
      .then(bh => {
        if (gone) return
        branches.set(id, bh)
        if (bh !== handle) {
          bh.on("change", render)
          cleanups.push(() => bh.off("change", render))
        }
        render()
      })
      .catch(() => branches.delete(id))
  }

  const render = batched(() => {
    if (gone || !recHandle?.isReady()) return
    const rec = recHandle.doc()
    if (branch) {
      const title = M.str(rec.title) || "—"
      fill(
        banner,
        h("strong", {}, t("amend_bannerTitle", { title })),
        " ",
        h("a", { href: `/r/${recHandle.documentId}`, id: "amendment-back" }, t("amend_back")),
        mayEditWording() ? null : h("p", { class: "hint", id: "amendment-readonly" }, t("amend_readOnly"))
      )
      watchBranch(handle.documentId)
      fill(list, rec.amendments?.[handle.documentId] ? renderCard(handle.documentId).el : h("p", { class: "hint" }, t("loading")))
    } else {
      proposeForm.hidden = !mayWrite || !PROPOSABLE.has(M.str(rec.status))
      const entries = Object.entries(rec.amendments ?? {}).sort((a, b) => (a[1].opened ?? 0) - (b[1].opened ?? 0))
      for (const [id, e] of entries) if (EDITABLE.has(M.str(e.state))) watchBranch(id)
      fill(list, entries.length ? entries.map(([id]) => renderCard(id).el) : h("p", { class: "hint" }, t("amend_none")))
    }
    onAccess?.()
  })

  if (branch) {
    app.repo
      .find(`automerge:${branch.of}`)
      .then(rh => {
        if (gone) return
        recHandle = rh
        rh.on("change", render)
        cleanups.push(() => rh.off("change", render))
        render()
      })
      .catch(() => fill(list, h("p", { role: "alert" }, t("notFound"))))
  }
  handle.on("change", render)
  cleanups.push(() => handle.off("change", render))

  if (!app.me.open && processId) {
    fetch(`/api/processes/${processId}/members`)
      .then(r => (r.ok ? r.json() : null))
      .then(answer => {
        if (gone || !Array.isArray(answer)) return
        members = answer.filter(m => m?.participant).map(m => ({ participant: String(m.participant), name: String(m.name ?? ""), organisation: String(m.organisation ?? ""), role: String(m.role ?? "") }))
        M.learnPeople(members)
        render()
      })
      .catch(() => {})
  }
  render()

  return {
    el,
    banner,
    isBranch: Boolean(branch),
    mayEditWording,
    destroy() {
      gone = true
      for (const fn of cleanups) fn()
    },
  }
}
