// Two people type at the very same place, at human speed, keystrokes
// alternating: each one's word must stay whole ("Ministerium." and
// "Gewerkschaft.", never "MiGneiwsetrekrsicumh.aft."), in both browsers and
// on the server. Other people's text that arrives at one's caret goes behind
// it, so each keeps typing their own run. Checked for a rich-text field and
// for the title.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { setTimeout as delay } from "node:timers/promises"
import { startServer, launch, participant, createRecommendation, waitSynced, fieldTextScript } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

const WORD_A = " Ministerium."
const WORD_B = " Gewerkschaft."
// Human typing speed: the point is that every keystroke reaches the other
// browser before the next one is typed there.
const KEY_MS = 150

/** Alternate keystrokes between the two pages, each continuing where its own caret is. */
async function typeAlternately(a, b) {
  for (let i = 0; i < Math.max(WORD_A.length, WORD_B.length); i++) {
    if (i < WORD_A.length) {
      await a.keyboard.type(WORD_A[i])
      await delay(KEY_MS)
    }
    if (i < WORD_B.length) {
      await b.keyboard.type(WORD_B[i])
      await delay(KEY_MS)
    }
  }
}

/** Both words appear whole, and nothing else was added to `start`. */
function assertRuns(text, start) {
  assert.ok(text.startsWith(start), JSON.stringify(text))
  const added = text.slice(start.length)
  assert.ok(added === WORD_A + WORD_B || added === WORD_B + WORD_A, `each word stays together: ${JSON.stringify(text)}`)
}

/** What a fresh browser, with nothing stored locally, gets from the server. */
async function fromServer(path, read) {
  const context = await browser.newContext({ locale: "en-US" })
  await context.addInitScript(fieldTextScript)
  await context.addInitScript(() => localStorage.setItem("konsens.identity", JSON.stringify({ participant: "p-reader", name: "Reader", organisation: "Server check" })))
  const page = await context.newPage()
  await page.goto(server.url(path))
  await page.getByRole("textbox", { name: "Recommendation", exact: true }).waitFor()
  const value = await read(page)
  await context.close()
  return value
}

test("two people typing at the end of the same paragraph keep their words whole", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const b = await participant(browser, "Ben Okafor", "Netzwerk Faire Migration")
  const path = await createRecommendation(a.page, server.url)
  const start = "Die Verantwortung liegt beim"
  const edA = a.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await edA.click()
  await edA.pressSequentially(start)
  await waitSynced(a.page)
  await b.page.goto(server.url(path))
  const edB = b.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await b.page.waitForFunction(text => window.fieldText("recommendation") === text, start, { timeout: 15_000 })
  for (const [page, ed] of [[a.page, edA], [b.page, edB]]) {
    await ed.click()
    await page.keyboard.press("ControlOrMeta+End")
  }

  await typeAlternately(a.page, b.page)

  const settled = page =>
    page.waitForFunction(
      n => window.fieldText("recommendation").length === n,
      start.length + WORD_A.length + WORD_B.length,
      { timeout: 15_000 }
    )
  await Promise.all([settled(a.page), settled(b.page)])
  await Promise.all([waitSynced(a.page), waitSynced(b.page)])
  const textA = await a.page.evaluate(() => window.fieldText("recommendation"))
  const textB = await b.page.evaluate(() => window.fieldText("recommendation"))
  assert.equal(textA, textB)
  assertRuns(textA, start)
  assert.equal(await fromServer(path, page => page.waitForFunction(n => window.fieldText("recommendation").length === n, textA.length).then(() => page.evaluate(() => window.fieldText("recommendation")))), textA)
  await a.context.close()
  await b.context.close()
})

test("two people typing at the end of the title keep their words whole", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const b = await participant(browser, "Ben Okafor", "Netzwerk Faire Migration")
  const start = "Zuständig ist das"
  const path = await createRecommendation(a.page, server.url, { title: start })
  await waitSynced(a.page)
  await b.page.goto(server.url(path))
  const titleA = a.page.getByLabel("Title", { exact: true })
  const titleB = b.page.getByLabel("Title", { exact: true })
  await b.page.waitForFunction(text => document.getElementById("title")?.value === text, start, { timeout: 15_000 })
  for (const [page, title] of [[a.page, titleA], [b.page, titleB]]) {
    await title.click()
    await page.keyboard.press("End")
  }

  await typeAlternately(a.page, b.page)

  const n = start.length + WORD_A.length + WORD_B.length
  const settled = page => page.waitForFunction(n => document.getElementById("title").value.length === n, n, { timeout: 15_000 })
  await Promise.all([settled(a.page), settled(b.page)])
  await Promise.all([waitSynced(a.page), waitSynced(b.page)])
  const valueA = await titleA.inputValue()
  assert.equal(await titleB.inputValue(), valueA)
  assertRuns(valueA, start)
  assert.equal(await fromServer(path, page => page.waitForFunction(n => document.getElementById("title").value.length === n, n).then(() => page.getByLabel("Title", { exact: true }).inputValue())), valueA)
  await a.context.close()
  await b.context.close()
})
