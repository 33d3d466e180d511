// One participant goes offline, keeps writing (the edits stay in IndexedDB
// and are shown as pending), comes back, and the edits merge with what the
// other wrote meanwhile.
import { test, before, after } from "node:test"
import assert from "node:assert/strict"
import { startServer, launch, participant, createRecommendation, waitSynced, editorText } from "./helpers.mjs"

let server, browser
before(async () => {
  server = await startServer()
  browser = await launch()
})
after(async () => {
  await browser?.close()
  await server?.stop()
})

test("edits made offline merge when the connection is back", async () => {
  const a = await participant(browser, "Ada Lovelace", "Institut für Arbeit")
  const b = await participant(browser, "Ben Okafor", "Netzwerk Faire Migration")
  const path = await createRecommendation(a.page, server.url)
  await waitSynced(a.page)
  await b.page.goto(server.url(path))
  await b.page.getByRole("textbox", { name: "Recommendation", exact: true }).waitFor()
  await waitSynced(b.page)

  await b.context.setOffline(true)
  await b.page.waitForSelector('#connection[data-state="offline"]', { timeout: 10_000 })
  const edB = b.page.getByRole("textbox", { name: "Rationale", exact: true })
  await edB.click()
  await edB.pressSequentially("Written on the train without network.", { delay: 5 })
  // The header counts what the server does not have yet.
  await b.page.waitForFunction(() => Number(document.querySelector("#connection")?.dataset.pending) > 0, null, { timeout: 10_000 })

  const edA = a.page.getByRole("textbox", { name: "Rationale", exact: true })
  await edA.click()
  await edA.pressSequentially("Written in the office.", { delay: 5 })
  await waitSynced(a.page)
  assert.ok(!(await editorText(b.page, "Rationale")).includes("office"), "offline context must not see the other's edit yet")

  await b.context.setOffline(false)
  for (const page of [a.page, b.page]) {
    await page.waitForFunction(
      () => {
        const text = window.fieldText("rationale")
        return text.includes("Written on the train without network.") && text.includes("Written in the office.")
      },
      null,
      { timeout: 30_000 }
    )
  }
  await Promise.all([waitSynced(a.page, 30_000), waitSynced(b.page, 30_000)])
  assert.equal(await editorText(a.page, "Rationale"), await editorText(b.page, "Rationale"))
  await a.context.close()
  await b.context.close()
})
