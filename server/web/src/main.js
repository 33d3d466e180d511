// konsens in the browser: boot the Automerge wasm from our own server, open
// the Repo, and route between the start page, a process and a recommendation.

import "./style.css"
import { initializeWasm } from "@automerge/automerge/slim"
import { h, fill, field } from "./dom.js"
import { t, lang } from "./i18n.js"
import { identity, saveIdentity, adoptServerIdentity, setSession } from "./model.js"
import { openRepo } from "./connection.js"
import * as A from "@automerge/automerge/slim"
import { recoverFromRefusal, rebuild } from "./recovery.js"
import { refusalNotice, listRefusals } from "./refusals.js"
import { startPage } from "./start.js"
import { processPage } from "./process.js"
import { recommendationPage } from "./recommendation.js"

const main = document.getElementById("main")
let cleanup = () => {}

async function boot() {
  document.documentElement.lang = lang
  document.title = t("appName")
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
  // The server's identity is not ours to edit.
  if (!app.me.open) document.getElementById("identity")?.setAttribute("disabled", "")
  document.addEventListener("click", event => {
    const link = event.target.closest?.("a[href]")
    if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    const url = new URL(link.href)
    if (url.origin !== location.origin || link.hasAttribute("download") || !/^\/($|p\/|r\/)/.test(url.pathname)) return
    event.preventDefault()
    navigate(url.pathname + url.search)
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
}

function header(app) {
  const statusEl = h("span", { id: "connection", role: "status", "aria-live": "polite", "data-state": "offline", "data-pending": "0" })
  app.status.subscribe(({ state, pending }) => {
    statusEl.dataset.state = state
    statusEl.dataset.pending = String(pending)
    fill(statusEl, h("span", { class: "dot", "aria-hidden": "true" }), t(state), pending > 0 ? ` · ${t("pending", { n: pending })}` : "")
    statusEl.title = pending > 0 ? t("pending", { n: pending }) : state === "online" ? t("allSaved") : t(state)
  })
  const who = h("button", { type: "button", class: "link", id: "identity", onClick: () => identityForm(() => route(app), true) })
  const updateWho = () => {
    const me = identity()
    fill(who, me ? `${me.name} (${me.organisation})` : "")
    who.setAttribute("aria-label", `${t("changeIdentity")}: ${me ? `${me.name}, ${me.organisation}` : ""}`)
  }
  updateWho()
  app.updateWho = updateWho
  const bar = document.getElementById("top")
  fill(bar, h("a", { href: "#main", class: "skip" }, t("skipToContent")), h("a", { href: "/", class: "brand" }, t("appName")), h("span", { class: "spacer" }), statusEl, who)
  bar.after(refusalNotice())
}

function identityForm(done, editing = false) {
  cleanup()
  const me = identity()
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
