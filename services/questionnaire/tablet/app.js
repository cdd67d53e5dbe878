// The patient's tablet (RE'CONNECT): answer the symptom questionnaire, write to the team, see that they were read.
//
// Same origin as the questionnaire service's API, so no CORS and no address to configure. The fleet page's link
// carries a one-time code in the address's fragment (/tablet/#enrol=…, which no server or log ever sees), exchanged
// once at the devices service for the device token (or, from an older link, the token itself, #device_token=…);
// the token is kept in localStorage: nothing for the patient to remember. Everything the patient gives is kept in localStorage until
// the service has it (a draft, then a queue), and each send keeps its Idempotency-Key for every retry, so a
// reload, a closed tab or a dropped connection loses nothing and sends nothing twice.

import {
  DEFAULT_QUESTIONNAIRE,
  evaluate,
  flatten,
  isQuestion,
  mustAnswer,
  newKey,
  numberBounds,
  questionnaireResponse,
  refusedLinkId,
  responseItems,
} from "../web/questionnaire_form.js";
import { h } from "../web/page.js";
import {
  groupOf,
  keptForAsked,
  nextScreen,
  previousScreen,
  progress,
  reviewSections,
  reviewToCheck,
  startEdit,
  whoAnswers,
  whoChosen,
} from "./flow.js";
import { REQUEST_TIMEOUT_MS, answersRefused, giveUpAfter, retryDelay, sendAgain } from "./sending.js";

const STORE = "oncofollow.tablet.";
const POLL_MS = 20_000; // a tablet follows its last two sends: two small reads every 20 s while they are pending
const MESSAGE_MAX = 2000; // the service's limit (POST /v1/messages)
// A photo is scaled down here before it is kept and sent: a camera's 12 Mpx JPEG of several MB becomes about 300 kB,
// which the queue in localStorage (5 MB) can hold while the network is away. The server re-encodes it anyway: that,
// not this, is what strips the photo's metadata.
const PHOTO_SIDE = 2048;
const PHOTO_QUALITY = 0.85;
const THUMB_SIDE = 240;
const EMERGENCY = "En cas d'urgence, appelez le 15.";
// The words of the emergency sentence kept on one line (tablet.css's .keep-together), in whatever sentence says them:
// ours, or the service's notice after a send.
const CALL_15 = /(appelez le 15\.?)/;
const RELATIVE_SOURCE = "RelatedPerson/relative";

// --- storage -------------------------------------------------------------------------------------

function load(name, fallback = null) {
  try {
    const raw = localStorage.getItem(STORE + name);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function save(name, value) {
  if (value === null || value === undefined) localStorage.removeItem(STORE + name);
  else localStorage.setItem(STORE + name, JSON.stringify(value));
}

// What stays on the tablet from one loan to the next: the team's number, the deployment's (config.json's, the same for
// every tablet and every patient), kept for a tablet that opens offline on « pas encore prête » with whom to call.
const KEPT_ACROSS_LOANS = new Set([`${STORE}teamPhone`]);
// What stays once a loan ends, until the next one starts: the text size chosen. The screen that says the loan ended is
// read by the patient who chose it, there and then and at each opening until she hands the tablet back: at the default
// size, a patient at 200 % could not read why the tablet no longer works, nor « appelez le 15 ». The next patient's
// loan starts with an enrolment, which forgets it. So is what the loan's end left unsent (`loanEnd`: which kinds, never
// what they said), so that the screen says it again at each opening until then.
const KEPT_UNTIL_NEXT_LOAN = new Set([`${STORE}textSize`, `${STORE}loanEnd`]);
// The worker's record of which version each opening runs (sw.js's OPENINGS_DB): client ids and versions only, but a
// trace of this tablet's use by the patient, so it goes with the rest; the worker starts a new one at the next opening.
const OPENINGS_DB = "oncofollow-tablet";

/**
 * A new loan starts clean, and a refused token means the loan ended: everything this tablet kept of the patient goes
 * with it, the text size chosen too when a new loan starts (comfort.js then shows the default at once), not when the
 * loan ended (`loanEnded`: KEPT_UNTIL_NEXT_LOAN). The page's own files stay in the worker's copy: they are the same
 * for every patient.
 */
function forgetEverything({ loanEnded = false } = {}) {
  const kept = (key) => KEPT_ACROSS_LOANS.has(key) || (loanEnded && KEPT_UNTIL_NEXT_LOAN.has(key));
  for (const key of Object.keys(localStorage)) if (key.startsWith(STORE) && !kept(key)) localStorage.removeItem(key);
  forgetOpenings();
  document.dispatchEvent(new Event("tablet-forgotten"));
}

/**
 * Deletes the worker's record of openings, once every file of this opening has loaded: until then the worker may need
 * it to answer them with the same version as the page (sw.js, one opening, one version). The worker lets the
 * deletion through (it closes its connection when asked).
 */
function forgetOpenings() {
  const forget = () => {
    try {
      indexedDB.deleteDatabase(OPENINGS_DB);
    } catch {
      // no IndexedDB here (a private window's policy): nothing was written in it either
    }
  };
  if (document.readyState === "complete") forget();
  else window.addEventListener("load", forget, { once: true });
}

/**
 * What the fleet manager opened the page with, taken out of the address at once: a one-time code (#enrol=…), kept
 * with the Idempotency-Key of its exchange until the exchange is answered (a reload mid-exchange asks again with the
 * same key, which the devices service answers again for 2 minutes); or a token (#device_token=…), kept.
 */
function takeTokenFromAddress() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = fragment.get("device_token");
  const code = fragment.get("enrol");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  if (code && code.trim()) {
    save("enrolment", { code: code.trim(), key: newKey("enrol") });
  } else if (token) {
    forgetEverything(); // a new loan starts clean, whatever the last one left
    save("token", token.trim());
  }
}

// The action first, then why: a patient who reads with difficulty may stop after the first sentence.
const ASK_NEW_CODE = "Demandez un nouveau code à la personne qui vous a prêté la tablette.";
const ENROLMENT_REFUSED = {
  "code-used": `${ASK_NEW_CODE} Ce code a déjà servi.`,
  "code-expired": `${ASK_NEW_CODE} Ce code n'est plus valable.`,
  "unknown-code": `${ASK_NEW_CODE} Ce code ne marche pas. Le lien est peut-être incomplet, ou il existe un code plus récent.`,
  "loan-ended": "Parlez à la personne qui vous a prêté la tablette. Ce code était pour un prêt qui est terminé.",
};

/**
 * Where the tablets reach the devices service (DEVICES_PUBLIC_URL): null when none, undefined when unknown (offline,
 * or given up: `signal`, giveUpAfter's).
 */
async function devicesAddress(signal) {
  try {
    const config = await (await fetch("config.json", { cache: "no-store", signal })).json();
    return typeof config.devices_url === "string" ? config.devices_url.replace(/\/+$/, "") : null;
  } catch {
    return undefined;
  }
}

const UNREACHED = "Vérifiez le Wi-Fi, puis rouvrez cette page. La tablette n'arrive pas à se connecter.";

/**
 * Exchanges the code kept by takeTokenFromAddress for the device token at the devices service (no token: the code
 * is the credential). True once the token is kept; false with the setup page saying why (kept for another try only
 * when the network failed or the exchange was given up).
 *
 * One time-out for the whole exchange, config.json's read included: the fleet manager watching the tablet is told
 * within it that the tablet could not connect (on a captive Wi-Fi the page showed nothing for minutes). The code is
 * kept with its key, which the devices service answers with the token again for 2 minutes: trying again at once is
 * harmless, whatever the exchange given up did on its way.
 */
async function enrolWithCode() {
  // A slow exchange (a mobile line, up to the time-out) says what is under way rather than leaving the page blank; a
  // quick one is over before the sentence would show.
  const preparing = setTimeout(() => enrolmentSays(PREPARING), 1_000);
  try {
    return await giveUpAfter(REQUEST_TIMEOUT_MS, (signal) => exchangeCode(load("enrolment"), signal));
  } finally {
    clearTimeout(preparing);
  }
}

const PREPARING = "La tablette se prépare. Cela peut prendre quelques secondes.";

async function exchangeCode(pending, signal) {
  const devicesUrl = await devicesAddress(signal);
  if (devicesUrl === undefined) {
    enrolmentSays(UNREACHED);
    return false;
  }
  if (!devicesUrl) {
    save("enrolment", null);
    enrolmentSays(
      "Demandez le lien complet à la personne qui vous a prêté la tablette. Cette page ne peut pas utiliser ce code.",
    );
    return false;
  }
  let response;
  try {
    response = await fetch(`${devicesUrl}/v1/enrolments`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": pending.key },
      body: JSON.stringify({ code: pending.code }),
      cache: "no-store",
      credentials: "omit",
      signal,
    });
  } catch {
    enrolmentSays(UNREACHED); // the code kept, with its key: the next try may be answered with the token again
    return false;
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    if (signal.aborted) {
      enrolmentSays(UNREACHED); // the answer stalled half-way: as if it never came, the code kept
      return false;
    }
    body = null;
  }
  if (response.ok && body && typeof body.device_token === "string") {
    forgetEverything(); // a new loan starts clean, whatever the last one left (the code goes with it)
    save("token", body.device_token);
    return true;
  }
  if (response.status >= 500) {
    enrolmentSays("Rouvrez cette page dans quelques minutes. Le suivi ne répond pas pour le moment.");
    return false;
  }
  save("enrolment", null);
  const type = body && typeof body.type === "string" ? body.type.split("/").pop() : "";
  enrolmentSays(ENROLMENT_REFUSED[type] || `${ASK_NEW_CODE} Ce code n'a pas permis de préparer la tablette.`);
  return false;
}

// --- the API -------------------------------------------------------------------------------------

class TokenRefused extends Error {}

// A request that hangs is given up like one that failed (giveUpAfter): what it sent waits and is tried again under the
// same key (the service answers a retry as it answered the first), instead of being said « La tablette envoie… »
// until the browser gives up, minutes later. A photo takes longer on a slow line.
const UPLOAD_TIMEOUT_MS = 120_000;

/** One request to the service: {status, body}, or a thrown error when the network failed or the request hung. */
async function call(method, path, { body, key, fhir = false, file = null } = {}) {
  const token = load("token");
  if (!token) throw new TokenRefused();
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (file) headers["Content-Type"] = file.type;
  else if (body !== undefined) headers["Content-Type"] = fhir ? "application/fhir+json" : "application/json";
  if (key) headers["Idempotency-Key"] = key;
  const { response, parsed } = await giveUpAfter(file ? UPLOAD_TIMEOUT_MS : REQUEST_TIMEOUT_MS, async (signal) => {
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers,
        body: file || (body === undefined ? undefined : JSON.stringify(body)),
        cache: "no-store",
        signal,
      });
    } catch (error) {
      reached(false);
      throw error;
    }
    try {
      return { response: answer, parsed: await answer.json() };
    } catch (error) {
      if (signal.aborted) {
        // The answer stalled half-way: as if it never came, so the send is tried again rather than taken as done.
        reached(false);
        throw error;
      }
      return { response: answer, parsed: null };
    }
  });
  reached(true);
  if (response.status === 401) {
    tokenRefused();
    throw new TokenRefused();
  }
  return { status: response.status, body: parsed };
}

const LOAN_ENDED = "Elle n'est plus reliée à votre suivi. Elle a peut-être été rendue ou remplacée.";

/**
 * The loan ended: what the queue still held (answers or a message the patient was told would be sent, the one being
 * sent among them) goes with everything else, since no token may send it now. The patient is told which, and whom to
 * call with it: believing the team has her answers, she would wait for a call that cannot come.
 */
function tokenRefused() {
  const queue = load("outbox", []);
  const unsent = ["submission", "message"].filter((kind) => queue.some((entry) => entry.kind === kind));
  forgetEverything({ loanEnded: true });
  save("loanEnd", { unsent });
  showSetup(LOAN_ENDED, unsent);
}

const UNSENT = {
  submission: "Vos dernières réponses n'ont pas été envoyées.",
  message: "Votre dernier message n'a pas été envoyé.",
  both: "Vos dernières réponses et votre message n'ont pas été envoyés.",
};

async function questionnaireDefinition({ fresh = false } = {}) {
  const cached = load("definition");
  if (cached && !fresh) return cached;
  try {
    const { status, body } = await call("GET", `/v1/questionnaires/${encodeURIComponent(DEFAULT_QUESTIONNAIRE)}`);
    if (status === 200 && body) {
      save("definition", body);
      return body;
    }
  } catch (error) {
    if (error instanceof TokenRefused) throw error;
  }
  return cached; // offline: the copy kept from the last time
}

// --- screens -------------------------------------------------------------------------------------

const $ = (selector) => document.querySelector(selector);

function show(id) {
  for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== id;
  document.body.dataset.screen = id;
  if (id !== "screen-setup") {
    // What the sent screen said in their place comes back elsewhere: the notice, and the send waiting in the queue.
    renderNotice();
    renderQueue();
  }
  window.scrollTo(0, 0);
  const heading = document.getElementById(id).querySelector("h1, legend");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

/**
 * The setup screen with why the tablet is not ready. `enrolment`: it speaks of a code being exchanged, or of why one
 * was not (a new code to ask for, the Wi-Fi to check, the page to open again): whoever holds the tablet is preparing
 * it, so the screen does not say there is nothing to do on it and the team will prepare it.
 */
function showSetup(reason, unsent = [], { enrolment = false } = {}) {
  if (reason) $("#setup-reason").textContent = reason;
  $("#screen-setup").toggleAttribute("data-enrolment", enrolment);
  const said = unsent.length > 1 ? UNSENT.both : UNSENT[unsent[0]];
  $("#setup-unsent-what").textContent = said || "";
  $("#setup-unsent").hidden = !said;
  $("#queue-banner").hidden = true;
  $("#refused-banner").hidden = true;
  show("screen-setup");
}

function enrolmentSays(reason) {
  showSetup(reason, [], { enrolment: true });
}

/**
 * What the patient must do about something given back (answers or a message the service refused, a questionnaire
 * that could not be loaded): kept, even across a reload, until the patient goes back to it.
 */
function setNotice(kind, text) {
  save("notice", text ? { kind, text } : null);
  renderNotice();
}

function clearNotice(...kinds) {
  const notice = load("notice");
  if (notice && kinds.includes(notice.kind)) setNotice(null, null);
}

function renderNotice() {
  const notice = load("notice");
  const banner = $("#refused-banner");
  banner.textContent = notice ? notice.text : "";
  // The sent screen already says it: the same sentence twice would read as two problems.
  const saidBelow = document.body.dataset.screen === "screen-sent" && notice && $("#sent-status").textContent === notice.text;
  banner.hidden = !notice || saidBelow;
}

// Whether the service answered the last request: a tablet on a Wi-Fi without internet says it is online.
let serviceReached = true;

function reached(yes) {
  if (yes === serviceReached) return;
  serviceReached = yes;
  renderQueue();
}

/**
 * What the queue waits for, rather than being sent at this moment (null). The connection ("connection"): the tablet
 * offline, the service not reached by the last request (no network, a Wi-Fi without internet, a request that hung),
 * or the last send failed so. The service ("service"): the last send was answered, but told to wait (a 503 during a
 * database restart or when it is busy, a proxy's 502 or 504, a 500, 408, 429) while the network works; « dès que la
 * connexion reviendra » had the patient fiddle with a Wi-Fi that was fine, or call someone about it. When both
 * happened, the latest news says which: the network lost since (an `offline` event, or any request that fails to
 * reach the service) is the connection; a send answered since, the service. Either lasts until a send gets through or
 * the connection comes back (`failures`). A retry in flight after a failure still waits: nothing yet says the
 * connection is back, and the screens would switch sentences at every retry. A send in flight otherwise is being sent:
 * on a slow mobile connection that lasts seconds, in which « dès que la connexion reviendra » told the patient the
 * tablet waited for a connection it had.
 */
function waitingFor() {
  if (!navigator.onLine || !serviceReached) return "connection";
  if (failures > 0) return serviceBusy ? "service" : "connection";
  return null;
}

// Until when what waits is kept, in the words of what it waits for (waitingFor). « Le suivi », as the enrolment's
// « Le suivi ne répond pas pour le moment » and the loan's « reliée à votre suivi » call the hospital's service.
const UNTIL = {
  connection: "dès que la connexion reviendra",
  service: "dès que le suivi répondra",
};

/** What every screen says of the queue: the banner, the sent screen's status, home's list. */
function renderQueue() {
  renderQueueBanner();
  renderSentStatus();
  if (document.body.dataset.screen === "screen-home") renderStatus();
}

const OFFLINE =
  "Pas de connexion pour l'instant. Vous pouvez quand même répondre. Vos réponses seront envoyées dès que la connexion reviendra.";

/**
 * What waits, and until when (waitingFor). On the screen after a send that waits, its status says it (« Vos
 * réponses seront envoyées dès que la connexion reviendra. Elles sont gardées. … »): the banner above saying it again
 * had the patient read the same sentence twice. There the banner speaks only of what else waits (a message under
 * answers just sent), or says nothing. What is being sent, it does not speak of: nothing for the patient to do or to
 * know meanwhile, and where she looks for it (the screen after the send, home's list) says « La tablette envoie… »; a
 * banner saying it too would be read twice on home, and announced (role "status") at every send.
 */
function renderQueueBanner() {
  const outbox = load("outbox", []);
  const saidBelow = document.body.dataset.screen === "screen-sent" && outbox.find((entry) => entry.key === sentKey);
  const queue = outbox.filter((entry) => !saidBelow || entry.kind !== saidBelow.kind);
  const banner = $("#queue-banner");
  if (!load("token")) {
    banner.hidden = true;
    return;
  }
  if (!queue.length) {
    // Opened offline (the page kept by sw.js) with nothing waiting: a calm sentence, not silence. Not under a sent
    // screen whose send waits: its status says the connection is away.
    banner.textContent = OFFLINE;
    banner.hidden = Boolean(saidBelow) || (navigator.onLine && serviceReached);
    return;
  }
  const waiting = waitingFor();
  if (!waiting || document.body.dataset.screen === "screen-home") {
    // Home's list says each send that waits, in the same words: the banner saying them too was read twice.
    banner.hidden = true;
    return;
  }
  const answers = queue.some((entry) => entry.kind === "submission");
  const messages = queue.some((entry) => entry.kind === "message");
  banner.textContent =
    answers && messages
      ? `Vos réponses et votre message seront envoyés ${UNTIL[waiting]}.`
      : QUEUED_ON_HOME[answers ? "submission" : "message"].queued(UNTIL[waiting]);
  banner.hidden = false;
}

// --- home ----------------------------------------------------------------------------------------

function showHome() {
  $("#start-questionnaire").textContent = load("draft") ? "Reprendre le questionnaire" : "Répondre au questionnaire";
  renderStatus();
  show("screen-home");
  refreshStatus();
}

// What home's list (and the banner) says of a queued send: being sent, or waiting, until when (waitingFor, UNTIL).
const QUEUED_ON_HOME = {
  submission: {
    sending: "La tablette envoie vos réponses…",
    queued: (until) => `Vos réponses seront envoyées ${until}.`,
  },
  message: {
    sending: "La tablette envoie votre message…",
    queued: (until) => `Votre message sera envoyé ${until}.`,
  },
};

function renderStatus() {
  const list = $("#status-list");
  list.replaceChildren();
  const last = load("last", {});
  const queue = load("outbox", []);
  if (load("draft")) list.append(h("li", { dataset: { status: "draft" } }, "Vous avez un questionnaire commencé."));
  const waiting = waitingFor();
  const queued = waiting ? "queued" : "sending";
  const said = (kind) => (waiting ? QUEUED_ON_HOME[kind].queued(UNTIL[waiting]) : QUEUED_ON_HOME[kind].sending);
  if (queue.some((e) => e.kind === "submission"))
    list.append(h("li", { dataset: { status: queued } }, said("submission")));
  else if (last.submission)
    list.append(h("li", { dataset: { status: `submission-${last.submission.status}` } }, last.submission.label));
  if (queue.some((e) => e.kind === "message"))
    list.append(h("li", { dataset: { status: `message-${queued}` } }, said("message")));
  else if (last.message) {
    const item = h("li", { dataset: { status: `message-${last.message.status}` } }, last.message.label);
    if (last.message.thumb)
      item.append(h("img", { class: "status-photo", src: last.message.thumb, alt: "La photo envoyée avec votre message" }));
    list.append(item);
  }
  if (!list.children.length) list.append(h("li", null, "Vous n'avez encore rien envoyé avec cette tablette."));
}

let refreshing = false;

/** Where the last answers and the last message are; final once a nurse has seen them. */
async function refreshStatus() {
  if (refreshing || !load("token")) return;
  refreshing = true;
  try {
    const last = load("last", {});
    for (const [kind, path] of [
      ["submission", "/v1/submissions/"],
      ["message", "/v1/messages/"],
    ]) {
      const entry = last[kind];
      if (!entry || entry.status === "seen") continue;
      const { status, body } = await call("GET", path + encodeURIComponent(entry.id));
      if (status === 200 && body) {
        const now = load("last", {});
        if (now[kind] && now[kind].id === entry.id) {
          now[kind] = { ...now[kind], status: body.status, label: body.status_label };
          save("last", now);
        }
      }
    }
  } catch {
    // offline or refused: the next round, or tokenRefused, says so
  } finally {
    refreshing = false;
  }
  if (document.body.dataset.screen === "screen-home") renderStatus();
}

// --- the questionnaire ---------------------------------------------------------------------------

let definition = null;
let flat = [];

function draftState(draft) {
  return evaluate(flat, (item) => draft.answers[item.linkId] || []);
}

function questions() {
  return flat.filter(({ item }) => isQuestion(item)).map(({ item }) => item);
}

const QUESTIONNAIRE_NOT_REACHED =
  "Vérifiez que la tablette est connectée à internet, puis réessayez. Le questionnaire n'a pas pu s'ouvrir.";
const QUESTIONNAIRE_NOT_SERVED =
  "Réessayez dans quelques minutes. Le questionnaire n'a pas pu s'ouvrir : le suivi ne répond pas pour le moment.";

async function startQuestionnaire() {
  let draft = load("draft");
  const fetched = await questionnaireDefinition({ fresh: !draft });
  if (!fetched) {
    // The service answered (a 503 while its database restarts): the Wi-Fi is not what to check.
    setNotice("load", navigator.onLine && serviceReached ? QUESTIONNAIRE_NOT_SERVED : QUESTIONNAIRE_NOT_REACHED);
    return;
  }
  definition = fetched;
  flat = flatten(definition.item);
  if (!draft || draft.canonical !== `${definition.url}|${definition.version}`) {
    // One key for the whole draft, made now: every retry of its send carries it, so the service stores it once.
    draft = {
      key: newKey("tablet"),
      canonical: `${definition.url}|${definition.version}`,
      source: null,
      answers: draft ? keptAnswers(draft.answers) : {},
      at: "who",
      editing: null,
      startedAt: new Date().toISOString(),
    };
    save("draft", draft);
  }
  clearNotice("load", "submission");
  goTo(draft.at);
}

/** The answers of an earlier draft that the questionnaire (perhaps a new version) still asks. */
function keptAnswers(answers) {
  const asked = new Set(questions().map((item) => item.linkId));
  return Object.fromEntries(Object.entries(answers || {}).filter(([linkId]) => asked.has(linkId)));
}

function goTo(at) {
  const draft = load("draft");
  draft.at = at;
  if (at === "review") draft.editing = null; // an edit from the review ends there
  save("draft", draft);
  if (at === "who") {
    // A change from the review (who answers; or a question's, that an earlier page of the tablet left here): its way
    // back, as elsewhere.
    $("#who-back-to-review").hidden = !draft.editing;
    renderWho(draft);
    show("screen-who");
  } else if (at === "review") renderReview(draft);
  else {
    const item = questions().find((q) => q.linkId === at);
    if (!item) return goTo("review");
    renderQuestion(draft, item);
  }
}

/** The "who answers" screen, the choice made shown as a question's chosen answer is (checked, and ticked). */
function renderWho(draft) {
  const chosen = whoChosen(draft.source, draft.editing);
  const choices = $("#who-choices");
  // Before any choice, the patient's own stays the first, primary button; after one, only the chosen is filled.
  if (chosen) choices.dataset.chosen = chosen;
  else delete choices.dataset.chosen;
  for (const button of choices.querySelectorAll("[data-source]"))
    button.setAttribute("aria-checked", String(button.dataset.source === chosen));
}

function choose(source) {
  const draft = load("draft");
  draft.source = source;
  save("draft", draft);
  goTo(nextScreen(flat, draft.answers, null, draft.editing));
}

/** "Modifier" on the review: that question, then back to the review (flow.js says what is asked in between). */
function edit(linkId) {
  const draft = load("draft");
  draft.editing = startEdit(flat, draft.answers, linkId);
  save("draft", draft);
  goTo(linkId);
}

/** "Modifier : qui répond" on the review: the first screen, then straight back to the review. */
function editWho() {
  const draft = load("draft");
  draft.editing = startEdit(flat, draft.answers, "who");
  save("draft", draft);
  goTo("who");
}

/** "Retour à mes réponses": the answers as they were when "Modifier" was touched, and the review. */
function backToReview() {
  const draft = load("draft");
  if (draft.editing) draft.answers = draft.editing.before;
  save("draft", draft);
  goTo("review");
}

function answerLabel(item, values) {
  if (!values || !values.length) return "Pas de réponse";
  const value = values[0];
  if (item.type === "choice") {
    const option = (item.answerOption || []).find((o) => o.valueCoding && o.valueCoding.code === value.code);
    return option ? option.valueCoding.display || value.code : value.code;
  }
  if (item.type === "boolean") return value ? "Oui" : "Non";
  if (typeof value === "number") {
    const { unit } = numberBounds(item);
    return `${String(value).replace(".", ",")}${unit ? ` ${unit}` : ""}`;
  }
  return String(value);
}

function renderQuestion(draft, item) {
  const group = groupOf(flat, item.linkId);
  $("#question-group").textContent = group ? group.text || "" : "";
  $("#question-text").textContent = item.text || item.linkId;
  $("#question-error").hidden = true;
  // How far along, among the questions the answers so far open: the patient sees the end coming (questionnaire
  // fatigue is why patients stop answering). A bar, not "3 sur 11", since an answer can open more questions.
  const bar = $("#question-progress");
  const { value, max } = progress(flat, draft.answers, item.linkId, draft.editing);
  bar.max = max;
  bar.value = value;
  // While editing from the review, a way back to it without walking forward (for a question opened by mistake).
  $("#back-to-review").hidden = !draft.editing;
  $("#edit-hint").hidden = !draft.editing;
  // The question a refusal pointed at says why it is asked again, until it is answered again ("Suivant").
  const refusedHere = draft.refused === item.linkId;
  $("#question-refused").hidden = !refusedHere;
  // On the question changed, "Précédent" would lead where "Retour à mes réponses" does: one button, not two.
  $('#question-form [data-action="previous"]').hidden =
    previousScreen(flat, draft.answers, item.linkId, draft.editing) === "review";
  const form = $("#question-form");
  form.dataset.linkId = item.linkId;
  form.dataset.type = item.type;
  const answers = $("#question-answers");
  answers.replaceChildren();
  const current = draft.answers[item.linkId] || [];
  if (item.type === "choice" || item.type === "boolean") {
    const options =
      item.type === "boolean"
        ? [
            { label: "Oui", value: true },
            { label: "Non", value: false },
          ]
        : (item.answerOption || [])
            .filter((o) => o.valueCoding)
            .map((o) => ({
              label: o.valueCoding.display || o.valueCoding.code,
              value: { system: o.valueCoding.system, code: o.valueCoding.code },
            }));
    answers.setAttribute("role", "radiogroup");
    answers.setAttribute("aria-labelledby", "question-text");
    if (refusedHere) answers.setAttribute("aria-describedby", "question-refused");
    else answers.removeAttribute("aria-describedby");
    for (const option of options) {
      const checked = current.length > 0 && JSON.stringify(current[0]) === JSON.stringify(option.value);
      const button = h("button", { type: "button", class: "option", role: "radio", "aria-checked": String(checked) }, option.label);
      button.addEventListener("click", () => {
        const now = load("draft");
        now.answers[item.linkId] = [option.value];
        save("draft", now);
        for (const other of answers.querySelectorAll(".option")) other.setAttribute("aria-checked", String(other === button));
        $("#question-error").hidden = true;
      });
      answers.append(button);
    }
  } else {
    answers.removeAttribute("role");
    answers.removeAttribute("aria-describedby");
    const { min, max, unit } = numberBounds(item);
    const numeric = item.type === "decimal" || item.type === "integer";
    const input = h("input", {
      type: "text",
      id: "question-input",
      inputmode: numeric ? "decimal" : "text",
      autocomplete: "off",
      "aria-labelledby": "question-text",
      "aria-describedby": refusedHere ? "question-refused" : null,
      dataset: numeric ? { min: min ?? "", max: max ?? "" } : {},
    });
    input.value = current.length ? String(current[0]).replace(".", numeric ? "," : ".") : "";
    answers.append(numeric ? h("span", { class: "number-answer" }, input, unit ? ` ${unit}` : null) : input);
  }
  const next = form.querySelector('[data-action="next"]');
  next.textContent = mustAnswer(item) ? "Suivant" : "Suivant (ou passer)";
  show("screen-question");
}

/** Reads a typed answer into the draft; a sentence for the patient when it cannot be one. */
function readTyped(item) {
  const input = $("#question-input");
  if (!input) return null;
  const draft = load("draft");
  const text = input.value.trim();
  if (!text) {
    delete draft.answers[item.linkId];
    save("draft", draft);
    return null;
  }
  if (item.type === "decimal" || item.type === "integer") {
    const value = Number(text.replace(",", "."));
    const { min, max, unit } = numberBounds(item);
    const u = unit ? ` ${unit}` : "";
    if (!Number.isFinite(value) || (item.type === "integer" && !Number.isInteger(value)))
      return item.type === "integer" ? "Écrivez un nombre entier." : "Écrivez un nombre, par exemple 38,5.";
    if ((min !== null && value < min) || (max !== null && value > max)) {
      const fmt = (n) => String(n).replace(".", ",");
      if (min !== null && max !== null) return `Écrivez un nombre entre ${fmt(min)} et ${fmt(max)}${u}.`;
      return min !== null ? `Écrivez un nombre d'au moins ${fmt(min)}${u}.` : `Écrivez un nombre d'au plus ${fmt(max)}${u}.`;
    }
    draft.answers[item.linkId] = [value];
  } else draft.answers[item.linkId] = [text];
  save("draft", draft);
  return null;
}

function questionNext(event) {
  event.preventDefault();
  const item = questions().find((q) => q.linkId === $("#question-form").dataset.linkId);
  if (!item) return;
  const problem = readTyped(item);
  const error = $("#question-error");
  if (problem) {
    error.textContent = problem;
    error.hidden = false;
    return;
  }
  const draft = load("draft");
  if (mustAnswer(item) && !(draft.answers[item.linkId] || []).length) {
    error.textContent = "Choisissez une réponse pour continuer.";
    error.hidden = false;
    return;
  }
  draft.answers = keptForAsked(flat, draft.answers);
  if (draft.refused === item.linkId) draft.refused = null; // answered again: no longer the one to check
  save("draft", draft);
  goTo(nextScreen(flat, draft.answers, item.linkId, draft.editing));
}

function questionPrevious() {
  const linkId = $("#question-form").dataset.linkId;
  const item = questions().find((q) => q.linkId === linkId);
  if (item && (item.type === "decimal" || item.type === "integer" || item.type === "string" || item.type === "text"))
    readTyped(item); // what was typed is kept, even going back
  const draft = load("draft");
  const previous = previousScreen(flat, draft.answers, linkId, draft.editing);
  if (previous === "review") backToReview();
  else goTo(previous);
}

function renderReview(draft) {
  $("#review-who-answer").textContent = whoAnswers(draft.source);
  // The answer a refusal pointed at, not answered again: its row says so, and the top of a long review where it is.
  const check = reviewToCheck(flat, draft.answers, draft.refused);
  const pointer = $("#review-to-check");
  pointer.hidden = !check;
  pointer.textContent = check
    ? `Vérifiez la réponse numéro ${check.number}, plus bas. Elle est marquée «\u00a0À vérifier\u00a0».`
    : "";
  const review = $("#review-list");
  review.replaceChildren();
  const byId = new Map(questions().map((item) => [item.linkId, item]));
  let number = 1; // numbers starting again at 1 under each title would look like answers gone missing
  for (const section of reviewSections(flat, draft.answers)) {
    // Each group's title above its answers, as on its question screens: "Souvent" alone does not say for what.
    const title = section.title ? h("h2", { class: "group-title" }, section.title) : null;
    const list = h("ol", { class: "review-list", start: number });
    review.append(h("section", { class: "review-group" }, title, list));
    number += section.questions.length;
    for (const linkId of section.questions)
      list.append(reviewRow(draft, byId.get(linkId), check !== null && check.linkId === linkId));
  }
  $("#review-error").hidden = true;
  show("screen-review");
}

/** One answer on the review, with its "Modifier"; `toCheck`: the answer a refusal pointed at, marked so. */
function reviewRow(draft, item, toCheck) {
  // Named after its question: a screen reader does not read a list of identical "Modifier".
  const change = h(
    "button",
    {
      type: "button",
      class: "nav-button",
      dataset: { edit: item.linkId },
      "aria-label": `Modifier : ${item.text || item.linkId}`,
      "aria-describedby": toCheck ? "review-refused" : null, // what to check, said with the button that does it
    },
    "Modifier",
  );
  change.addEventListener("click", () => edit(item.linkId));
  const note = toCheck
    ? h("p", { id: "review-refused", class: "refused-note" }, "À vérifier : votre réponse n'a pas pu être envoyée.")
    : null;
  return h(
    "li",
    { dataset: { linkId: item.linkId } },
    h("div", null, item.text || item.linkId),
    h("div", { class: "review-answer" }, answerLabel(item, draft.answers[item.linkId])),
    note,
    change,
  );
}

function sendAnswers() {
  const draft = load("draft");
  const { shown, answers } = draftState(draft);
  const items = responseItems(flat, shown, answers);
  if (!items.length) {
    $("#review-error").textContent = "Répondez au moins à une question avant d'envoyer.";
    $("#review-error").hidden = false;
    return;
  }
  const body = questionnaireResponse(definition, items, {
    source: draft.source === "relative" ? RELATIVE_SOURCE : null,
  });
  // The draft goes into the queue whole, with its key: a refusal can give it back to the patient to check.
  enqueue({ kind: "submission", key: draft.key, body, draft });
  save("draft", null);
  showSent("submission");
  flush();
}

// --- the message ---------------------------------------------------------------------------------

function showMessage() {
  const text = $("#message-text");
  text.value = load("messageDraft", "");
  $("#message-error").hidden = true;
  $("#photo-status").hidden = true;
  clearNotice("message");
  countCharacters();
  renderPhotoPreview();
  show("screen-message");
}

// --- the message's photo -------------------------------------------------------------------------

/** What will be sent: the photo chosen, kept in localStorage with the message being written until it is sent. */
function renderPhotoPreview() {
  const photo = load("messagePhoto");
  $("#photo-preview").hidden = !photo;
  if (photo) $("#photo-preview-img").src = photo.data;
  else $("#photo-preview-img").removeAttribute("src");
  $("label[for='message-photo']").textContent = photo ? "Changer de photo" : "Ajouter une photo";
}

async function choosePhoto(event) {
  const input = event.target;
  const file = input.files && input.files[0];
  input.value = ""; // the same photo chosen again is a new choice
  if (!file) return;
  const status = $("#photo-status");
  status.textContent = "La tablette prépare la photo…";
  status.hidden = false;
  try {
    const data = await scaled(file, PHOTO_SIDE, PHOTO_QUALITY);
    const thumb = await scaled(file, THUMB_SIDE, 0.7);
    save("messagePhoto", { data, thumb });
    status.hidden = true;
  } catch (error) {
    status.textContent =
      error && error.name === "QuotaExceededError"
        ? "La tablette n'a plus de place pour garder cette photo. Envoyez d'abord ce qui attend, puis réessayez."
        : "Prenez une nouvelle photo. La tablette ne peut pas lire celle-ci.";
  }
  renderPhotoPreview();
}

/** The image ``file`` upright, at most ``side`` pixels on its long side, as a JPEG data: URL. */
async function scaled(file, side, quality) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  const ratio = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * ratio));
  canvas.height = Math.max(1, Math.round(bitmap.height * ratio));
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff"; // a transparent PNG on white, as the server lays it
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.toDataURL("image/jpeg", quality);
}

function removePhoto() {
  save("messagePhoto", null);
  renderPhotoPreview();
}

/** The photo of a queued message (a data: URL), as the file its upload sends. Decoded here: a fetch of the data:
 * URL would be refused by the page's Content-Security-Policy (connect-src names this service only). */
function photoFile(data) {
  const [head, base64] = data.split(",", 2);
  const type = (/^data:([^;,]+)/.exec(head) || [])[1] || "image/jpeg";
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return new Blob([bytes], { type });
}

function countCharacters() {
  const length = [...$("#message-text").value].length;
  $("#message-count").textContent = `${length} / ${MESSAGE_MAX} caractères`;
}

function sendMessage(event) {
  event.preventDefault();
  const text = $("#message-text").value.trim();
  const error = $("#message-error");
  const photo = load("messagePhoto");
  if (!text && !photo) {
    error.textContent = "Écrivez votre message ou ajoutez une photo avant de l'envoyer.";
    error.hidden = false;
    return;
  }
  if ([...text].length > MESSAGE_MAX) {
    error.textContent = `Raccourcissez votre message. Il peut avoir ${MESSAGE_MAX} caractères au plus.`;
    error.hidden = false;
    return;
  }
  const body = { text, answered_by: $("#message-relative").checked ? "relative" : "patient" };
  // The photo is uploaded first, with a key of its own, then the message naming it, with its own: each kept with
  // the queue, so a connection lost between the two sends neither twice.
  const entry = { kind: "message", key: newKey("message"), body };
  if (photo) entry.photo = { key: newKey("photo"), data: photo.data, thumb: photo.thumb, id: null };
  try {
    enqueue(entry);
  } catch {
    error.textContent = "La tablette n'a plus de place pour garder ce message. Retirez la photo ou réessayez plus tard.";
    error.hidden = false;
    return;
  }
  save("messageDraft", null);
  save("messagePhoto", null);
  $("#message-text").value = "";
  $("#message-relative").checked = false;
  showSent("message");
  flush();
}

// Names the button as it reads while dictating: the patient looks for the words the sentence quotes.
const LISTENING = "Je vous écoute. Touchez « Arrêter la dictée » quand vous avez fini.";

/** Voice input where the browser has it (Chrome on Android does): what is said is added to the message. */
function setUpDictation() {
  const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition;
  const button = $("#dictate");
  if (!Recognition) return;
  button.hidden = false;
  let recognition = null;
  const status = $("#dictate-status");
  button.addEventListener("click", () => {
    if (recognition) {
      recognition.stop();
      return;
    }
    recognition = new Recognition();
    recognition.lang = "fr-FR";
    recognition.interimResults = false;
    recognition.continuous = true;
    recognition.onresult = (event) => {
      const said = Array.from(event.results)
        .slice(event.resultIndex)
        .filter((r) => r.isFinal)
        .map((r) => r[0].transcript.trim())
        .join(" ");
      if (!said) return;
      const text = $("#message-text");
      text.value = `${text.value}${text.value && !/\s$/.test(text.value) ? " " : ""}${said}`.slice(0, MESSAGE_MAX);
      save("messageDraft", text.value);
      countCharacters();
    };
    recognition.onerror = () => {
      status.textContent = "La dictée n'a pas marché. Vous pouvez écrire votre message.";
      status.hidden = false;
    };
    recognition.onend = () => {
      recognition = null;
      button.textContent = "Dicter mon message";
      if (status.textContent === LISTENING) status.hidden = true;
    };
    status.textContent = LISTENING;
    status.hidden = false;
    button.textContent = "Arrêter la dictée";
    recognition.start();
  });
}

// --- sending: the queue --------------------------------------------------------------------------

function enqueue(entry) {
  save("outbox", [...load("outbox", []), { ...entry, queuedAt: new Date().toISOString() }]);
  renderQueue();
}

let sentKey = null; // the send the "sent" screen is about

function showSent(kind) {
  const entry = load("outbox", []).at(-1);
  sentKey = entry ? entry.key : null;
  $("#sent-title").textContent = kind === "submission" ? "Merci pour vos réponses" : "Merci pour votre message";
  const sentPhoto = $("#sent-photo");
  sentPhoto.hidden = !(entry && entry.photo);
  if (entry && entry.photo) sentPhoto.src = entry.photo.data;
  else sentPhoto.removeAttribute("src");
  sayNotice(EMERGENCY);
  offerAgain(null);
  show("screen-sent"); // its status: renderSentStatus
}

// The sent screen's status while its send is queued: being sent, or waiting, until when (waitingFor, UNTIL; then it
// says, once on that screen, that what waits is kept and the tablet may be switched off).
const SENT_STATUS = {
  submission: {
    sending: "La tablette envoie vos réponses…",
    queued: (until) =>
      `Vos réponses seront envoyées ${until}. Elles sont gardées. Vous pouvez éteindre la tablette.`,
  },
  message: {
    sending: "La tablette envoie votre message…",
    queued: (until) => `Votre message sera envoyé ${until}. Il est gardé. Vous pouvez éteindre la tablette.`,
  },
};

/** The sent screen's status, while what it is about is still queued (once sent or refused, its answer says). */
function renderSentStatus() {
  const entry = load("outbox", []).find((queued) => queued.key === sentKey);
  if (!entry) return;
  const waiting = waitingFor();
  sentScreenSays(entry, waiting ? SENT_STATUS[entry.kind].queued(UNTIL[waiting]) : SENT_STATUS[entry.kind].sending);
}

function sentScreenSays(entry, text, notice = null) {
  if (document.body.dataset.screen !== "screen-sent" || entry.key !== sentKey) return false;
  $("#sent-status").textContent = text;
  if (notice) sayNotice(notice);
  return true;
}

/** The notice under what happened to a send, « appelez le 15 » kept on one line (CALL_15). */
function sayNotice(text) {
  const parts = text.split(CALL_15); // the words themselves at the odd places
  $("#sent-notice").replaceChildren(
    ...parts.map((part, i) => (i % 2 ? h("span", { class: "keep-together" }, part) : part)),
  );
}

/** The sent screen, when what it was about was refused: not thanked, and what was refused is hers to send again. */
function sentScreenRefused(entry, text, title) {
  if (!sentScreenSays(entry, text)) return;
  $("#sent-title").textContent = title;
  offerAgain(entry.kind);
}

// The button the refusal's sentence names ("touchez « Reprendre le questionnaire »"), on the screen that says it;
// "Retour à l'accueil" is then the other way out, no longer the one to take.
const SEND_AGAIN = { submission: "Reprendre le questionnaire", message: "Écrire à l'équipe soignante" };

function offerAgain(kind) {
  const again = $("#sent-again");
  again.hidden = !kind;
  again.textContent = kind ? SEND_AGAIN[kind] : "";
  again.dataset.kind = kind || "";
  $("#sent-home").classList.toggle("nav-button-primary", !kind);
}

function takeBackRefused() {
  if ($("#sent-again").dataset.kind === "message") showMessage();
  else startQuestionnaire().catch(() => {});
}

let flushing = false;
let retryTimer = null;
let failures = 0;
// Whether the last send that must wait was answered by the service (told to wait), not failed for lack of network.
let serviceBusy = false;

/** Sends what is queued, oldest first, each with its own key; stops at the first that must wait. */
async function flush() {
  if (flushing) return;
  flushing = true;
  clearTimeout(retryTimer);
  retryTimer = null;
  try {
    for (;;) {
      const entry = load("outbox", [])[0];
      if (!entry) break;
      let result;
      try {
        if (entry.photo && !entry.photo.id) {
          result = await call("POST", "/v1/photos", { file: photoFile(entry.photo.data), key: entry.photo.key });
          if (result.status === 201 && result.body && result.body.id) {
            photoUploaded(entry, result.body.id);
            failures = 0; // got through: the message naming it is being sent, not waiting
            renderQueue();
            continue; // the message next, naming it
          }
        } else {
          const path = entry.kind === "submission" ? "/v1/submissions" : "/v1/messages";
          const body = entry.photo ? { ...entry.body, photo_ids: [entry.photo.id] } : entry.body;
          result = await call("POST", path, { body, key: entry.key, fhir: entry.kind === "submission" });
        }
      } catch (error) {
        if (error instanceof TokenRefused) return;
        result = null; // the network failed: offline, or the connection dropped
      }
      if (sendAgain(result === null ? null : result.status)) {
        serviceBusy = result !== null;
        waitAndRetry();
        return;
      }
      failures = 0;
      dequeue(entry);
      if (result.status >= 200 && result.status < 300) delivered(entry, result.body || {});
      else await refused(entry, result);
      renderQueue(); // what is behind it is being sent now, no longer waiting
    }
  } finally {
    flushing = false;
    renderQueue();
  }
}

/** The photo's id, kept in the queued message: a retry sends the message, not the photo again. */
function photoUploaded(entry, id) {
  save(
    "outbox",
    load("outbox", []).map((e) => (e.key === entry.key ? { ...e, photo: { ...e.photo, id } } : e)),
  );
}

function dequeue(entry) {
  save(
    "outbox",
    load("outbox", []).filter((e) => e.key !== entry.key),
  );
}

function waitAndRetry() {
  failures += 1;
  retryTimer = setTimeout(flush, retryDelay(failures));
  // What is queued behind it waits too: a message sent while earlier answers wait was shown « La tablette envoie votre
  // message… » until the connection came back.
  renderQueue();
}

function delivered(entry, body) {
  const last = load("last", {});
  if (entry.kind === "submission") {
    const label = body.status_label || "Vos réponses ont bien été reçues.";
    last.submission = { id: body.id, status: body.status || "received", label };
    sentScreenSays(entry, label, body.notice);
  } else {
    const label = "Votre message a bien été envoyé à l'équipe soignante.";
    last.message = { id: body.id, status: body.status || "sent", label, thumb: entry.photo ? entry.photo.thumb : null };
    sentScreenSays(entry, label, body.notice);
  }
  save("last", last);
  startPolling();
}

/**
 * A refusal other than 401 will not change by sending again. Answers go back to the patient as a draft (the
 * questionnaire read again: a new version keeps the answers it still asks), at the question the service pointed
 * at, or at the review; a message goes back into the message box. Either way, in plain French.
 */
async function refused(entry, result) {
  const problem = result.body || {};
  if (entry.kind === "message") {
    if (!load("messageDraft")) save("messageDraft", entry.body.text);
    const photoRefused = entry.photo && !entry.photo.id;
    if (entry.photo && !photoRefused && !load("messagePhoto"))
      save("messagePhoto", { data: entry.photo.data, thumb: entry.photo.thumb });
    const text = photoRefused
      ? "Votre photo n'a pas pu être envoyée. Elle n'a pas pu être lue. Votre message vous attend dans « Écrire à l'équipe soignante ». Ajoutez une autre photo, puis envoyez-le à nouveau."
      : "Votre message n'a pas pu être envoyé. Il vous attend dans « Écrire à l'équipe soignante ». Relisez-le, puis envoyez-le à nouveau.";
    // Not "Merci pour votre message": nothing reached the team.
    sentScreenRefused(entry, text, "Votre message n'a pas été envoyé");
    setNotice("message", text);
    return;
  }
  let fresh = null;
  try {
    fresh = await questionnaireDefinition({ fresh: true });
  } catch {
    return; // the token was refused meanwhile: nothing is kept
  }
  if (fresh) {
    definition = fresh;
    flat = flatten(definition.item);
  }
  const pointedAt = refusedLinkId(problem, entry.body.item || []);
  const canonical = fresh ? `${fresh.url}|${fresh.version}` : entry.draft.canonical;
  const answers = fresh ? keptAnswers(entry.draft.answers) : entry.draft.answers;
  const at = pointedAt && questions().some((q) => q.linkId === pointedAt) ? pointedAt : "review";
  const draft = {
    ...entry.draft,
    key: newKey("tablet"), // what is sent next differs from what was refused: a new request
    canonical,
    answers,
    at,
    // The question pointed at is checked as an edit from the review: then back to the review, not every question.
    editing: at === "review" ? null : startEdit(flat, answers, at),
    refused: at === "review" ? null : at, // its screen says why it is asked again
  };
  if (!load("draft")) save("draft", draft);
  const text = answersRefused(problem, { updated: canonical !== entry.draft.canonical });
  sentScreenRefused(entry, text, "Vos réponses n'ont pas été envoyées");
  setNotice("submission", text);
}

// --- polling -------------------------------------------------------------------------------------

let pollTimer = null;

function startPolling() {
  if (pollTimer) return;
  pollTimer = setInterval(() => {
    const last = load("last", {});
    const pending = Object.values(last).some((entry) => entry && entry.status !== "seen");
    if (!load("token") || !pending) {
      clearInterval(pollTimer);
      pollTimer = null;
      return;
    }
    if (document.visibilityState === "visible") refreshStatus();
  }, POLL_MS);
}

// --- heartbeats ----------------------------------------------------------------------------------

const APP_VERSION = "1.0.0"; // this page's version, in the fleet's heartbeats
const HEARTBEAT_MS = 5 * 60_000;
let heartbeatsStarting = false;
let lastUsedAt = null;

/**
 * Tells the devices service the tablet is alive (battery, last use), when the deployment names it
 * (DEVICES_PUBLIC_URL): a loaned tablet silent before a chemotherapy session is what the fleet manager looks for.
 */
async function startHeartbeats() {
  // Taken before the wait for config.json: a second start meanwhile (the address typed again) set a second interval,
  // and the tablet sent every heartbeat twice for as long as it stayed open.
  if (heartbeatsStarting) return;
  heartbeatsStarting = true;
  const devicesUrl = await giveUpAfter(REQUEST_TIMEOUT_MS, devicesAddress);
  if (!devicesUrl) {
    heartbeatsStarting = false; // unknown (offline): the next start asks again
    return;
  }
  const beat = () => heartbeat(devicesUrl);
  setInterval(beat, HEARTBEAT_MS);
  beat();
}

async function heartbeat(devicesUrl) {
  const token = load("token");
  if (!token) return;
  let battery = null;
  try {
    if (navigator.getBattery) battery = Math.round((await navigator.getBattery()).level * 100);
  } catch {
    battery = null;
  }
  if (battery === null) return; // the service needs the charge: a browser that hides it sends no heartbeat
  const body = { battery_percent: battery, app_version: APP_VERSION, sent_at: new Date().toISOString() };
  if (lastUsedAt) body.last_used_at = lastUsedAt;
  try {
    // Another origin (CORS): the bearer token only, never cookies. A refusal here forgets nothing: the
    // questionnaire service, which the page depends on, refuses an ended loan's token within a second too. Given up
    // well before the next one (giveUpAfter): heartbeats that hang (a captive Wi-Fi) do not pile up.
    await giveUpAfter(REQUEST_TIMEOUT_MS, (signal) =>
      fetch(`${devicesUrl}/v1/heartbeats`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        signal,
      }),
    );
  } catch {
    // a heartbeat missed is the next one's job
  }
}

// --- start ---------------------------------------------------------------------------------------

function wire() {
  document.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    const action = target.dataset.action;
    if (action === "home") showHome(); else if (action === "previous" && target.closest("#screen-question")) questionPrevious();
    else if (action === "previous" && target.closest("#screen-review"))
      goTo(previousScreen(flat, load("draft").answers, null));
    else if (action === "review") backToReview();
    else if (target.dataset.source) choose(target.dataset.source);
  });
  $("#start-questionnaire").addEventListener("click", () => startQuestionnaire().catch(() => {}));
  $("#start-message").addEventListener("click", showMessage);
  $("#sent-again").addEventListener("click", takeBackRefused);
  $("#question-form").addEventListener("submit", questionNext);
  $("#send-answers").addEventListener("click", sendAnswers);
  $("#edit-who").addEventListener("click", editWho);
  $("#message-form").addEventListener("submit", sendMessage);
  $("#message-photo").addEventListener("change", (event) => choosePhoto(event).catch(() => {}));
  $("#photo-remove").addEventListener("click", removePhoto);
  $("#message-text").addEventListener("input", () => {
    save("messageDraft", $("#message-text").value);
    countCharacters();
  });
  window.addEventListener("offline", renderQueue);
  window.addEventListener("online", () => {
    failures = 0; // what waits is sent at once (flush): being sent, until a request says otherwise
    serviceReached = true;
    renderQueue();
    flush();
    refreshStatus();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refreshStatus();
  });
  setUpDictation();
  document.addEventListener("pointerdown", () => {
    lastUsedAt = new Date().toISOString();
  });
}

/** The page as the stored token allows: the setup page without one, else home (the token checked at once). */
async function begin() {
  if (load("enrolment") && !(await enrolWithCode())) return;
  if (!load("token")) {
    const ended = load("loanEnd");
    showSetup(ended ? LOAN_ENDED : null, ended ? ended.unsent || [] : []);
    return;
  }
  showHome();
  renderQueue();
  renderNotice();
  try {
    // Also checks the token at once: a tablet handed back shows the setup page, not a questionnaire.
    definition = await questionnaireDefinition({ fresh: true });
  } catch {
    return;
  }
  flush();
  startPolling();
  startHeartbeats();
}

/** The worker that keeps the page's own files, so that it opens offline (sw.js). */
function keepPageForOffline() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("sw.js", { scope: "./" }).catch(() => {
    // not kept this time (offline at the first opening): the next opening online tries again
  });
}

function start() {
  keepPageForOffline();
  takeTokenFromAddress();
  wire();
  // The address typed again with a token while the page is open changes only its fragment: no new page load.
  window.addEventListener("hashchange", () => {
    if (!location.hash.includes("device_token=") && !location.hash.includes("enrol=")) return;
    takeTokenFromAddress();
    begin();
  });
  // An enrolment cut short by the network (its code kept) goes on by itself when the connection is back.
  window.addEventListener("online", () => {
    if (load("enrolment")) begin();
  });
  begin();
}

start();
