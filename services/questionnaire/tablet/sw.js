// The tablet page's service worker (scope /tablet/): the page opens even when the tablet is offline.
//
// RE'CONNECT's patients are those whose connection comes and goes. The answers and the send queue already wait in
// localStorage (app.js); what was missing is the page itself when it is opened offline: without this worker the
// browser shows its own error page, and the patient can neither answer nor see that the answers will go later.
//
// What it keeps is one whole version of the page, never a mix: the service puts the page's version (a hash of every
// file below and of this worker, services/questionnaire/tablet_files.py) in this worker's bytes, so a page changed on
// the server is a new worker for the browser's update check; the new worker fetches every file into a cache named by
// that version, all or nothing, each file saying it is of that version (its Tablet-Version header), and once it takes
// over deletes the other caches, but not one a page still open opened from (tidy): that page may be loading its modules
// from it at that very moment. It takes over once the previous worker has no opening under way, and an opening is under
// way until its page has loaded every file (pageLoaded): a worker replaced in the middle of an opening leaves its page
// half loaded. Only the newest worker deletes a copy (newest): the previous one, ending an opening while the new one
// waits, would delete the new copy. Nothing is written into the kept copy afterwards: a file fetched at an opening may
// be of a newer page than the rest of the copy, and a copy of mixed versions (a new app.js importing a name an old
// flow.js lacks) is a dead page offline, for a patient who cannot fix it.
//
// One opening, one version: an opening whose page comes from the kept copy takes every file it asks for from that
// kept copy, whichever worker answers (a new one that took over, this one stopped and started again: the openings
// are written down); one whose page comes from the network takes its files from the network, and a kept copy only if
// the network fails and that copy is the page's version (otherwise the network's error: a new page with an old
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

// Which version each opening (a page, by its client id) runs: the version of the copy its page came from (kept),
// or the version its page from the network said (or null). Written down in IndexedDB, not only in this worker's
// memory: a browser stops an idle worker whenever it likes, and a new worker takes over an open page (skipWaiting),
// so the worker that answers a page's next module may not be the one that answered the page; without it, a page
// opened from the kept copy would get that module from the network, perhaps of a newer page (a mixed page). A client
// id and a version: nothing of the patient. The memory map spares a read for each module of a page this worker
// answered.
const OPENINGS_DB = "oncofollow-tablet";
const OPENINGS = "openings";
const openings = new Map();
const REMEMBERED = 32; // openings remembered in memory at most: a tablet has one page, opened now and then

let database = null;

function openingsDatabase() {
  database ||= new Promise((resolve, reject) => {
    const request = indexedDB.open(OPENINGS_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OPENINGS);
    request.onsuccess = () => {
      const db = request.result;
      // The page deletes the openings when a loan ends (app.js): let it, rather than hold it up until this worker
      // stops; the next one written opens them anew.
      db.onversionchange = () => {
        db.close();
        database = null;
      };
      resolve(db);
    };
    request.onerror = () => reject(request.error);
  }).catch((error) => {
    database = null; // asked again next time (a storage briefly unavailable)
    throw error;
  });
  return database;
}

/** One transaction on the openings: the results of the requests `work` makes of the store, once it is done. */
async function withOpenings(mode, work) {
  const db = await openingsDatabase();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(OPENINGS, mode);
    const requests = [work(transaction.objectStore(OPENINGS))].flat();
    transaction.oncomplete = () => resolve(requests.map((request) => request && request.result));
    transaction.onerror = transaction.onabort = () => reject(transaction.error);
  });
}

function keepInMemory(clientId, opened) {
  openings.set(clientId, opened);
  for (const oldest of openings.keys()) {
    if (openings.size <= REMEMBERED) break;
    openings.delete(oldest);
  }
}

/** Writes down which version an opening runs (`kept`: from the kept copy of that version). */
async function remember(clientId, version, kept) {
  if (!clientId) return;
  const opened = { version, kept };
  keepInMemory(clientId, opened);
  try {
    await withOpenings("readwrite", (store) => store.put(opened, clientId));
  } catch {
    // No storage: this worker still knows it (memory), as it did before the openings were written down.
  }
}

/** Which version an opening runs, or undefined for one no worker answered (the enrolment's, before the worker). */
async function openingOf(clientId) {
  if (!clientId) return undefined;
  if (openings.has(clientId)) return openings.get(clientId);
  try {
    const [opened] = await withOpenings("readonly", (store) => store.get(clientId));
    if (opened) keepInMemory(clientId, opened);
    return opened;
  } catch {
    return undefined;
  }
}

/**
 * Forgets the openings of pages no longer open, and deletes every kept copy but this worker's and those an open page
 * runs: a page opened from an older copy may still be loading its modules from it when a new worker takes over, and
 * is a dead page if that copy goes under it. Done when this worker takes over and at each opening (whose own client,
 * `opening`, is not yet among the browser's clients), so an older copy goes at the first of them after its last page
 * closed; the copies are deleted by the newest worker only (newest).
 */
async function tidy(opening) {
  const open = new Set((await self.clients.matchAll({ type: "window", includeUncontrolled: true })).map((c) => c.id));
  if (opening) open.add(opening);
  let written = [];
  try {
    const [ids, versions] = await withOpenings("readonly", (store) => [store.getAllKeys(), store.getAll()]);
    written = ids.map((id, i) => [id, versions[i]]);
  } catch {
    // No storage: what this worker knows.
  }
  const used = new Set([VERSION]);
  const closed = [];
  for (const [id, opened] of [...written, ...openings]) {
    if (open.has(id)) used.add(opened.version);
    else closed.push(id);
  }
  for (const id of closed) openings.delete(id);
  // A page gone before it said it loaded (reopened, closed) is no longer an opening under way.
  for (const [id, done] of loading) if (!open.has(id) && !(await self.clients.get(id))) done();
  if (closed.length)
    await withOpenings("readwrite", (store) => closed.map((id) => store.delete(id))).catch(() => null);
  for (const name of await caches.keys())
    if (name.startsWith(PREFIX) && !used.has(name.slice(PREFIX.length)) && newest()) await caches.delete(name);
}

/**
 * Whether this worker is the page's newest: the active one, no newer one installing or installed and waiting to take
 * over. Only the newest deletes a copy: a newer worker may install while this one is still answering an opening (the
 * browser's update check at that very opening), and waits for it to end before taking over; this one, tidying at the
 * end of that opening, would otherwise delete the newer one's copy, which it does not know of, and once the pages
 * opened from its own copy closed, the tablet would be left with no copy at all.
 */
function newest() {
  const { installing, waiting, active } = self.registration;
  // self.serviceWorker is this worker; a browser without it (an older one) is taken at the registration's word.
  return !installing && !waiting && active === (self.serviceWorker ?? active);
}

/** A file of the copy kept of a version (this worker's by default), or undefined. */
async function keptCopy(request, version = VERSION) {
  // caches.match, not caches.open: asking a copy already deleted must not make an empty one of that name.
  const cacheName = `${PREFIX}${version}`;
  const kept = await caches.match(keyOf(request.url), { cacheName });
  // A navigation to another address of the page (index.html) opens the page kept at its start address.
  return kept || (request.mode === "navigate" ? await caches.match(keyOf(SCOPE), { cacheName }) : undefined);
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

// The page says so to its worker once every file of its opening has loaded, or failed (opening.js, at the window's
// load).
const PAGE_LOADED = "page loaded";
// How long an opening waits for it at most: a page that never says so (opening.js itself did not load, the browser
// showed its own error page) keeps a new worker from taking over no longer; nor does one gone meanwhile (tidy). From
// the kept copy the page loads within a second; from a weak 3G network, within seconds.
const LOADING_MS = 30000;
// Openings this worker answered whose page has not said yet that it loaded: what ends their wait, by client id.
const loading = new Map();

/**
 * Until the page of an opening has loaded every file (or LOADING_MS). The browser lets a new worker take over only
 * once this one has no event under way, and then stops this one at once: a page still loading its files from it has
 * them fail (net::ERR_FAILED, a dead page), and one answered but not yet started is, in Chromium, a page no worker
 * controls until the new one claims it, whose first files come from the network (perhaps of a newer page: a mix;
 * offline, none). Its opening under way until then, no new worker takes over in the middle of it.
 */
function pageLoaded(clientId) {
  if (!clientId) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      loading.delete(clientId);
      resolve();
    };
    const timer = setTimeout(done, LOADING_MS);
    loading.set(clientId, done);
  });
}

self.addEventListener("message", (event) => {
  if (event.data === PAGE_LOADED && event.source) loading.get(event.source.id)?.();
});

/** An opening: the network's page, or the kept copy's when the network fails or is too slow. */
async function opening(event) {
  const kept = await keptCopy(event.request);
  const network = fromNetwork(event.request);
  const response = kept
    ? await Promise.race([network, new Promise((resolve) => setTimeout(() => resolve(TIMED_OUT), OPENING_TIMEOUT_MS))])
    : await network;
  const fromKept = !(response !== TIMED_OUT && response && (response.status < 500 || !kept));
  const id = event.resultingClientId;
  // Written down before the worker may stop, and the older copies no open page runs deleted, without delaying the page;
  // and the opening under way until its page has loaded every file.
  event.waitUntil(
    Promise.allSettled([
      remember(id, fromKept ? VERSION : response.headers.get(VERSION_HEADER), fromKept).then(() => tidy(id)),
      pageLoaded(id),
    ]),
  );
  if (!fromKept) return response; // the server's own answer (a 404 stays a 404)
  return kept || (response !== TIMED_OUT && response) || Response.error();
}

/** A file an opening asks for, of the same version as its page. */
async function fileOf(event) {
  const request = event.request;
  const opened = await openingOf(event.clientId);
  if (opened && opened.kept) {
    // Not a file of the kept copy (one the page never loads): the network's answer, as for any other address.
    return (await keptCopy(request, opened.version)) || (await fromNetwork(request)) || Response.error();
  }
  const response = await fromNetwork(request);
  if (response && response.status < 500) return response;
  // The network failed: a copy kept of the page's version, if there is one (this worker's, for a page it never saw).
  const version = opened ? opened.version : VERSION;
  const kept = version ? await keptCopy(request, version) : undefined;
  return kept || response || Response.error();
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
      // At once (once no opening is under way: pageLoaded), rather than after every tablet page is closed (a tablet's
      // one page may stay open for days). This cannot run an old page with new modules: the page imports all its
      // modules statically, when it loads (no import(): the unit test checks), so a page already open loads no module
      // after it.
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      // The older copies, but not one a page still open runs (it may be loading its modules from it right now).
      await tidy();
      // The page that registered the worker is controlled from now on, not from its next opening.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  if (!ownFile(event.request)) return; // the browser's own handling, untouched: the API, other origins, tokens
  event.respondWith(event.request.mode === "navigate" ? opening(event) : fileOf(event));
});
