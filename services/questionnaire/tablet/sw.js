// The tablet page's service worker (scope /tablet/): the page opens even when the tablet is offline.
//
// RE'CONNECT's patients are those whose connection comes and goes. The answers and the send queue already wait in
// localStorage (app.js); what was missing is the page itself when it is opened offline: without this worker the
// browser shows its own error page, and the patient can neither answer nor see that the answers will go later.
//
// Network first, for every file: the server sends them with Cache-Control: no-cache so that a page updated there is
// what the tablet runs next, and online the tablet gets exactly what the server sends now. The copy kept here is
// only what the tablet opens when the network fails (or the server answers 5xx, which no file of the page is).
//
// What it keeps is the page's own files, nothing of the patient: no API call (/v1/…) is ever intercepted, nor any
// request with an Authorization header, a method other than GET, a query string, or another origin; only a 200 of
// this origin, not redirected, is kept; the key is the file's address without query or fragment, so that the
// enrolment's #enrol=… or #device_token=… can never be part of one. That is why a loan that ends (401: the page forgets
// everything it kept of the patient) keeps these files: they are the same for every tablet (config.json is the
// deployment's devices address and the team's number), and a returned tablet still opens offline on « Cette
// tablette n'est pas encore prête » with the team's number rather than on the browser's error page.

// Changed whenever FILES changes (tests/unit/questionnaire/test_tablet_worker.py checks the list against the page):
// a new worker, a new cache, the old one deleted on activate. A file whose content changes needs no new version:
// the next online opening fetches it.
const VERSION = "1";
const PREFIX = "oncofollow-tablet-";
const CACHE = `${PREFIX}${VERSION}`;

// Everything the page loads, relative to this worker: kept at install, so that the first opening offline after the
// enrolment finds all of it (the enrolment's own loads happened before the worker controlled the page).
const FILES = [
  "./",
  "app.js",
  "comfort.js",
  "flow.js",
  "listen.js",
  "sending.js",
  "sizing.js",
  "tablet.css",
  "manifest.webmanifest",
  "config.json",
  "icons/icon-192.png",
  "icons/icon-512.png",
  "icons/icon-maskable-512.png",
  "../web/page.js",
  "../web/questionnaire_form.js",
];

const SCOPE = new URL("./", self.location).pathname; // "/tablet/", or under a proxy's path
const WEB = new URL("../web/", self.location).pathname; // the shared modules the page imports

/** Whether this worker answers the request: a GET of one of the page's own files, carrying no credential. */
function ownFile(request) {
  if (request.method !== "GET" || request.headers.has("Authorization")) return false;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || url.search) return false;
  return url.pathname.startsWith(SCOPE) || url.pathname.startsWith(WEB);
}

/** Whether a response may be kept: a whole 200 of this origin, as the server sent it for this very address. */
function keepable(response) {
  return response.status === 200 && response.type === "basic" && !response.redirected;
}

/** The cache key: origin and path only (never a query or a fragment, where a token could be). */
function keyOf(url) {
  const parsed = new URL(url, self.location);
  return parsed.origin + parsed.pathname;
}

async function keep(key, response) {
  const cache = await caches.open(CACHE);
  await cache.put(key, response);
}

async function networkFirst(event) {
  const request = event.request;
  const key = keyOf(request.url);
  let response = null;
  try {
    response = await fetch(request);
  } catch {
    response = null; // offline, or the connection dropped
  }
  if (response && keepable(response)) {
    event.waitUntil(keep(key, response.clone()));
    return response;
  }
  if (response && response.status < 500) return response; // the server's own answer (a 404 stays a 404)
  const cache = await caches.open(CACHE);
  // A navigation to another address of the page (index.html) opens the page kept at its start address.
  const kept = (await cache.match(key)) || (request.mode === "navigate" ? await cache.match(keyOf(SCOPE)) : undefined);
  return kept || response || Response.error();
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // All or nothing: a page kept without one of its modules would open offline broken. Failing here (offline at
      // install) leaves no worker; the next opening online installs it again.
      const responses = await Promise.all(
        FILES.map(async (file) => {
          const response = await fetch(new Request(file, { cache: "no-cache" }));
          if (!keepable(response)) throw new Error(`${file}: ${response.status}`);
          return [keyOf(file), response];
        }),
      );
      await Promise.all(responses.map(([key, response]) => cache.put(key, response)));
      // At once, rather than after every tablet page is closed (a tablet's one page may stay open for days). This
      // cannot run an old page with new modules: the page imports all its modules statically, when it loads (no
      // import(): the unit test checks), so a page already open loads no module after it; and network first, the
      // worker gives each file the server's current copy, whichever worker it is.
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      // The page that registered the worker is controlled from now on, not from its next opening: its later loads
      // (config.json) refresh the copies kept.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  if (!ownFile(event.request)) return; // the browser's own handling, untouched: the API, other origins, tokens
  event.respondWith(networkFirst(event));
});
