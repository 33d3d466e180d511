// Two participants in two browser contexts type into the same recommendation
// at the same time; both end with the same text containing both inputs. They
// see each other as present, with name and caret. Keeps a screenshot of the
// editor as a test artifact.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { startServer, launch, participant, createRecommendation, waitSynced, editorText, mkArtifacts, artifacts } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

test("two contexts type into the recommendation at the same time and converge", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const b = await participant(browser, "Ben Okafor", "Netzwerk Faire Migration")
  const path = await createRecommendation(a.page, server.url)
  await waitSynced(a.page)
  await b.page.goto(server.url(path))
  const edA = a.page.getByRole("textbox", { name: "Recommendation", exact: true })
  const edB = b.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await edB.waitFor()
  // Title box and labels are there under their accessible names.
  assert.equal(await b.page.getByLabel("Title", { exact: true }).inputValue(), "No fees for workers")
  // A common starting text; then A writes before it and B after it, at the
  // same time. (Two people typing at the very same spot: runs.test.mjs.)
  await edA.click()
  await edA.pressSequentially("The state should act.")
  await b.page.waitForFunction(() => window.fieldText("recommendation") === "The state should act.", null, { timeout: 15_000 })
  await edA.press("ControlOrMeta+Home")
  await edB.click()
  await edB.press("ControlOrMeta+End")
  // Each sees the other arrive.
  await a.page.locator('#presence [data-peer="Ben Okafor"]').waitFor({ timeout: 15_000 })
  await b.page.locator('#presence [data-peer="Ada Lovelace"]').waitFor({ timeout: 15_000 })

  const inputA = "Agencies must publish all fees. "
  const inputB = " Employers pay the recruitment costs."
  await Promise.all([edA.pressSequentially(inputA, { delay: 15 }), edB.pressSequentially(inputB, { delay: 15 })])

  const both = (page, x, y) =>
    page.waitForFunction(
      ([x, y]) => {
        const text = window.fieldText("recommendation")
        return text.includes(x.trim()) && text.includes(y.trim())
      },
      [x, y],
      { timeout: 20_000 }
    )
  await Promise.all([both(a.page, inputA, inputB), both(b.page, inputA, inputB)])
  await Promise.all([waitSynced(a.page), waitSynced(b.page)])
  const textB = await editorText(b.page, "Recommendation")
  await a.page.waitForFunction(
    expected => window.fieldText("recommendation") === expected,
    textB,
    { timeout: 10_000 }
  )
  assert.equal(await editorText(a.page, "Recommendation"), textB)

  // The other's caret is drawn with their name.
  await a.page.locator(".peer-caret .peer-name", { hasText: "Ben Okafor" }).waitFor({ timeout: 10_000 })

  await mkArtifacts()
  await a.page.screenshot({ path: `${artifacts}/editor.png`, fullPage: true })
  await a.context.close()
  await b.context.close()
})
