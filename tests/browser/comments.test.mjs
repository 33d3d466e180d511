// A comment anchored to a phrase follows it while others edit around it;
// replies and resolving reach the other participant.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { startServer, launch, participant, createRecommendation, waitSynced, selectPhrase } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

const anchored = page => page.evaluate(() => [...document.querySelectorAll('[data-field="recommendation"] .comment-anchor')].map(e => e.textContent).join(""))

test("a comment on a phrase survives concurrent edits around it", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const b = await participant(browser, "Ben Okafor", "Netzwerk Faire Migration")
  const path = await createRecommendation(a.page, server.url)
  const edA = a.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await edA.click()
  await edA.pressSequentially("Agencies must publish all fees to workers.")
  await waitSynced(a.page)
  await b.page.goto(server.url(path))
  const edB = b.page.getByRole("textbox", { name: "Recommendation", exact: true })
  await b.page.waitForFunction(() => window.fieldText("recommendation").includes("workers."), null, { timeout: 15_000 })

  await selectPhrase(a.page, "recommendation", "publish all fees")
  await a.page.getByRole("button", { name: "Comment", exact: true }).click()
  await a.page.getByLabel("Your comment").fill("Which fees exactly?")
  await a.page.getByRole("button", { name: "Add comment" }).click()
  await b.page.locator(".comment .body", { hasText: "Which fees exactly?" }).waitFor({ timeout: 15_000 })

  // Both edit around the phrase at the same time: A at the start, B at the end.
  await edA.click()
  await edA.press("ControlOrMeta+Home")
  await edB.click()
  await edB.press("ControlOrMeta+End")
  await Promise.all([
    edA.pressSequentially("Recruitment ", { delay: 10 }),
    edB.pressSequentially(" Publish them online.", { delay: 10 }),
  ])
  for (const page of [a.page, b.page]) {
    await page.waitForFunction(
      () => window.fieldText("recommendation") === "Recruitment Agencies must publish all fees to workers. Publish them online.",
      null,
      { timeout: 20_000 }
    )
  }
  for (const page of [a.page, b.page]) {
    assert.equal(await anchored(page), "publish all fees")
    assert.equal(await page.locator(".comment .quote").first().innerText(), "publish all fees")
  }

  // Reply from B, resolve from A: both see it.
  const card = b.page.locator(".comment", { hasText: "Which fees exactly?" })
  await card.getByLabel("Your reply").fill("Placement and travel.")
  await card.getByRole("button", { name: "Reply" }).click()
  await a.page.locator(".comment .replies", { hasText: "Placement and travel." }).waitFor({ timeout: 15_000 })
  await a.page.locator(".comment", { hasText: "Which fees exactly?" }).getByRole("button", { name: "Mark as resolved" }).click()
  await b.page.locator(".comment.is-resolved", { hasText: "Which fees exactly?" }).waitFor({ state: "attached", timeout: 15_000 })
  assert.equal(await anchored(b.page), "", "a resolved comment is no longer highlighted")
  await a.context.close()
  await b.context.close()
})
