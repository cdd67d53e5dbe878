// The tablet page's service worker (scope /tablet/): the page opens even when the tablet is offline.
//
// RE'CONNECT's patients are those whose connection comes and goes. The answers and the send queue already wait in
// localStorage (app.js); what was missing is the page itself when it is opened offline: without this worker the
// browser shows its own error page, and the patient can neither answer nor see that the answers will go later.
//
// What it keeps is one whole version of the page, never a mix: the service puts the page's version (a hash of every
// file below and of this worker, services/questionnaire/tablet_files.py) in this worker's bytes, so a page changed on
// the server is a new worker for the browser's update check; the new worker fetches every file into a cache named by
// that version, all or nothing, each file saying it is of that version (its Tablet-Version header), and deletes the
// other caches once it takes over. Nothing is written into the kept copy afterwards: a file fetched at an opening
// may be of a newer page than the rest of the copy, and a copy of mixed versions (a new app.js importing a name an
// old flow.js lacks) is a dead page offline, for a patient who cannot fix it.
//
// One opening, one version: an opening whose page comes from the kept copy takes every file it asks for from the
// kept copy; one whose page comes from the network takes its files from the network, and the kept copy only if the
// network fails and the kept copy is the page's version (otherwise the network's error: a new page with an old
// module is as dead as a missing module; the page says so and offers to reopen it, opening.js, and reopened, the
// page is whole, the network's or the kept one). Online and quick, the page is the server's (Cache-Control:
// no-cache); the kept copy opens when the network fails, the server answers 5xx, or the page has not come within
// OPENING_TIMEOUT_MS.
//
// What it keeps is the page's own files, nothing of the patient: no API call (/v1/…) is ever intercepted, nor any
// request with an Authorization header, a method other than GET, a query string, or another origin; only a 200 of
// this origin, not redirected, is kept; the key is the file's address without query or fragment, so that the
// enrolment's #enrol=… or #device_token=… can never be part of one. That is why a loan that ends (401: the page forgets
// everything it kept of the patient) keeps these files: they are the same for every tablet (config.json is the
// deployment's devices address and the team's number), and a returned tablet still opens offline on « Cette
// tablette n'est pas encore prête » with the team's number rather than on the browser's error page.

// Written here by the service when it serves this worker (the page's version); as it is on disk, the worker keeps
// nothing, since no file carries this placeholder as its version.
const VERSION = "unversioned";
const PREFIX = "oncofollow-tablet-";
const CACHE = `${PREFIX}${VERSION}`;
const VERSION_HEADER = "Tablet-Version";

// How long an opening waits for the network's page before opening the kept copy (when there is one). The page is
// about ten kilobytes: a working connection, even a weak 3G one (a second or two of round trip), brings it well within
// this; beyond it the connection is stalled (a captive Wi-Fi, a signal that comes and goes) and the patient would be
// looking at a blank screen. Short enough not to lose a patient, long enough that a slow but working network still
// gives the server's current page. The browser's own update check of this worker goes on regardless.
const OPENING_TIMEOUT_MS = 4000;

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
  "opening.js",
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

// Which version each opening (a page, by its client id) runs: KEPT when its page came from the kept copy, else the
// version its page from the network said (or null). Only in this worker's memory: the page asks for its modules as
// it loads (static imports only, tests/unit/questionnaire/test_tablet_worker.py), while the worker is busy answering
// it and so not stopped; an opening it does not know (answered by a previous worker, or before a stop) asks later
// only for data (config.json), not code, and gets the network's, or the kept copy's when the network fails.
const KEPT = "kept";
const openings = new Map();
const REMEMBERED = 32; // openings remembered at most: a tablet has one page, opened now and then

function remember(clientId, version) {
  if (!clientId) return;
  openings.set(clientId, version);
  for (const oldest of openings.keys()) {
    if (openings.size <= REMEMBERED) break;
    openings.delete(oldest);
  }
}

async function keptCopy(request) {
  const cache = await caches.open(CACHE);
  const key = keyOf(request.url);
  // A navigation to another address of the page (index.html) opens the page kept at its start address.
  return (await cache.match(key)) || (request.mode === "navigate" ? await cache.match(keyOf(SCOPE)) : undefined);
}

const NULL_BODY = new Set([204, 205, 304]); // statuses a Response cannot be built with a body for

/** The network's answer, whole, or null (offline, or the connection dropped, even mid-file). */
async function fromNetwork(request) {
  try {
    const response = await fetch(request);
    // A redirect (the navigation's, or a followed one whose address a module's imports resolve against) as it is.
    if (response.type !== "basic" || response.redirected) return response;
    // Read to its end before answering: a file cut short is a failure the kept copy may stand in for, not a module
    // that breaks the page; and the opening's time-out covers a page whose headers came but not its body.
    const body = await response.arrayBuffer();
    const { status, statusText, headers } = response;
    return new Response(NULL_BODY.has(status) ? null : body, { status, statusText, headers });
  } catch {
    return null;
  }
}

const TIMED_OUT = "timed out";

/** An opening: the network's page, or the kept copy's when the network fails or is too slow. */
async function opening(event) {
  const kept = await keptCopy(event.request);
  const network = fromNetwork(event.request);
  const response = kept
    ? await Promise.race([network, new Promise((resolve) => setTimeout(() => resolve(TIMED_OUT), OPENING_TIMEOUT_MS))])
    : await network;
  if (response !== TIMED_OUT && response && (response.status < 500 || !kept)) {
    remember(event.resultingClientId, response.headers.get(VERSION_HEADER));
    return response; // the server's own answer (a 404 stays a 404)
  }
  remember(event.resultingClientId, KEPT);
  return kept || (response !== TIMED_OUT && response) || Response.error();
}

/** A file an opening asks for, of the same version as its page. */
async function fileOf(event) {
  const request = event.request;
  const version = openings.get(event.clientId);
  if (version === KEPT) {
    // Not a file of the kept copy (one the page never loads): the network's answer, as for any other address.
    return (await keptCopy(request)) || (await fromNetwork(request)) || Response.error();
  }
  const response = await fromNetwork(request);
  if (response && response.status < 500) return response;
  if (version === VERSION || version === undefined) {
    const kept = await keptCopy(request);
    if (kept) return kept;
  }
  return response || Response.error();
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      // All or nothing, and all of this worker's version: a page kept without one of its modules, or with one of
      // another version (the server updated during the install), would open offline broken. Failing here (offline,
      // the connection dropped) leaves the previous worker and its whole copy; the next update check tries again.
      const responses = await Promise.all(
        FILES.map(async (file) => {
          const response = await fetch(new Request(file, { cache: "no-cache" }));
          if (!keepable(response)) throw new Error(`${file}: ${response.status}`);
          const version = response.headers.get(VERSION_HEADER);
          if (version !== VERSION) throw new Error(`${file}: version ${version}, not ${VERSION}`);
          return [keyOf(file), response];
        }),
      );
      const cache = await caches.open(CACHE);
      try {
        await Promise.all(responses.map(([key, response]) => cache.put(key, response)));
      } catch (error) {
        await caches.delete(CACHE); // a body cut short: no half copy left under this version's name
        throw error;
      }
      // At once, rather than after every tablet page is closed (a tablet's one page may stay open for days). This
      // cannot run an old page with new modules: the page imports all its modules statically, when it loads (no
      // import(): the unit test checks), so a page already open loads no module after it.
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
      // The page that registered the worker is controlled from now on, not from its next opening.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  if (!ownFile(event.request)) return; // the browser's own handling, untouched: the API, other origins, tokens
  event.respondWith(event.request.mode === "navigate" ? opening(event) : fileOf(event));
});
