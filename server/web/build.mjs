// Builds the web app into dist/ (or the directory given as the first
// argument). The output is committed and embedded in konsens-server, and a
// test rebuilds it and compares byte for byte, so the build must be
// deterministic: pinned esbuild, no timestamps, no source maps with absolute
// paths, and gzip with a fixed header.
import { build } from "esbuild"
import { copyFile, mkdir, readFile, writeFile, rm } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { gzipSync, constants } from "node:zlib"
import { createHash } from "node:crypto"

const here = dirname(fileURLToPath(import.meta.url))
const out = resolve(process.argv[2] ?? join(here, "dist"))
await rm(out, { recursive: true, force: true })
await mkdir(join(out, "assets"), { recursive: true })

await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js" },
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outdir: join(out, "assets"),
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
})

await copyFile(join(here, "src/index.html"), join(out, "index.html"))

// The Automerge wasm is most of the download; it is served gzip-encoded.
const wasm = await readFile(join(here, "node_modules/@automerge/automerge/dist/automerge.wasm"))
await writeFile(join(out, "assets/automerge.wasm.gz"), gzipSync(wasm, { level: constants.Z_BEST_COMPRESSION }))

// The service worker (served at /sw.js) names its cache after the bundle it
// keeps, so a new release replaces what browsers kept of the old one.
const hash = createHash("sha256")
for (const file of ["index.html", "assets/app.js", "assets/app.css", "assets/automerge.wasm.gz"]) hash.update(await readFile(join(out, file)))
const worker = await readFile(join(here, "src/sw.js"), "utf8")
if (!worker.includes("__KONSENS_BUILD__")) throw new Error("src/sw.js lost its __KONSENS_BUILD__ placeholder")
await writeFile(join(out, "sw.js"), worker.replace("__KONSENS_BUILD__", hash.digest("hex").slice(0, 16)))
