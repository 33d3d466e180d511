// konsens in the browser: boot the Automerge wasm from our own server, open
// the Repo, and route between the start page, a process and a recommendation.

import "./style.css"
import { initializeWasm } from "@automerge/automerge/slim"
import { h, fill, field } from "./dom.js"
import { t, lang, formatList } from "./i18n.js"
import { identity, saveIdentity, adoptServerIdentity, setSession } from "./model.js"
import { openRepo } from "./connection.js"
import * as A from "@automerge/automerge/slim"
import { recoverFromRefusal, rebuild } from "./recovery.js"
import { refusalNotice, listRefusals } from "./refusals.js"
import { startPage } from "./start.js"
import { processPage } from "./process.js"
import { recommendationPage } from "./recommendation.js"
import { notificationBell } from "./notifications.js"

const main = document.getElementById("main")
let cleanup = () => {}

async function boot() {
  document.documentElement.lang = lang
  document.title = t("appName")
  keepForOffline()
  await initializeWasm(fetch("/assets/automerge.wasm"))
  // Under access control the server knows who we are (the invitation link
  // set a session cookie): use its verified name instead of asking.
  const me = await fetch("/api/me", { credentials: "same-origin" }).catch(() => null)
  if (me?.status === 401) {
    fill(main, h("p", { id: "no-session", role: "alert" }, t("needInvitation")))
    return
  }
  let who = null
  if (me?.ok) {
    who = await me.json()
    if (!who.open) adoptServerIdentity(who)
  }
  // A refused change is never a trap: see recovery.js.
  const { repo, status, storage } = openRepo({ onRefusal: message => recoverFromRefusal(app, storage, message) })
  // app.me: the role the server gave us (see model.js: can).
  const app = { repo, status, navigate, main, me: setSession(who) }
  window.konsens = app // for tests and the curious: the Repo and connection state
  Object.assign(app, { A, rebuild, recover: message => recoverFromRefusal(app, storage, message) })
  Object.defineProperty(app, "refusals", { get: listRefusals })
  // A rebuilt document: editors bound to the old one go, the page is drawn anew.
  app.onRebuilding = () => {
    cleanup()
    cleanup = () => {}
  }
  app.onRecovered = () => route(app)
  header(app)
  document.addEventListener("click", event => {
    const link = event.target.closest?.("a[href]")
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    const url = new URL(link.href)
    if (url.origin !== location.origin || link.hasAttribute("download") || !/^\/($|p\/|r\/)/.test(url.pathname)) return
    event.preventDefault()
    navigate(url.pathname + url.search + url.hash)
  })
  window.addEventListener("popstate", () => route(app))
  route(app)
}

function navigate(path) {
  history.pushState(null, "", path)
  route(window.konsens)
}

function route(app) {
  cleanup()
  cleanup = () => {}
  fill(main)
  if (!identity()) {
    identityForm(() => route(app))
    return
  }
  const path = location.pathname
  let m
  let view
  if ((m = path.match(/^\/p\/([^/]+)\/?$/))) view = processPage(app, decodeURIComponent(m[1]))
  else if ((m = path.match(/^\/r\/([^/]+)\/?$/))) view = recommendationPage(app, decodeURIComponent(m[1]))
  else view = startPage(app)
  cleanup = () => view?.destroy?.()
  main.focus({ preventScroll: true })
  if (location.hash) scrollToTarget(decodeURIComponent(location.hash.slice(1)))
}

/**
 * A link into a page (`/p/<id>#ws-<workshop>`, the breadcrumb's workshop):
 * the page draws once its document is loaded, so wait a little for the target.
 */
function scrollToTarget(id) {
  const until = Date.now() + 3000
  const look = () => {
    const el = document.getElementById(id)
    if (el) el.scrollIntoView({ block: "start" })
    else if (Date.now() < until) setTimeout(look, 50)
  }
  look()
}

/**
 * Keep the app itself on this device (sw.js), so that a reload without a
 * connection opens it and the documents kept in IndexedDB. Service workers
 * need a secure context (https, or localhost); elsewhere the app still
 * works online.
 */
function keepForOffline() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(err => console.warn("konsens: the app is not kept for offline use", err))
}

function header(app) {
  const statusText = h("span", { class: "status-text" })
  const statusEl = h("span", { id: "connection", role: "status", "aria-live": "polite", "data-state": "offline", "data-pending": "0" }, h("span", { class: "dot", "aria-hidden": "true" }), statusText)
  app.status.subscribe(({ state, pending, fields }) => {
    statusEl.dataset.state = state
    statusEl.dataset.pending = String(pending)
    const said = pending > 0 ? t("pending", { n: pending }) : t(state)
    fill(statusText, said)
    // The dot alone stands for the state on a phone: the words stay for screen readers and as a tooltip.
    const detail = pending > 0 && fields.length ? ` (${t("pendingDetail", { fields: formatList(fields.map(f => t(f))) })})` : ""
    statusEl.title = pending > 0 ? `${said}${detail}` : state === "online" ? t("allSaved") : t(state)
    statusEl.setAttribute("aria-label", statusEl.title)
  })
  const who = h("button", { type: "button", class: "link who-am-i", id: "identity", onClick: () => identityForm(() => route(app), true) })
  const updateWho = () => {
    const me = identity()
    const label = me ? (me.organisation ? `${me.name} (${me.organisation})` : me.name) : ""
    fill(who, h("span", { class: "who-label", id: "identity-label" }, h("span", { class: "who-name" }, me?.name ?? ""), me?.organisation ? h("span", { class: "who-org" }, ` (${me.organisation})`) : null))
    who.title = label
    who.setAttribute("aria-label", `${t("changeIdentity")}: ${label}`)
  }
  updateWho()
  app.updateWho = updateWho
  const bar = document.getElementById("top")
  // Members of a process (not administrators, not an --open server) get the bell.
  const notifications = notificationBell(app)
  app.notifications = notifications
  fill(bar, h("a", { href: "#main", class: "skip" }, t("skipToContent")), h("a", { href: "/", class: "brand" }, t("appName")), h("span", { class: "spacer" }), statusEl, notifications?.bell, who)
  bar.after(refusalNotice())
  if (notifications) bar.after(notifications.panel)
}

/**
 * Who writes here. On an --open server people name themselves (asked once,
 * kept in this browser). A member of a secure server is who the server
 * says: the name and organisation of their invitation, shown, not edited
 * (the server would ignore an edit: it records who delivered each change).
 */
function identityForm(done, editing = false) {
  const me = identity()
  const session = window.konsens?.me
  if (session && !session.open && me) {
    cleanup()
    const admin = session.role === "admin"
    fill(
      main,
      h(
        "section",
        { class: "card narrow", id: "identity-card", "aria-labelledby": "identity-title" },
        h("h1", { id: "identity-title" }, t("identityVerifiedTitle")),
        h(
          "dl",
          { class: "identity-facts" },
          h("dt", {}, t("memberName")),
          h("dd", { id: "identity-name" }, me.name),
          admin ? null : [h("dt", {}, t("memberOrganisation")), h("dd", { id: "identity-organisation" }, me.organisation)],
          h("dt", {}, t("role")),
          h("dd", { id: "identity-role" }, t(`role_${session.role}`))
        ),
        h("p", { class: "hint", id: "identity-note" }, t(admin ? "identityVerifiedNoteAdmin" : session.role === "facilitator" ? "identityVerifiedNoteFacilitator" : "identityVerifiedNote")),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onClick: done }, t("close")))
      )
    )
    main.querySelector("button")?.focus()
    return
  }
  cleanup()
  const name = h("input", { type: "text", required: true, autocomplete: "name", value: me?.name ?? "" })
  const org = h("input", { type: "text", required: true, autocomplete: "organization", value: me?.organisation ?? "" })
  const form = h(
    "form",
    {
      class: "card narrow",
      "aria-labelledby": "identity-title",
      onSubmit: e => {
        e.preventDefault()
        if (!name.value.trim() || !org.value.trim()) return
        saveIdentity(name.value, org.value)
        window.konsens.updateWho?.()
        done()
      },
    },
    h("h1", { id: "identity-title" }, t("identityTitle")),
    h("p", {}, t("identityIntro")),
    field(t("yourName"), name),
    field(t("yourOrganisation"), org),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("save")), editing ? h("button", { type: "button", onClick: done }, t("cancel")) : null)
  )
  fill(main, form)
  name.focus()
}

boot().catch(err => {
  console.error(err)
  fill(main, h("p", { class: "error", role: "alert" }, String(err?.message ?? err)))
})
