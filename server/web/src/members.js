// Members of a process, from the server (which holds the verified membership):
// everybody sees who takes part; facilitators also see each invitation's
// state (invited, joined, last seen, revoked), invite one person or a whole
// list from a CSV file, copy and renew links, and revoke access. Hidden on an
// --open server, which has no members.
//
// Links: the server keeps only a hash of each secret, so it cannot show a
// link again. Every link the server hands out in this page's lifetime stays
// on screen, beside its member, with a copy button; for a pending member
// whose link is no longer on screen, "New link" asks the server for a fresh
// one, and the old link stops working (safer than a server that keeps
// secrets it could leak, and what a facilitator expects of a lost link).
import { h, fill, field } from "./dom.js"
import { t, formatTime } from "./i18n.js"
import { can, learnPeople } from "./model.js"
import "./desk.css"

const ROLES = ["participant", "observer", "facilitator"]

export function membersSection(app, id) {
  // token id → link, for every link handed out while this page is open.
  const links = new Map()
  const list = h("div", { id: "members-list" })
  const notice = h("p", { id: "members-notice", class: "error", role: "alert" })
  const section = h(
    "section",
    { id: "members", class: "card", "aria-labelledby": "members-title", hidden: true },
    h("h2", { id: "members-title" }, t("members")),
    notice,
    list
  )
  let facilitator = false
  let shown = ""

  // -- one invitation --------------------------------------------------------
  const name = h("input", { type: "text", required: true })
  const organisation = h("input", { type: "text", required: true })
  const email = h("input", { type: "email" })
  const role = h("select", {}, ROLES.map(r => h("option", { value: r }, t(`role_${r}`))))
  const result = h("p", { id: "invite-result", role: "status", "aria-live": "polite" })
  const form = h(
    "form",
    {
      class: "invite-one",
      "aria-label": t("invite"),
      onSubmit: async e => {
        e.preventDefault()
        const body = { role: role.value, name: name.value.trim(), organisation: organisation.value.trim() }
        if (email.value.trim()) body.email = email.value.trim()
        const res = await post(`/api/processes/${id}/invitations`, body)
        if (!res.ok) {
          fill(result, res.body.error ?? String(res.status))
          return
        }
        remember(res.body)
        fill(result, t("desk_invitedOne", { name: res.body.name || body.name }))
        name.value = ""
        organisation.value = ""
        email.value = ""
        load()
      },
    },
    h("h3", {}, t("invite")),
    field(t("memberName"), name),
    field(t("memberOrganisation"), organisation),
    field(t("role"), role),
    field(t("desk_email"), email, t("desk_optional")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("invite")))
  )

  // -- a list from a CSV file -----------------------------------------------
  const csv = h("textarea", { id: "bulk-csv", rows: 6, spellcheck: "false", placeholder: "Name;Organisation;Rolle;E-Mail" })
  const file = h("input", {
    type: "file",
    accept: ".csv,text/csv,text/plain",
    onChange: async () => {
      const chosen = file.files?.[0]
      if (chosen) csv.value = decodeText(await chosen.arrayBuffer())
    },
  })
  const bulkErrors = h("ul", { id: "bulk-errors", class: "error" })
  const bulkResult = h("p", { id: "bulk-result", role: "status", "aria-live": "polite" })
  const bulk = h(
    "form",
    {
      class: "invite-bulk",
      "aria-labelledby": "bulk-title",
      onSubmit: async e => {
        e.preventDefault()
        fill(bulkErrors)
        fill(bulkResult)
        if (!csv.value.trim()) return
        const res = await post(`/api/processes/${id}/invitations/bulk`, { csv: csv.value })
        if (!res.ok) {
          const lines = Array.isArray(res.body.lines) ? res.body.lines : []
          fill(bulkResult, lines.length ? t("desk_bulkRefused", { n: lines.length }) : res.body.error ?? String(res.status))
          fill(bulkErrors, lines.map(l => h("li", { dataset: { line: l.line, problem: l.problem } }, rosterProblem(l))))
          return
        }
        for (const invited of res.body.invited) remember(invited)
        fill(bulkResult, t("desk_bulkInvited", { n: res.body.invited.length }))
        csv.value = ""
        file.value = ""
        load()
      },
    },
    h("h3", { id: "bulk-title" }, t("desk_bulkTitle")),
    h("p", { class: "hint" }, t("desk_bulkHint")),
    field(t("desk_bulkFile"), file),
    field(t("desk_bulkPaste"), csv),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("desk_bulkInvite"))),
    bulkResult,
    bulkErrors
  )

  // -- revoking, after a confirmation naming the person ----------------------
  const dialog = h("dialog", { id: "revoke-dialog", "aria-labelledby": "revoke-dialog-title" })
  function confirmRevoke(m) {
    return new Promise(resolve => {
      const done = answer => {
        dialog.close()
        resolve(answer)
      }
      fill(
        dialog,
        h("h2", { id: "revoke-dialog-title" }, t("desk_revokeTitle")),
        h("p", {}, t("desk_revokeQuestion", { name: m.name, organisation: m.organisation })),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", onClick: () => done(false) }, t("cancel")),
          h("button", { type: "button", class: "danger", id: "revoke-confirm", onClick: () => done(true) }, t("revoke"))
        )
      )
      dialog.addEventListener("cancel", () => resolve(false), { once: true })
      dialog.showModal()
    })
  }

  async function revoke(m) {
    fill(notice)
    if (!(await confirmRevoke(m))) return
    const res = await post(`/api/tokens/${m.token_id}/revoke`)
    if (!res.ok) fill(notice, refusal(res.body, m))
    load()
  }

  async function reissue(m) {
    fill(notice)
    const res = await post(`/api/tokens/${m.token_id}/reissue`)
    if (!res.ok) {
      fill(notice, refusal(res.body, m))
      return
    }
    remember(res.body)
    load()
  }

  function remember(invited) {
    links.set(invited.token_id, new URL(`/join/${invited.token}`, location.origin).href)
  }

  function linkCell(m) {
    const link = links.get(m.token_id)
    if (m.status === "revoked") return null
    if (!link) {
      return m.status === "invited"
        ? h("button", { type: "button", class: "link", "aria-label": t("desk_newLinkFor", { name: m.name }), onClick: () => reissue(m) }, t("desk_newLink"))
        : null
    }
    const copied = h("span", { class: "copied", role: "status", "aria-live": "polite" })
    const input = h("input", { type: "text", readonly: true, value: link, class: "invite-link", "aria-label": t("desk_linkFor", { name: m.name }) })
    input.addEventListener("focus", () => input.select())
    return h(
      "div",
      { class: "link-cell" },
      input,
      h(
        "button",
        {
          type: "button",
          class: "copy",
          "aria-label": t("desk_copyLinkFor", { name: m.name }),
          onClick: async () => {
            try {
              await navigator.clipboard.writeText(link)
              fill(copied, t("desk_copied"))
            } catch {
              // No clipboard permission (or no secure context): select it for Ctrl+C.
              input.focus()
              fill(copied, t("desk_copyByHand"))
            }
            setTimeout(() => fill(copied), 4000)
          },
        },
        t("desk_copy")
      ),
      copied
    )
  }

  function statusText(m) {
    if (m.status === "revoked") return t("desk_statusRevoked")
    if (m.status === "joined") {
      const seen = m.last_seen ? t("desk_lastSeen", { time: formatTime(m.last_seen) }) : ""
      return [t("desk_statusJoined", { time: formatTime(m.joined_at) }), seen].filter(Boolean).join(" · ")
    }
    return t("desk_statusInvited", { time: formatTime(m.invited_at) })
  }

  function table(members) {
    return h(
      "table",
      { class: "members-table" },
      h(
        "thead",
        {},
        h("tr", {}, [t("memberName"), t("memberOrganisation"), t("role"), t("desk_state"), t("desk_link"), ""].map(c => h("th", { scope: "col" }, c)))
      ),
      h(
        "tbody",
        {},
        members.map(m =>
          h(
            "tr",
            { class: `member status-${m.status ?? "joined"}`, dataset: { token: m.token_id ?? "", status: m.status ?? "" } },
            h("td", { class: "member-name" }, m.name, m.email ? h("div", { class: "hint" }, m.email) : null),
            h("td", {}, m.organisation),
            h("td", {}, h("span", { class: "role-label" }, t(`role_${m.role}`))),
            h("td", { class: "member-status" }, statusText(m)),
            h("td", {}, linkCell(m)),
            h(
              "td",
              {},
              m.token_id && m.status !== "revoked" && m.participant !== app.me.participant
                ? h("button", { type: "button", class: "danger-link", "aria-label": `${t("revoke")}: ${m.name}`, onClick: () => revoke(m) }, t("revoke"))
                : null
            )
          )
        )
      )
    )
  }

  async function load() {
    if (app.me.open) return
    const members = await fetch(`/api/processes/${id}/members`).then(r => (r.ok ? r.json() : null)).catch(() => null)
    if (!Array.isArray(members)) return
    // Unchanged: keep the table (and a "Copied" or a focused link) as it is.
    const seen = JSON.stringify([members, [...links.keys()]])
    if (seen === shown) return
    shown = seen
    learnPeople(members.filter(m => m.status !== "revoked"))
    section.hidden = false
    // Admins manage every process, a facilitator their own (a member belongs to one).
    facilitator = can(app, "manageMembers") && (app.me.role === "admin" || String(app.me.process ?? "").endsWith(id))
    if (facilitator) {
      fill(list, table(members))
    } else {
      fill(
        list,
        h(
          "ul",
          { class: "members-plain" },
          members.map(m => h("li", {}, `${m.name} (${m.organisation}) · `, h("span", { class: "role-label" }, t(`role_${m.role}`))))
        )
      )
    }
    if (facilitator && !form.isConnected) section.append(h("div", { class: "columns" }, form, bulk), result, dialog)
  }
  load()
  // Facilitators watch people join: the list is read again while it is on screen.
  const timer = setInterval(() => {
    if (!section.isConnected) clearInterval(timer)
    else if (facilitator && !dialog.open && document.visibilityState === "visible") load()
  }, REFRESH_MS)
  return section
}

const REFRESH_MS = 5000

async function post(url, body) {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    })
    return { ok: res.ok, status: res.status, body: await res.json().catch(() => ({})) }
  } catch {
    return { ok: false, status: 0, body: { error: t("desk_offline") } }
  }
}

/**
 * A file's text: UTF-8 when it is, else Windows-1252, which Excel on German
 * Windows writes for "CSV (Trennzeichen-getrennt)" (as konsens_model::roster::decode_text).
 */
function decodeText(buffer) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(buffer)
  } catch {
    return new TextDecoder("windows-1252").decode(buffer)
  }
}

/** An API refusal, in the app's language where its code is known. */
function refusal(body, m) {
  const known = { "last-facilitator": "desk_lastFacilitator", "own-token": "desk_ownToken", revoked: "desk_alreadyRevoked" }
  return known[body.code] ? t(known[body.code], { name: m.name }) : body.error ?? t("refusal_other")
}

/** One problem of a refused CSV roster, with its line. */
function rosterProblem(l) {
  const text = t(`desk_roster_${l.problem}`, { role: l.role ?? "", value: l.value ?? "", column: l.column ?? "", name: l.name ?? "", organisation: l.organisation ?? "", first: l.first ?? "", max: l.max ?? "" })
  return t("desk_rosterLine", { line: l.line, problem: text })
}
