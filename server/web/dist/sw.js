// The service worker that keeps the app itself on this device, so that a
// member can reload and open their documents without a connection (the
// documents live in IndexedDB; see connection.js). It keeps only the app:
// the page, its script, its style and the Automerge wasm. The API, the sync
// socket and invitation links always go to the server: they carry who the
// member is and what is current, and an old answer would be wrong.
//
// The build (build.mjs) writes the bundle's hash into VERSION, so every
// release is a new service worker with its own cache; on activation it
// deletes the caches of earlier releases.

const VERSION = "ae7e45139148f7ad"
const CACHE = `konsens-app-${VERSION}`
const ASSETS = ["/", "/assets/app.js", "/assets/app.css", "/assets/automerge.wasm"]
// The app's own routes: every one is the same page, which routes in the browser.
const SHELL = /^\/(p|r)\/[^/]+\/?$/
const NEVER = /^\/(api|sync|join|health)(\/|$)/

self.addEventListener("install", event => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE)
      // Past the HTTP cache: what is kept must be this release's.
      await cache.addAll(ASSETS.map(url => new Request(url, { cache: "reload", credentials: "same-origin" })))
      await self.skipWaiting()
    })()
  )
})

self.addEventListener("activate", event => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name.startsWith("konsens-app-") && name !== CACHE) await caches.delete(name)
      await self.clients.claim()
    })()
  )
})

self.addEventListener("fetch", event => {
  const request = event.request
  if (request.method !== "GET") return
  const url = new URL(request.url)
  if (url.origin !== self.location.origin || NEVER.test(url.pathname)) return
  const key = url.pathname === "/" || SHELL.test(url.pathname) ? "/" : ASSETS.includes(url.pathname) ? url.pathname : null
  if (!key) return
  event.respondWith(fromCache(key, request))
})

/**
 * The kept copy first: it is this release's, and it answers at once with or
 * without a connection. Without one (a cache cleared by the browser), the
 * network, and the answer is kept for next time.
 */
async function fromCache(key, request) {
  const cache = await caches.open(CACHE)
  const kept = await cache.match(key)
  if (kept) return kept
  const response = await fetch(request)
  // Every app route answers with the same page, kept once under "/".
  if (response.ok && response.type === "basic") await cache.put(key, response.clone())
  return response
}
