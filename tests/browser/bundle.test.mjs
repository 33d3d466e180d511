// The committed bundle (server/web/dist, embedded in konsens-server) must be
// exactly what its source builds to.
import { test } from "node:test"
import assert from "node:assert/strict"
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { root, run } from "./helpers.mjs"

async function files(dir) {
  const out = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath ?? entry.path, entry.name)))
  }
  return out.sort()
}

test("server/web/dist matches a fresh build of server/web/src", async () => {
  const web = join(root, "server/web")
  const out = await mkdtemp(join(tmpdir(), "konsens-web-build-"))
  try {
    await run(process.execPath, [join(web, "build.mjs"), out], { cwd: web })
    const committed = await files(join(web, "dist"))
    assert.deepEqual(await files(out), committed, "the same files")
    for (const f of committed) {
      const [a, b] = await Promise.all([readFile(join(out, f)), readFile(join(web, "dist", f))])
      assert.ok(a.equals(b), `${f} differs from a fresh build: run \`npm run build --prefix server/web\` and commit server/web/dist`)
    }
  } finally {
    await rm(out, { recursive: true, force: true })
  }
})
