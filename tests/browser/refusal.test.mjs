// A refused change is never a trap (issue 10). The server refuses a
// participant's change (she adopts a recommendation herself; a member who
// became an observer while offline sends what she typed). Every later edit
// depends on the refused change, so without recovery the server refuses
// those too and the client offers them forever. The web app drops the
// refused changes and what depends on them, makes the later edits again as
// fresh changes (unless the member may no longer write), forgets the refused
// ones in IndexedDB, stops sending, and tells the member why, in her
// language, with the refused text to copy.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { launch, waitSynced, cli, startSecureServer, invite, fieldTextScript, mkArtifacts, artifacts, joinLink } from "./helpers.mjs"
// The automerge-repo wire format, to tell sync messages from presence.
import { decode } from "../../server/web/node_modules/cbor-x/index.js"

let server, browser, store, processUrl, recUrl, recId

const konsens = async (...args) => (await cli("--store", store, ...args)).stdout.trim()
const fail = e => {
  throw new Error(`${e.message}\nserver log:\n${server.log().split("\n").slice(-40).join("\n")}`)
}

before(async () => {
  server = await startSecureServer()
  browser = await launch()
  store = await mkdtemp(join(tmpdir(), "konsens-refusal-admin-"))
  await konsens("join", server.adminLink)
  processUrl = await konsens("process", "create", "--title", "Fair skills partnerships")
  const workshop = await konsens("workshop", "add", processUrl, "--title", "Fair recruitment", "--sector", "care")
  recUrl = await konsens("rec", "new", processUrl, "--workshop", workshop, "--title", "No fees for workers")
  recId = recUrl.replace("automerge:", "")
  await konsens("rec", "set", recUrl, "--field", "recommendation", "--value", "Employers pay all recruitment costs.")
  await konsens("sync")
})
after(async () => {
  await browser?.close()
  await server?.stop()
  if (store) await rm(store, { recursive: true, force: true })
})

/** A member's browser on the recommendation, counting the frames its sync socket sends. */
async function member(link, name, locale = "en-US") {
  const context = await browser.newContext({ locale, viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.on("pageerror", e => console.error(`[${name}] page error:`, e))
  await context.addInitScript(fieldTextScript)
  const frames = []
  page.on("websocket", ws => ws.url().endsWith("/sync") && ws.on("framesent", f => frames.push(decode(f.payload).type)))
  await joinLink(page, link)
  await page.waitForURL(/\/p\//)
  await page.goto(`${server.base}/r/${recId}`)
  return { context, page, frames }
}

/** A rich-text field as the member reads it (without the others' carets). */
const fieldText = (page, field) => page.evaluate(f => window.fieldText(f), field)
const waitText = (page, field, text, timeout = 20_000) => page.waitForFunction(([f, x]) => window.fieldText(f).includes(x), [field, text], { timeout })
const badge = page => page.locator("#status-badge").getAttribute("data-status")

/**
 * What the page sends in a quiet window of `ms`: sync messages (which could
 * carry changes) and presence. Without recovery the refused changes are
 * offered again and again (the official client sent 1,502 frames in 12 s).
 */
async function framesDuring(page, frames, ms) {
  const start = frames.length
  await page.waitForTimeout(ms)
  const sent = frames.slice(start)
  return { sync: sent.filter(t => t === "sync").length, all: sent.length }
}
const quietEnough = (q, what) => {
  assert.ok(q.sync <= 1, `${q.sync} sync messages sent in 3 s ${what}`)
  // Presence: a heartbeat every 5 s, and a few when a page (re)starts it.
  assert.ok(q.all <= 12, `${q.all} frames sent in 3 s ${what}`)
}

test("a participant's refused decision: later edits reach everyone, nothing is sent again, the reload stays clean", async () => {
  const fatima = await invite(server, server.adminToken, processUrl, { role: "facilitator", name: "Fatima Facilitator", organisation: "Skills Think Tank" })
  const pia = await invite(server, server.adminToken, processUrl, { role: "participant", name: "Pia Participant", organisation: "Migrant Workers NGO" })
  const f = await member(fatima.link, "Fatima")
  const p = await member(pia.link, "Pia")
  const editor = p.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await editor.waitFor()
  await f.page.getByRole("textbox", { name: "Recommendation", exact: true }).waitFor()
  await waitSynced(p.page).catch(fail)
  assert.equal(await badge(p.page), "draft")

  // Her client rejects the recommendation (the app would not offer it; a
  // forged or outdated client would; not "adopted", which the app shows as
  // fixed wording), then she goes on writing: the first
  // words on a train without network, so they surely depend on the refused
  // change; the rest once back online, while the refusal arrives.
  await p.context.setOffline(true)
  await p.page.waitForSelector('#connection[data-state="offline"]', { timeout: 10_000 })
  await p.page.evaluate(async url => {
    const handle = await window.konsens.repo.find(url)
    handle.change(d => {
      d.status = new window.konsens.A.ImmutableString("rejected")
    })
  }, recUrl)
  const offline = " Agencies publish"
  const online = " every fee they charge, in every language they recruit in."
  const sentence = offline + online
  await editor.click()
  await editor.press("ControlOrMeta+End")
  await editor.pressSequentially(offline, { delay: 10 })
  await p.context.setOffline(false)
  await editor.pressSequentially(online, { delay: 40 })

  // She is told, in English, which document and why.
  const notice = p.page.locator('#refusal-notice article[data-code="decision"]')
  await notice.waitFor({ timeout: 10_000 }).catch(fail)
  assert.equal(await p.page.locator("#refusal-notice").getAttribute("role"), "alert")
  const said = await notice.innerText()
  assert.match(said, /Only facilitators can adopt, reject or re-open a recommendation\./)
  assert.match(said, /No fees for workers/)
  assert.match(said, new RegExp(`changes to ${recId} refused`), "the server's own words")
  assert.match(said, /Your later edits were kept and sent again\./)
  assert.equal(await notice.getByRole("link", { name: "No fees for workers" }).getAttribute("href"), `/r/${recId}`)

  // Every keystroke is still there, and reaches the facilitator.
  await waitText(p.page, "recommendation", sentence.trim()).catch(async e => fail(new Error(`${e.message}\nPia sees: ${await fieldText(p.page, "recommendation")}`)))
  assert.equal(await fieldText(p.page, "recommendation"), `Employers pay all recruitment costs.${sentence}`)
  await waitText(f.page, "recommendation", sentence.trim()).catch(fail)
  assert.equal(await fieldText(f.page, "recommendation"), `Employers pay all recruitment costs.${sentence}`)
  // The status is the server's everywhere.
  assert.equal(await badge(p.page), "draft")
  assert.equal(await badge(f.page), "draft")
  // Everything she has is on the server again.
  await waitSynced(p.page).catch(fail)

  // The client offers nothing again: only presence heartbeats (every 5 s).
  quietEnough(await framesDuring(p.page, p.frames, 3000), "after the recovery")
  const refusals = server.log().split("\n").filter(l => l.includes("refused changes") && l.includes(recId))
  assert.equal(refusals.length, 1, `the server refused once:\n${refusals.join("\n")}`)

  // The server's copy, as the administrator's CLI reads it.
  await konsens("sync")
  const shown = await konsens("rec", "show", recUrl)
  assert.ok(shown.includes(sentence.trim()), shown)
  assert.doesNotMatch(shown, /rejected/i)

  // The refused content stays readable and copyable.
  await notice.getByText("Show refused text").click()
  const copy = await notice.getByRole("textbox").inputValue()
  assert.match(copy, /Status \(not sent again\):\nRejected/)
  // What depended on the refused change when it came back: the words typed offline.
  assert.ok(copy.includes(`Employers pay all recruitment costs.${offline}`), copy)
  await mkArtifacts()
  await p.page.screenshot({ path: `${artifacts}/refusal-notice.png` })

  // A reload brings back neither the refused change nor the notice's loss.
  const refused = await p.page.evaluate(() => window.konsens.refusals.at(-1).refused)
  assert.ok(refused.length >= 1)
  await p.page.waitForFunction(() => window.konsens.refusals.at(-1).cleaned === true, null, { timeout: 10_000 })
  await p.page.reload()
  await editor.waitFor()
  const local = await p.page.evaluate(
    async ([url, refused]) => {
      const { A, repo } = window.konsens
      const doc = (await repo.find(url)).doc()
      return { refusedKept: A.getChangesMetaSince(doc, []).filter(m => refused.includes(m.hash)).length, status: String(doc.status) }
    },
    [recUrl, refused]
  )
  assert.deepEqual(local, { refusedKept: 0, status: "draft" })
  await waitText(p.page, "recommendation", sentence.trim())
  assert.equal(await badge(p.page), "draft")
  await p.page.locator('#refusal-notice article[data-code="decision"]').waitFor()
  await waitSynced(p.page).catch(fail)
  quietEnough(await framesDuring(p.page, p.frames, 3000), "after the reload")
  assert.equal(server.log().split("\n").filter(l => l.includes("refused changes") && l.includes(recId)).length, 1)

  // Dismissed, it is gone.
  await p.page.getByRole("button", { name: "Dismiss" }).click()
  await p.page.locator("#refusal-notice").waitFor({ state: "hidden" })
  await f.context.close()
  await p.context.close()
})

test("a member who became an observer while offline: told in German, her text is kept to copy, nothing is sent again", async () => {
  const olga = await invite(server, server.adminToken, processUrl, { role: "participant", name: "Olga Offline", organisation: "Employers' Association" })
  const o = await member(olga.link, "Olga", "de-DE")
  const editor = o.page.getByRole("textbox", { name: "Begründung", exact: true })
  await editor.waitFor()
  await waitSynced(o.page).catch(fail)

  // Offline, she writes; meanwhile her access is revoked and she is invited
  // again as an observer.
  await o.context.setOffline(true)
  await o.page.waitForSelector('#connection[data-state="offline"]', { timeout: 10_000 })
  const typed = "Auf der Zugfahrt geschrieben."
  await editor.click()
  await editor.pressSequentially(typed, { delay: 10 })
  await o.page.waitForFunction(() => Number(document.querySelector("#connection")?.dataset.pending) > 0, null, { timeout: 10_000 })
  await o.page.evaluate(() => window.konsens.repo.flush())
  const revoked = await fetch(`${server.base}/api/tokens/${olga.token_id}/revoke`, { method: "POST", headers: { Authorization: `Bearer ${server.adminToken}` } })
  assert.ok(revoked.ok, `revoke: ${revoked.status}`)
  const observer = await invite(server, server.adminToken, processUrl, { role: "observer", name: "Olga Offline", organisation: "Employers' Association" })

  // Back online, she opens her new link.
  await o.context.setOffline(false)
  await joinLink(o.page, observer.link)
  await o.page.waitForURL(/\/p\//)
  await o.page.goto(`${server.base}/r/${recId}`)
  const notice = o.page.locator('#refusal-notice article[data-code="read-only"]')
  await notice.waitFor({ timeout: 15_000 }).catch(fail)
  const said = await notice.innerText()
  assert.match(said, /Sie nehmen jetzt beobachtend teil: Ihre Änderungen wurden nicht auf dem Server gespeichert\./)
  assert.match(said, /Davon wurde nichts erneut gesendet\./)
  assert.match(said, /No fees for workers/)
  await notice.getByText("Zurückgewiesenen Text anzeigen").click()
  assert.match(await notice.getByRole("textbox").inputValue(), /Auf der Zugfahrt geschrieben\./)

  // Nothing of it is in her document any more, nothing pending, nothing sent.
  await o.page.getByRole("textbox", { name: "Begründung", exact: true }).waitFor()
  assert.ok(!(await fieldText(o.page, "rationale")).includes(typed))
  await waitSynced(o.page).catch(fail)
  quietEnough(await framesDuring(o.page, o.frames, 3000), "after the recovery")
  const refusals = server.log().split("\n").filter(l => l.includes("refused changes") && l.includes("read-only"))
  assert.equal(refusals.length, 1, refusals.join("\n"))

  // The server never had it.
  await konsens("sync")
  assert.doesNotMatch(await konsens("rec", "show", recUrl), /Zugfahrt/)
  await o.context.close()
})

test("the rebuild in the page: blocks, marks, comment anchors and remote edits survive; a later status change is not made again", async () => {
  const context = await browser.newContext()
  const page = await context.newPage()
  page.on("pageerror", e => console.error("[rebuild] page error:", e))
  await joinLink(page, server.adminLink)
  await page.waitForFunction(() => window.konsens?.rebuild)
  const result = await page.evaluate(() => {
    const { A, rebuild } = window.konsens
    const S = v => new A.ImmutableString(v)
    const block = { type: "block", value: { type: S("paragraph"), parents: [], attrs: {} } }
    let base = A.change(A.init(), d => {
      d.title = "No fees"
      d.status = S("draft")
      d.statusLog = []
      d.problem = ""
      d.comments = {}
      d.addressees = [S("Ministry")]
    })
    base = A.change(base, d => A.updateSpans(d, ["problem"], [block, { type: "text", value: "Old text." }]))
    // Hers: a refused decision, then words (one bold), a comment on them, an
    // addressee, and another status change.
    let mine = A.change(A.clone(base), d => {
      d.status = S("rejected")
    })
    const refused = A.getHeads(mine)
    mine = A.change(mine, d => {
      A.splice(d, ["problem"], 10, 0, " New words.")
      A.mark(d, ["problem"], { start: 11, end: 14, expand: "none" }, "strong", true)
    })
    mine = A.change(mine, d => {
      d.comments.c1 = { field: S("problem"), start: S(A.getCursor(d, ["problem"], 11)), end: S(A.getCursor(d, ["problem"], 13)), body: S("Why new?"), replies: [] }
      d.addressees.push(S("Agencies"))
    })
    mine = A.change(mine, d => {
      d.status = S("discussion")
    })
    // Someone else's edit, merged meanwhile.
    mine = A.merge(mine, A.change(A.clone(base), d => A.splice(d, ["title"], 0, 0, "Really: ")))
    const plan = rebuild(mine, refused, { reapply: true })
    const r = plan.doc
    const c = r.comments.c1
    const from = A.getCursorPosition(r, ["problem"], c.start.val)
    const to = A.getCursorPosition(r, ["problem"], c.end.val) + 1
    const readOnly = rebuild(mine, refused, { reapply: false })
    return {
      spans: JSON.parse(JSON.stringify(A.spans(r, ["problem"]))),
      quote: r.problem.slice(from, to),
      title: r.title,
      status: r.status.val,
      addressees: r.addressees.map(a => a.val),
      refusedGone: !A.getChangesMetaSince(r, []).some(m => refused.includes(m.hash)),
      freshActor: A.getActorId(r) !== A.getActorId(mine),
      reapplied: plan.reapplied,
      skipped: plan.skipped,
      observer: { problem: readOnly.doc.problem, title: readOnly.doc.title, reapplied: readOnly.reapplied },
    }
  })
  assert.deepEqual(result.spans, [
    { type: "block", value: { type: "paragraph", parents: [], attrs: {} } },
    { type: "text", value: "Old text. " },
    { type: "text", value: "New", marks: { strong: true } },
    { type: "text", value: " words." },
  ])
  assert.equal(result.quote, "New", "the comment's anchor points into the re-made text")
  assert.equal(result.title, "Really: No fees", "the other's edit stays")
  assert.equal(result.status, "draft", "neither the refused nor the later status change is made again")
  assert.deepEqual(result.addressees, ["Ministry", "Agencies"])
  assert.ok(result.refusedGone)
  assert.ok(result.freshActor)
  assert.deepEqual(result.reapplied, ["addressees", "comments", "problem"])
  assert.deepEqual(result.skipped, ["status"])
  assert.deepEqual(result.observer, { problem: "\uFFFCOld text.", title: "Really: No fees", reapplied: [] })
  await context.close()
})
