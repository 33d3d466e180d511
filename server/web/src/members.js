// Members of a process, from the server (which holds the verified membership):
// everybody sees who takes part; facilitators also invite (a personal link to
// pass on) and revoke. Hidden on an --open server, which has no members.
import { h, fill, field } from "./dom.js"
import { t } from "./i18n.js"
import { can, learnPeople } from "./model.js"

export function membersSection(app, id) {
  const list = h("ul", { id: "members-list" })
  const section = h("section", { id: "members", class: "card", "aria-labelledby": "members-title", hidden: true }, h("h2", { id: "members-title" }, t("members")), list)
  const name = h("input", { type: "text", required: true })
  const organisation = h("input", { type: "text", required: true })
  const role = h("select", {}, ["participant", "observer", "facilitator"].map(r => h("option", { value: r }, t(`role_${r}`))))
  const result = h("p", { id: "invite-result", role: "status", "aria-live": "polite" })
  const form = h(
    "form",
    {
      "aria-label": t("invite"),
      onSubmit: async e => {
        e.preventDefault()
        const res = await fetch(`/api/processes/${id}/invitations`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ role: role.value, name: name.value.trim(), organisation: organisation.value.trim() }),
        })
        const body = await res.json().catch(() => ({}))
        if (!res.ok) {
          fill(result, body.error ?? String(res.status))
          return
        }
        const link = new URL(`/join/${body.token}`, location.origin).href
        fill(result, t("inviteLink"), " ", h("input", { type: "text", readonly: true, value: link, id: "invite-link", "aria-label": t("inviteLink") }))
        name.value = ""
        organisation.value = ""
        load()
      },
    },
    field(t("memberName"), name),
    field(t("memberOrganisation"), organisation),
    field(t("role"), role),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("invite")))
  )

  async function load() {
    if (app.me.open) return
    const members = await fetch(`/api/processes/${id}/members`).then(r => (r.ok ? r.json() : null)).catch(() => null)
    if (!Array.isArray(members)) return
    learnPeople(members)
    section.hidden = false
    // Admins manage every process, a facilitator their own (a member belongs to one).
    const facilitator = can(app, "manageMembers") && (app.me.role === "admin" || String(app.me.process ?? "").endsWith(id))
    fill(
      list,
      members.map(m =>
        h(
          "li",
          {},
          `${m.name} (${m.organisation}) · ${t(`role_${m.role}`)}`,
          facilitator && m.token_id
            ? h("button", {
                type: "button",
                class: "link",
                "aria-label": `${t("revoke")}: ${m.name}`,
                onClick: async () => {
                  await fetch(`/api/tokens/${m.token_id}/revoke`, { method: "POST" })
                  load()
                },
              }, t("revoke"))
            : null
        )
      )
    )
    if (facilitator && !form.isConnected) section.append(form, result)
  }
  load()
  return section
}
