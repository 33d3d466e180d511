// The consent round on the recommendation page: where each organisation
// stands before the recommendation is adopted. Mirrors
// protocol/model/src/consent.rs (the same keys and shapes; the server's
// access rules decide who may write what).
//
// Facilitators open a round on the current wording (question, deadline) and
// close it with an outcome; members answer for their own organisation (agree,
// abstain, disagree, block, with a reason) and may change their answer until
// the round is closed; observers see everything and act on nothing. After
// closing, the outcome and the answers with their reasons stay visible.

import * as A from "@automerge/automerge/slim"
import { h, fill, field } from "./dom.js"
import { t, formatTime, formatDate, formatList } from "./i18n.js"
import * as M from "./model.js"

export const ANSWERS = ["agree", "abstain", "disagree", "block"]

const S = value => new A.ImmutableString(String(value))

/** The open round (the last one not closed), as an index into `doc.rounds`, or -1. */
export function openRoundIndex(doc) {
  const rounds = doc?.rounds ?? []
  for (let i = rounds.length - 1; i >= 0; i--) if (rounds[i]?.closed == null) return i
  return -1
}

/** `consent::may_adopt`: null when adoption is possible, else why not ("none", "open" or the blocking organisations). */
export function adoptionBlocker(doc) {
  const rounds = doc?.rounds ?? []
  const latest = rounds[rounds.length - 1]
  if (!latest) return { why: "none" }
  if (latest.closed == null) return { why: "open" }
  const blocking = Object.entries(latest.answers ?? {})
    .filter(([, a]) => M.str(a?.answer) === "block")
    .map(([org]) => org)
  return blocking.length ? { why: "blocked", blocking } : null
}

/** How many organisations gave each answer. */
export function tally(round) {
  const out = Object.fromEntries(ANSWERS.map(a => [a, 0]))
  for (const a of Object.values(round?.answers ?? {})) {
    const answer = M.str(a?.answer)
    if (answer in out) out[answer]++
  }
  return out
}

/** Whether the title or a text field differs from the wording the round was opened on. */
function wordingChanged(doc, round) {
  const heads = (round.heads ?? []).map(M.str)
  if (!heads.length || !heads.every(x => /^[0-9a-f]{64}$/.test(x))) return false
  let then
  try {
    then = A.view(doc, heads)
  } catch {
    return false
  }
  return M.str(then.title) !== M.str(doc.title) || M.TEXT_FIELDS.some(f => M.linesOf(then, f) !== M.linesOf(doc, f))
}

// -- changes (each inside M.change) ---------------------------------------------

function openRound(d, id, question, deadline, heads, me) {
  if (!d.rounds) d.rounds = []
  d.rounds.push({
    id: S(id),
    question: S(question),
    heads: heads.map(S),
    deadline,
    openedBy: S(me.participant),
    openedAt: Date.now(),
    answers: {},
    closed: null,
  })
}

function answerRound(d, answer, reason, me) {
  const i = openRoundIndex(d)
  if (i < 0) return
  const round = d.rounds[i]
  if (!round.answers) round.answers = {}
  round.answers[me.organisation] = { answer: S(answer), reason: S(reason), by: S(me.participant), at: Date.now() }
}

function closeRound(d, outcome, me) {
  const i = openRoundIndex(d)
  if (i < 0) return
  d.rounds[i].closed = { at: Date.now(), by: S(me.participant), outcome: S(outcome) }
}

// -- the section --------------------------------------------------------------------

/**
 * The consent section for a recommendation's handle. `render(doc)` is called
 * by the page whenever the document changes; `destroy()` when it goes.
 */
export function consentSection(app, handle, processId) {
  const me = M.identity()
  const mayDecide = M.can(app, "decide")
  // Participants answer for their organisations; facilitators moderate (on an
  // --open server everybody may do everything).
  const mayAnswer = M.can(app, "write") && Boolean(me?.organisation) && (app.me.open || app.me.role === "participant")
  let organisations = null // those expected to answer, from the server's members
  let requiresConsent = false
  let gone = false
  const cleanups = []

  const requirement = h("p", { class: "hint", id: "consent-required", hidden: true }, t("consentRequired"))
  const current = h("div", { id: "consent-round" })
  const adoptable = h("p", { id: "consent-adoption", class: "notice", role: "status", hidden: true })
  const earlier = h("details", { id: "consent-earlier", hidden: true })

  // Open a round (facilitators, while none is open).
  const question = h("textarea", { rows: 2, id: "consent-question" })
  const deadline = h("input", { type: "datetime-local", id: "consent-deadline" })
  const openError = h("p", { class: "error", role: "alert" })
  const openForm = h(
    "form",
    {
      id: "consent-open-form",
      hidden: true,
      onSubmit: e => {
        e.preventDefault()
        const due = new Date(deadline.value).getTime()
        if (!deadline.value || Number.isNaN(due)) {
          fill(openError, t("consentDeadlineMissing"))
          return
        }
        fill(openError)
        // The round asks about the wording as it is now, before this change.
        const heads = A.getHeads(handle.doc())
        const id = `r-${Date.now().toString(16)}-${M.randomHex(4)}`
        M.change(handle, "open consent round", (d, who) => openRound(d, id, question.value.trim(), due, heads, who))
        question.value = ""
        deadline.value = ""
      },
    },
    field(t("consentQuestion"), question),
    field(t("consentDeadline"), deadline),
    openError,
    h("button", { type: "submit" }, t("consentOpen"))
  )

  // Answer for one's organisation: four buttons, one reason.
  const reason = h("input", { type: "text", id: "consent-reason" })
  const answerButtons = ANSWERS.map(answer =>
    h(
      "button",
      {
        type: "button",
        class: `answer answer-${answer}`,
        dataset: { answer },
        "aria-pressed": "false",
        onClick: () => {
          M.change(handle, `consent: ${answer}`, (d, who) => answerRound(d, answer, reason.value.trim(), who))
          delete reason.dataset.touched
        },
      },
      t(`answer_${answer}`)
    )
  )
  const yourAnswer = h("p", { class: "meta", id: "consent-your-answer" })
  const answerLegend = h("legend", {})
  const answerForm = h(
    "fieldset",
    { id: "consent-answer-form", hidden: true },
    answerLegend,
    h("div", { class: "answer-buttons", role: "group" }, answerButtons),
    field(t("consentReason"), reason),
    yourAnswer
  )

  // Close with an outcome (facilitators, while a round is open).
  const outcome = h("textarea", { rows: 3, id: "consent-outcome-input" })
  const closeError = h("p", { class: "error", role: "alert" })
  const closeForm = h(
    "form",
    {
      id: "consent-close-form",
      hidden: true,
      onSubmit: e => {
        e.preventDefault()
        const text = outcome.value.trim()
        if (!text) {
          fill(closeError, t("consentOutcomeMissing"))
          return
        }
        fill(closeError)
        M.change(handle, "close consent round", (d, who) => closeRound(d, text, who))
        outcome.value = ""
      },
    },
    field(t("consentOutcome"), outcome),
    closeError,
    h("button", { type: "submit" }, t("consentClose"))
  )

  const el = h(
    "section",
    { id: "consent", "aria-labelledby": "h-consent" },
    h("h2", { id: "h-consent" }, t("consentRound")),
    requirement,
    current,
    answerForm,
    closeForm,
    openForm,
    adoptable,
    earlier
  )

  const label = (doc, p) => M.participantLabel(doc, p)

  function answersList(doc, round) {
    const entries = Object.entries(round.answers ?? {}).sort(([a], [b]) => a.localeCompare(b))
    if (!entries.length) return h("p", { class: "hint" }, t("consentNoAnswers"))
    return h(
      "ul",
      { class: "list consent-answers" },
      entries.map(([org, a]) =>
        h(
          "li",
          { dataset: { organisation: org, answer: M.str(a.answer) } },
          h("strong", {}, org),
          ": ",
          h("span", { class: `badge answer-${M.str(a.answer)}` }, t(`answer_${M.str(a.answer)}`)),
          M.str(a.reason) ? h("span", { class: "reason" }, ` – ${M.str(a.reason)}`) : "",
          h("span", { class: "meta" }, ` ${t("by", { name: label(doc, M.str(a.by)) })} · ${formatTime(a.at)}`)
        )
      )
    )
  }

  function roundView(doc, round, { live }) {
    const counts = tally(round)
    const answered = Object.keys(round.answers ?? {})
    const pending = organisations ? organisations.filter(o => !answered.includes(o)) : null
    const due = Number(round.deadline)
    const open = round.closed == null
    return [
      M.str(round.question) ? h("p", { class: "consent-question" }, M.str(round.question)) : null,
      h("p", { class: "meta" }, t("consentOpenedBy", { name: label(doc, M.str(round.openedBy)), time: formatTime(round.openedAt) })),
      h("p", { class: "meta consent-deadline" }, t("consentDeadlineIs", { time: formatTime(due) })),
      live && due && Date.now() > due ? h("p", { class: "hint" }, t("consentDeadlinePassed")) : null,
      live && wordingChanged(doc, round) ? h("p", { class: "notice changed", id: "consent-wording-changed" }, t("consentWordingChanged")) : null,
      h("h3", {}, t(open ? "consentTally" : "consentTallyClosed")),
      h(
        "ul",
        { class: "chips consent-tally", id: live ? "consent-tally" : null },
        ANSWERS.map(a => h("li", { class: `chip answer-${a}`, dataset: { answer: a, count: String(counts[a]) } }, `${t(`answer_${a}`)}: ${counts[a]}`))
      ),
      organisations && !(live && open && pending.length === 0)
        ? h("p", { class: "meta" }, t("consentAnswered", { n: organisations.filter(o => answered.includes(o)).length, total: organisations.length }))
        : null,
      live && open && pending
        ? h("p", { id: "consent-pending", dataset: { pending: pending.join("\n") } }, pending.length ? t("consentPending", { list: formatList(pending) }) : t("consentAllAnswered"))
        : null,
      h("h3", {}, t("consentAnswers")),
      answersList(doc, round),
      round.closed
        ? h(
            "div",
            { class: "consent-closed" },
            h("h3", {}, t("consentOutcome")),
            h("p", { class: "consent-outcome", id: live ? "consent-outcome" : null }, M.str(round.closed.outcome)),
            h("p", { class: "meta" }, t("consentClosedOn", { name: label(doc, M.str(round.closed.by)), time: formatTime(round.closed.at) }))
          )
        : null,
    ]
  }

  let lastDoc = null
  function render(doc) {
    lastDoc = doc
    const rounds = doc.rounds ?? []
    const openIndex = openRoundIndex(doc)
    const shownIndex = openIndex >= 0 ? openIndex : rounds.length - 1
    const shown = rounds[shownIndex]
    requirement.hidden = !requiresConsent
    el.dataset.state = openIndex >= 0 ? "open" : shown ? "closed" : "none"
    fill(current, shown ? roundView(doc, shown, { live: true }) : h("p", { class: "hint" }, t("consentNoRound")))

    const open = openIndex >= 0
    openForm.hidden = !mayDecide || open
    closeForm.hidden = !mayDecide || !open
    answerForm.hidden = !mayAnswer || !open
    if (open && mayAnswer) {
      fill(answerLegend, t("consentYourAnswer", { organisation: me.organisation }))
      const mine = shown.answers?.[me.organisation]
      const answer = mine ? M.str(mine.answer) : null
      for (const b of answerButtons) {
        const pressed = b.dataset.answer === answer
        b.setAttribute("aria-pressed", String(pressed))
        // The stylesheet knows no pressed buttons yet: mark the chosen one here.
        b.style.outline = pressed ? "3px solid currentColor" : ""
        b.style.fontWeight = pressed ? "bold" : ""
      }
      fill(yourAnswer, answer ? t("consentYourAnswerIs", { answer: t(`answer_${answer}`) }) : "")
      if (mine && document.activeElement !== reason && !reason.dataset.touched) reason.value = M.str(mine.reason)
    }

    const blocker = adoptionBlocker(doc)
    adoptable.hidden = !requiresConsent && !(blocker?.why === "blocked")
    if (!adoptable.hidden) {
      adoptable.dataset.blocker = blocker?.why ?? "none"
      if (!blocker) fill(adoptable, t("consentMayAdopt"))
      else if (blocker.why === "open") fill(adoptable, t("consentMayNotAdoptOpen"))
      else if (blocker.why === "blocked") fill(adoptable, t("consentMayNotAdoptBlocked", { list: formatList(blocker.blocking) }))
      else fill(adoptable, t("consentNoRound"))
    }

    const before = rounds.filter((_, i) => i !== shownIndex)
    earlier.hidden = before.length === 0
    if (before.length) {
      fill(
        earlier,
        h("summary", {}, t("consentEarlierRounds", { n: before.length })),
        before
          .slice()
          .reverse()
          .map(r => h("article", { class: "consent-earlier-round" }, h("h3", {}, t("consentRoundOf", { date: formatDate(new Date(r.openedAt)) })), roundView(doc, r, { live: false })))
      )
    }
  }
  reason.addEventListener("input", () => (reason.dataset.touched = "1"))

  // The organisations expected to answer: those with participants among the
  // server's verified members (an --open server has none to ask).
  if (!app.me.open && processId) {
    fetch(`/api/processes/${processId}/members`)
      .then(r => (r.ok ? r.json() : null))
      .then(list => {
        if (gone || !Array.isArray(list)) return
        organisations = [...new Set(list.filter(m => m?.role === "participant" && m.organisation).map(m => String(m.organisation)))].sort((a, b) => a.localeCompare(b))
        if (lastDoc) render(handle.doc())
      })
      .catch(() => {})
  }
  // Whether the process requires consent before adoption (set by facilitators).
  if (processId) {
    app.repo
      .find(`automerge:${processId}`)
      .then(process => {
        if (gone) return
        const update = () => {
          requiresConsent = process.doc()?.adoptionRequiresConsent === true
          if (lastDoc) render(handle.doc())
        }
        process.on("change", update)
        cleanups.push(() => process.off("change", update))
        update()
      })
      .catch(() => {})
  }

  return {
    el,
    render,
    destroy() {
      gone = true
      for (const fn of cleanups) fn()
    },
  }
}
