// Nurse dashboard: sign-in, the open-alerts list kept live by the SSE stream, the patient view, the
// team figures. Plain ES modules, no build step, no external resource.

import {
  activeAlerts,
  api,
  ApiError,
  clearToken,
  endSessionRequests,
  getToken,
  onUnauthorized,
  setToken,
} from "./api.js";
import { AlertStream } from "./stream.js";
import { pageSignIn, SignInError } from "/web/oidc.js";
import { announce, clear, clearAnnouncements, h, toast, toastError } from "./dom.js";
import {
  addDays,
  formatClock,
  formatIsoDay,
  formatTime,
  getReference,
  levelLabel,
  outcomeLabel,
  parisDay,
  patientShortId,
  reasonText,
  setReference,
  staffName,
  termLabel,
} from "./format.js";
import { filterAlerts, flashRows, renderAlertRows, tickWaitingTimes } from "./alerts.js";
import { announcementText, bannerStillDue, cues, mergeAlert, whatChanged } from "./cues.js";
import { MAX_EXPECTED_DAYS, renderPatient, renderPatientError, renderPatientLoading } from "./patient.js";
import { forgetPhoneEntry, keepPhoneEntry, openPhoneQuestionnaire, phoneEntryKeptFor } from "./phone.js";
import { loadPhotos, openPhoto, releasePhotos } from "./photos.js";
import {
  defaultPeriod,
  lastDays,
  PERIOD_TOO_LONG,
  periodProblem,
  renderMetrics,
  renderMetricsMessage,
} from "./metrics.js";
import { Sound } from "./sound.js";

const TICK_MS = 30000;
const BANNER_MS = 8000;
const SEEN_EVENTS_MAX = 2000;
const UUIDISH = /^[0-9a-fA-F-]{8,64}$/;
// The roles without which the dashboard shows nothing (its alert list is the nurses').
const DASHBOARD_ROLE = "nurse";
const CLOSING_DRAFT_MS = 15 * 60 * 1000; // how long a closing cut short by an expired session is kept

const $ = (id) => document.getElementById(id);

// The sign-in with the hospital's identity provider, as every staff page does it (shared/web/oidc.js); its keys are
// the dashboard's, as they were before the module was shared.
const signIn = pageSignIn({
  configUrl: "/v1/dashboard/config",
  storagePrefix: "oncofollow",
  role: DASHBOARD_ROLE,
  report: (message) => showSignIn(message),
});

const state = {
  config: null,
  me: null, // {staff_id, roles}
  alerts: [],
  totals: null, // the server's counts of every active alert
  notShown: 0, // active alerts beyond the list's cap
  loaded: false,
  loadError: null, // shown in the list while it has never loaded
  filters: { level: "all", status: "active" },
  view: "alerts",
  patient: null, // {patientId, alertId, timeline, alertDetail}
  period: defaultPeriod(),
  everLive: false, // the stream has been open at least once since sign-in
  streamFailed: false, // a connection attempt has failed since sign-in
};

const sound = new Sound();
let stream = null;
let tickTimer = null;
// Which nurse's session a request belongs to: each sign-out starts a new one, and an answer that comes back for an
// earlier one is not shown (she may be gone, and the next nurse signed in meanwhile).
let sessionGeneration = 0;

function isCurrentSession(generation) {
  return generation === sessionGeneration && state.me !== null;
}

/** A request that failed because the session ended (expired, revoked, or signed out): nothing to show. */
function endedWithSession(error) {
  return error.status === 401 || error.cancelled === true;
}
// A closing dialog cut short by an expired session: {staffId, alertId, shown, outcome, note, keptAt}. In memory
// only, never in sessionStorage or localStorage (a note is health data); restored to the same nurse only.
let closingDraft = null;

// ---------------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------------

function showSignIn(message = "") {
  $("app").hidden = true;
  $("signin-screen").hidden = false;
  const box = $("signin-message");
  box.textContent = message;
  box.hidden = !message;
  renderDevUsers();
  renderProviderSignIn();
  if ($("provider-login").hidden) $("token-input").focus();
  else $("provider-sign-in").focus();
}

function renderProviderSignIn() {
  signIn.showButton({
    section: $("provider-login"),
    button: $("provider-sign-in"),
    unavailable: $("provider-unavailable"),
  });
}

function renderDevUsers() {
  const config = state.config;
  const section = $("dev-login");
  const list = clear($("dev-users"));
  const users = config && config.dev_login && Array.isArray(config.dev_users) ? config.dev_users : [];
  section.hidden = users.length === 0;
  for (const user of users) {
    if (!user || typeof user.staff_id !== "string") continue;
    const roles = Array.isArray(user.roles) ? user.roles.join(", ") : "";
    list.append(
      h(
        "li",
        null,
        h(
          "button",
          {
            type: "button",
            class: "btn btn-secondary dev-user",
            dataset: { action: "dev-login", staffId: user.staff_id },
          },
          h("span", { class: "dev-user-name" }, user.display_name || user.staff_id),
          h("span", { class: "dev-user-meta" }, `${user.staff_id}${roles ? ` · ${roles}` : ""}`),
        ),
      ),
    );
  }
  const env = config && config.environment;
  $("signin-env").textContent = env === "development" ? "Environnement de développement" : "";
  $("signin-env").hidden = env !== "development";
}

async function signInWithToken(token, { fromProvider = false } = {}) {
  setToken(token);
  // A reload keeps the provider's token in this tab: its expiry then says to sign in with the hospital's account.
  const providerToken = fromProvider || signIn.signedInWithProvider();
  try {
    const me = await api.me();
    if (!me || typeof me.staff_id !== "string") throw new ApiError(500, "", "Réponse inattendue du serveur (/v1/me).");
    if (fromProvider && !signIn.hasRole(me)) {
      clearToken();
      signIn.forget();
      showSignIn(NO_ROLE);
      return;
    }
    await startApp(me);
  } catch (error) {
    if (fromProvider && error instanceof ApiError && error.status === 403) {
      clearToken();
      signIn.forget();
      showSignIn(NO_ROLE);
    } else if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      clearToken();
      signIn.forget();
      showSignIn(
        error.status === 401 && fromProvider
          ? "Le tableau de bord n'a pas reconnu la connexion de l'hôpital. Réessayez, ou prévenez le support informatique."
          : error.status === 401 && providerToken
          ? "Votre session a expiré. Reconnectez-vous avec le compte de l'hôpital."
          : error.status === 401
          ? "Ce jeton n'est pas valide ou a expiré. Collez un nouveau jeton."
          : `Accès refusé : ${error.detail}`,
      );
    } else {
      // Network trouble: keep the token so that a reload retries.
      showSignIn(error && error.detail ? error.detail : "Connexion impossible.");
    }
  }
}

const NO_ROLE =
  "Votre compte de l'hôpital n'a pas le rôle infirmier·ère coordinateur·rice nécessaire à ce tableau de bord. " +
  "Demandez-le à l'administrateur des comptes de l'hôpital.";

/** The code the provider sent back to this page: exchanged for a token, then signed in with it (or a message). */
async function signInFromProvider(callback) {
  try {
    const body = await signIn.complete(callback);
    await signInWithToken(body.access_token, { fromProvider: true });
  } catch (error) {
    clearToken();
    showSignIn(error instanceof SignInError ? error.message : "La connexion avec le compte de l'hôpital a échoué.");
  }
}

/** The nurse chose to leave: her session here ends, and the provider's too when it has an end-session endpoint. */
function signOutByChoice() {
  const endSession = signIn.endSession();
  signOut("Vous êtes déconnecté·e.");
  if (endSession) location.assign(endSession);
}

function signOut(message = "", { keepDraft = false } = {}) {
  closingDraft = keepDraft ? draftOfClosing() : null;
  if (!keepDraft) forgetPhoneEntry();
  const phoneKept = keepDraft && keepPhoneEntry(state.me && state.me.staff_id);
  endSession();
  if (stream) {
    stream.stop();
    stream.forgetPosition();
    stream = null;
  }
  clearInterval(tickTimer);
  tickTimer = null;
  hideSessionWarning();
  hideBanner();
  forgetActivity();
  clearToken();
  signIn.forget();
  state.me = null;
  state.alerts = [];
  ownSteps.clear();
  state.loaded = false;
  state.loadError = null;
  state.patient = null;
  state.everLive = false;
  state.streamFailed = false;
  clear($("alert-rows"));
  clear($("patient-view"));
  releasePhotos();
  clear($("metrics-content"));
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  const kept =
    (closingDraft ? " Votre clôture en cours sera rétablie quand vous vous reconnecterez." : "") +
    (phoneKept ? " Votre saisie téléphonique en cours sera conservée si vous vous reconnectez dans les 15 minutes." : "");
  showSignIn(`${message}${kept}`);
}

/** What the nurse asked for and is still coming is dropped: answers to her session are never shown to the next. */
function endSession() {
  sessionGeneration += 1;
  endSessionRequests();
  refreshing = null; // the next session's list does not wait for (nor follow) this one's
  refreshAgain = false;
  patientRequest += 1;
  metricsRequest += 1;
}

/** What the previous nurse did, was told or was about to be told stays hers: the next one starts clean. */
function forgetActivity() {
  clearAnnouncements();
  pendingAnnouncements.length = 0;
  pendingFlash.clear();
  seenEvents.clear();
  clearTimeout(bannerTimer);
  $("red-banner-text").textContent = "";
  $("red-banner").dataset.alertId = "";
  $("sound-blocked").hidden = true;
  $("last-updated").textContent = "";
  $("alert-summary").textContent = "";
  $("alert-shown").textContent = "";
  clear($("toasts"));
  // A closed dialog keeps what was typed in it (a note is health data).
  for (const form of document.querySelectorAll("dialog form")) form.reset();
  $("resolve-context").textContent = "";
  $("resolve-owner").textContent = "";
  for (const error of document.querySelectorAll("dialog .error-text")) error.textContent = "";
  focusHint = null;
  returnToAlertId = null;
  lastErrorToast = { text: "", at: 0 };
}

onUnauthorized(() => {
  if (state.me) signOut("Votre session a expiré ou a été révoquée. Reconnectez-vous.", { keepDraft: true });
});

/**
 * A token from the provider is renewed shortly before it expires, without a word; the banner comes a few minutes
 * before the end otherwise (a pasted token, no refresh token, or the provider refused: her session there ended).
 */
function watchSession(me) {
  hideSessionWarning();
  const generation = sessionGeneration;
  signIn.watch(me.session_expires_in, {
    renewed: async (body) => {
      if (!isCurrentSession(generation)) return undefined;
      setToken(body.access_token);
      try {
        const renewed = await api.me();
        if (!isCurrentSession(generation)) return undefined;
        return renewed && typeof renewed.session_expires_in === "number" ? renewed.session_expires_in : null;
      } catch (error) {
        return endedWithSession(error) ? undefined : null;
      }
    },
    warn: (endsAt) => {
      if (!state.me) return;
      showSessionWarning(`Votre session se termine à ${formatTime(endsAt)} — reconnectez-vous pour continuer.`);
    },
  });
}

/**
 * The banner, and the same words at the top of each dialog: a modal dialog's backdrop covers the page, banner
 * included, and a nurse busy closing an alert is the one who most needs to know her session is ending.
 */
function showSessionWarning(text) {
  $("session-banner-text").textContent = text;
  $("session-banner").hidden = false;
  for (const warning of document.querySelectorAll(".dialog-session")) {
    warning.textContent = text;
    warning.hidden = false;
  }
}

function hideSessionWarning() {
  $("session-banner").hidden = true;
  $("session-banner-text").textContent = "";
  for (const warning of document.querySelectorAll(".dialog-session")) {
    warning.textContent = "";
    warning.hidden = true;
  }
}

// ---------------------------------------------------------------------------------------------------
// The running app
// ---------------------------------------------------------------------------------------------------

async function startApp(me) {
  state.me = { staff_id: me.staff_id, roles: Array.isArray(me.roles) ? me.roles : [] };
  const generation = sessionGeneration;
  $("signin-screen").hidden = true;
  $("app").hidden = false;
  // Who is signed in, as colleagues know her; the id (what the audit trail records) on hover.
  $("staff-id").textContent = typeof me.name === "string" && me.name ? me.name : state.me.staff_id;
  $("staff-id").title = state.me.staff_id;
  const env = state.config && state.config.environment;
  $("env-badge").hidden = env !== "development";
  watchSession(me);

  try {
    setReference(await api.reference());
  } catch (error) {
    if (endedWithSession(error) || !isCurrentSession(generation)) return;
    toast(`Libellés indisponibles (${error.detail}) : les codes bruts sont affichés.`, "error");
  }
  if (!isCurrentSession(generation)) return; // signed out meanwhile (and perhaps another nurse in)

  renderAlerts();
  refreshAlerts().then(restoreClosing);
  remindPhoneEntry();
  startStream();
  clearInterval(tickTimer);
  tickTimer = setInterval(tickWaitingTimes, TICK_MS);
  route();
}

function startStream() {
  if (stream) stream.stop();
  stream = new AlertStream({
    fetchToken: async () => {
      const body = await api.streamToken();
      if (!body || typeof body.token !== "string") throw new Error("stream token missing");
      return body.token;
    },
    onEvent: handleStreamEvent,
    onState: renderConnectionState,
    onOpen: () => {
      // The list after a (re)connection covers what happened while the page was cut off (a first connection has
      // no `since`: nothing is replayed) and decides the red cue from what is active now (cueChanges).
      refreshAlerts();
    },
    onReset: () => {
      toast("Une partie de l'historique en direct n'était plus disponible : la liste a été rechargée.");
      refreshAlerts();
      markPatientStale();
    },
    isFatal: (error) => error instanceof ApiError && (error.status === 401 || error.status === 403),
  });
  stream.start();
}

const CONNECTION_TEXT = {
  live: "En direct",
  reconnecting: "Connexion perdue — reconnexion…",
  offline: "Hors ligne",
};

function renderConnectionState(connection, { failed = false } = {}) {
  const element = $("connection-state");
  if (connection === "live") state.everLive = true;
  if (failed) state.streamFailed = true;
  element.dataset.state = connection;
  let text = CONNECTION_TEXT[connection] ?? connection;
  if (connection === "reconnecting" && !state.everLive && !state.streamFailed) text = "Connexion…";
  element.querySelector(".connection-text").textContent = text;
  const notice = $("stale-notice");
  notice.hidden = connection === "live" || !(state.everLive || state.streamFailed) || !state.me;
}

// --- The list -------------------------------------------------------------------------------------

const pendingFlash = new Set();
const pendingAnnouncements = [];
let refreshing = null;
let refreshAgain = false;
let focusHint = null;
let lastErrorToast = { text: "", at: 0 };

function renderAlerts() {
  renderAlertRows({
    alerts: state.alerts,
    loaded: state.loaded,
    loadError: state.loadError,
    filters: state.filters,
    me: state.me && state.me.staff_id,
    focusHint: focusHint,
    totals: state.totals,
    notShown: state.notShown,
  });
  focusHint = null;
}

/** At most one GET /v1/alerts in flight per session; events arriving meanwhile cause exactly one more. */
function refreshAlerts() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  const generation = sessionGeneration;
  const run = (async () => {
    try {
      do {
        refreshAgain = false;
        await loadAlerts(generation);
      } while (refreshAgain && isCurrentSession(generation));
    } finally {
      if (refreshing === run) refreshing = null;
    }
  })();
  refreshing = run;
  return run;
}

/** The list, shown only in the session that asked for it. */
async function loadAlerts(generation) {
  if (!isCurrentSession(generation)) return;
  let body;
  try {
    body = await activeAlerts();
  } catch (error) {
    if (endedWithSession(error) || !isCurrentSession(generation)) return;
    toastOnce(error);
    if (!state.loaded) {
      state.loadError = error.detail;
      renderAlerts();
    }
    return;
  }
  if (!isCurrentSession(generation)) return;
  state.loadError = null;
  const items = body.items;
  const before = new Map(state.alerts.map((alert) => [alert.id, alert]));
  const wasLoaded = state.loaded;
  state.alerts = items;
  state.totals = body.totals;
  state.notShown = body.notShown;
  state.loaded = true;
  if (wasLoaded) for (const alert of items) if (!before.has(alert.id)) pendingFlash.add(alert.id);
  if (wasLoaded) cueChanges(before, items);
  if (!bannerStillDue($("red-banner").dataset.alertId, items)) hideBanner();
  renderAlerts();
  followResolveTarget();
  flashRows(pendingFlash);
  pendingFlash.clear();
  flushAnnouncements();
  $("last-updated").textContent = `Mis à jour à ${formatClock(new Date())}`;
}

function toastOnce(error) {
  const text = error && error.detail ? error.detail : String(error);
  const now = Date.now();
  if (text === lastErrorToast.text && now - lastErrorToast.at < 15000) return;
  lastErrorToast = { text, at: now };
  toastError(error);
}

// --- Live events ----------------------------------------------------------------------------------

const seenEvents = new Set();

// Steps this page took itself, for a short while: their live events tell the patient view nothing new (it reloads
// after each step), so they do not offer "Nouvelles informations". Kept briefly, because an event may also arrive
// before the step's own answer, and a later step of the same kind on the same alert is someone else's news.
const OWN_STEP_MS = 10_000;
const ownSteps = new Map();

function rememberOwnStep(type, alertId) {
  ownSteps.set(`${type}:${alertId}`, Date.now());
}

function isOwnStep(type, alertId) {
  const key = `${type}:${alertId}`;
  const at = ownSteps.get(key);
  ownSteps.delete(key);
  return at !== undefined && Date.now() - at < OWN_STEP_MS;
}

function rememberEvent(key) {
  if (!key) return true;
  if (seenEvents.has(key)) return false;
  seenEvents.add(key);
  if (seenEvents.size > SEEN_EVENTS_MAX) seenEvents.delete(seenEvents.values().next().value);
  return true;
}

function handleStreamEvent({ type, streamId, envelope }) {
  if (!state.me) return;
  const payload = envelope && envelope.data && typeof envelope.data === "object" ? envelope.data : {};
  const key =
    envelope && typeof envelope.id === "string" ? `event:${envelope.id}` : streamId ? `seq:${streamId}` : null;
  const fresh = rememberEvent(key);
  const alertId = typeof payload.alert_id === "string" ? payload.alert_id : null;

  if (alertId) pendingFlash.add(alertId);
  // What needs a nurse (new, turned red, back to open) is decided from the list this event refreshes
  // (cueChanges): after a reconnection, replayed events tell the past, the list tells what is active now.
  if (fresh && type === "alert.escalated") pendingAnnouncements.push({ cause: "escalated", alertId, payload });
  const own = alertId !== null && isOwnStep(type, alertId);
  if (!own && state.view === "patient" && state.patient && concernsPatient(payload)) markPatientStale();
  // Whatever the type (even one this page does not know), the list from the server is the truth.
  refreshAlerts();
}

function concernsPatient(payload) {
  const current = state.patient;
  if (!current) return false;
  if (payload.patient_id && payload.patient_id === current.patientId) return true;
  const alerts = current.timeline && Array.isArray(current.timeline.alerts) ? current.timeline.alerts : [];
  return Boolean(payload.alert_id && alerts.some((alert) => alert.id === payload.alert_id));
}

/** The refreshed list's cues (cues.js): all announced, the most urgent red one on the banner with the beep. */
function cueChanges(before, items) {
  const { announcements, red } = cues(before, items);
  pendingAnnouncements.push(...announcements);
  if (red) redCue(red.alertId, red.text);
}

function flushAnnouncements() {
  if (!pendingAnnouncements.length) return;
  const text = announcementText(pendingAnnouncements.splice(0), state.alerts);
  if (text) announce(`${formatClock(new Date()).slice(0, 5)} — ${text}`);
}

let bannerTimer = null;

function redCue(alertId, text) {
  const banner = $("red-banner");
  $("red-banner-text").textContent = text;
  banner.dataset.alertId = alertId;
  banner.hidden = false;
  banner.classList.remove("flashing");
  void banner.offsetWidth;
  banner.classList.add("flashing");
  const played = sound.beep();
  $("sound-blocked").hidden = played || !sound.enabled;
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(hideBanner, BANNER_MS);
}

function hideBanner() {
  $("red-banner").hidden = true;
  $("red-banner").classList.remove("flashing");
}

// --- Alert actions: from a row of the list, or from the patient view's alert in progress -------------
// `from` says which ("list" or "patient"): the request, the dialog and the answers are the same; what is shown
// afterwards and where the focus goes follow the view the nurse is in.

async function acknowledge(alertId, button, { from = "list" } = {}) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = "Envoi…";
  try {
    const updated = await api.ack(alertId);
    rememberOwnStep("alert.acknowledged", alertId);
    mergeAlert(state.alerts, updated);
    if (from === "list") focusHint = { alertId, action: "resolve" };
    renderAlerts();
    flashRows([alertId]);
    const alert = alertById(alertId) ?? updated;
    announce(`Alerte prise en charge${alert ? ` : ${patientShortId(alert.patient_id)}` : ""}.`);
    refreshAlerts(); // a list request already in flight may predate the acknowledgement
    if (from === "patient") await showPatientAfterStep(alertId, "resolve");
  } catch (error) {
    if (endedWithSession(error)) return;
    toastError(error);
    if (error.status === 409 || error.status === 404) {
      pendingFlash.add(alertId);
      refreshAlerts();
      if (from === "patient") await showPatientAfterStep(alertId, "resolve");
    } else if (button.isConnected) {
      button.disabled = false;
      button.textContent = label;
    }
  }
}

function alertById(alertId) {
  return state.alerts.find((alert) => alert.id === alertId) || null;
}

// Resolve dialog
// {alertId, trigger, from: "list" | "patient", shown: the alert as the dialog shows it, whose version is closed}
let resolveTarget = null;

/** `shown`: the alert as the nurse sees it where she asked to close it (the list's row, or the patient view's). */
function openResolveDialog(alertId, trigger, { shown = alertById(alertId), from = "list" } = {}) {
  const alert = shown;
  const dialog = $("resolve-dialog");
  const form = $("resolve-form");
  form.reset();
  const select = form.elements.outcome;
  clear(select);
  select.append(h("option", { value: "" }, "— choisir —"));
  for (const [code, label] of Object.entries(getReference().outcomes))
    select.append(h("option", { value: code }, label));
  renderResolveContext(alert);
  $("resolve-error").hidden = true;
  updateResolveForm();
  resolveTarget = { alertId, trigger, from, shown: alert };
  dialog.showModal();
  select.focus();
  followResolveTarget(); // the list may know a newer version than the patient view showed
}

function renderResolveContext(alert) {
  $("resolve-context").textContent = alert
    ? `${patientShortId(alert.patient_id)} — ${levelLabel(alert.level)} — ${(alert.reasons || []).map(reasonText).join(", ")}`
    : "";
  const me = state.me && state.me.staff_id;
  let owner = "";
  if (alert && alert.status === "acknowledged" && alert.acknowledged_by && alert.acknowledged_by !== me)
    owner = `Prise par ${staffName(alert, "acknowledged_by")} : vous clôturez à sa place.`;
  else if (alert && alert.status === "open")
    owner = "Alerte rouverte par une nouvelle réponse : personne ne l'a en charge.";
  $("resolve-owner").textContent = owner;
  $("resolve-owner").hidden = !owner;
}

/** A list load brought a newer version of the alert being closed (a new answer, a colleague's step). */
function followResolveTarget() {
  if (!resolveTarget || !resolveTarget.shown) return;
  const current = alertById(resolveTarget.alertId);
  const shown = resolveTarget.shown;
  if (!current || current.updated_at === shown.updated_at) return;
  // A list request sent before the version shown may answer after it: an older version is no news.
  if (Date.parse(current.updated_at) < Date.parse(shown.updated_at)) return;
  showChangedAlert(current);
}

/** The dialog shows the alert as it is now, says what changed, and asks for the outcome again: what she
 * confirms is what she saw (the server refuses to close another version, 412). Her note stays. */
function showChangedAlert(current) {
  if (!resolveTarget || !current || current.id !== resolveTarget.alertId) return;
  const before = resolveTarget.shown;
  resolveTarget.shown = current;
  renderResolveContext(current);
  $("resolve-form").elements.outcome.value = "";
  updateResolveForm();
  $("resolve-error").textContent =
    `${whatChanged(before, current)} Vérifiez avant de clôturer, puis choisissez de nouveau l'issue.`;
  $("resolve-error").hidden = false;
}

function draftOfClosing() {
  if (!resolveTarget || !state.me || !$("resolve-dialog").open) return null;
  const form = $("resolve-form");
  return {
    staffId: state.me.staff_id,
    alertId: resolveTarget.alertId,
    shown: resolveTarget.shown,
    outcome: form.elements.outcome.value,
    note: form.elements.note.value,
    keptAt: Date.now(),
  };
}

/** After signing in again as the same nurse, where to take up the phone entry her expired session cut short (the
 * form gives the answers back when she opens it for that patient). */
function remindPhoneEntry() {
  const patientId = state.me ? phoneEntryKeptFor(state.me.staff_id) : null;
  if (!patientId) return;
  toast(
    `Votre saisie téléphonique pour le patient ${patientShortId(patientId)} a été conservée : ouvrez sa fiche puis ` +
      "« Saisir le questionnaire » pour la reprendre.",
  );
}

/** After signing in again as the same nurse, the closing her expired session cut short, as she left it. */
function restoreClosing() {
  const draft = closingDraft;
  closingDraft = null;
  if (!draft || !state.me || draft.staffId !== state.me.staff_id || Date.now() - draft.keptAt > CLOSING_DRAFT_MS)
    return;
  if (!alertById(draft.alertId)) {
    toast("L'alerte que vous étiez en train de clôturer n'est plus dans la liste des alertes actives.");
    return;
  }
  openResolveDialog(draft.alertId, null);
  const form = $("resolve-form");
  form.elements.outcome.value = draft.outcome;
  form.elements.note.value = draft.note;
  updateResolveForm();
  $("resolve-error").textContent =
    "Votre saisie a été conservée pendant la reconnexion : vérifiez-la puis confirmez.";
  $("resolve-error").hidden = false;
  if (draft.shown) {
    resolveTarget.shown = draft.shown; // what she saw before: a change since is shown and asked about
    followResolveTarget();
  }
}

function updateResolveForm() {
  const form = $("resolve-form");
  form.querySelector('[data-action="confirm-resolve"]').disabled = !form.elements.outcome.value;
  $("resolve-note-count").textContent = `${form.elements.note.value.length} / 2000`;
}

async function submitResolve(event) {
  event.preventDefault();
  if (!resolveTarget) return;
  const form = $("resolve-form");
  const outcome = form.elements.outcome.value;
  const note = form.elements.note.value.trim();
  if (!outcome) return;
  const { alertId, from } = resolveTarget;
  const submit = form.querySelector('[data-action="confirm-resolve"]');
  submit.disabled = true;
  submit.textContent = "Envoi…";
  try {
    const visible = filterAlerts(state.alerts, state.filters);
    const index = visible.findIndex((alert) => alert.id === alertId);
    const alert = alertById(alertId) ?? resolveTarget.shown;
    const version = resolveTarget.shown ? resolveTarget.shown.updated_at : undefined;
    const updated = await api.resolve(alertId, outcome, note || undefined, version);
    rememberOwnStep("alert.resolved", alertId);
    resolveTarget = null;
    $("resolve-dialog").close();
    mergeAlert(state.alerts, updated);
    if (from === "patient") {
      renderAlerts();
    } else {
      const next = filterAlerts(state.alerts, state.filters)[Math.max(0, index)] || null;
      focusHint = next ? { alertId: next.id, action: null } : null;
      renderAlerts();
      if (!next) $("alerts-heading").focus();
    }
    const text = `Alerte clôturée${alert ? ` : ${patientShortId(alert.patient_id)}` : ""} — ${outcomeLabel(outcome)}.`;
    toast(text, "success");
    announce(text);
    refreshAlerts();
    if (from === "patient") await showPatientAfterStep(alertId, null);
  } catch (error) {
    if (endedWithSession(error)) return;
    if (error.status === 412 && error.body && error.body.alert && resolveTarget) {
      mergeAlert(state.alerts, error.body.alert);
      renderAlerts();
      showChangedAlert(error.body.alert);
      form.elements.outcome.focus(); // the button she pressed waits for the outcome she must choose again
      refreshAlerts();
      // The view behind the dialog shows the alert as it is now too: its 412 holds the alert, not its answers.
      if (from === "patient") refreshPatient();
    } else if (error.status === 409 || error.status === 404) {
      $("resolve-dialog").close(); // the close handler puts the focus back where the dialog was opened from
      toastError(error);
      pendingFlash.add(alertId);
      refreshAlerts();
      if (from === "patient") await showPatientAfterStep(alertId, null);
    } else {
      $("resolve-error").textContent = error.detail || String(error);
      $("resolve-error").hidden = false;
      toastError(error);
    }
  } finally {
    submit.textContent = "Clôturer l'alerte";
    updateResolveForm();
  }
}

/** Back to the button that opened a dialog, or its replacement if a live refresh re-rendered it. */
function returnFocus({ alertId, trigger, from }, action) {
  if (trigger && trigger.isConnected) {
    trigger.focus();
    return;
  }
  const escaped = CSS.escape(alertId);
  const selectors =
    action === "reopen" || from === "patient"
      ? // The same button, else what the view offers for that alert now (a reloaded view may show "Je prends" where
        // "Clôturer" was), else the alert in its history.
        [
          `#patient-view [data-action="${action}"][data-alert-id="${escaped}"]`,
          `#patient-view [data-action][data-alert-id="${escaped}"]`,
          `#patient-view [data-prior-alert-id="${escaped}"]`,
        ]
      : [`#alert-rows tr[data-alert-id="${escaped}"] [data-action]`];
  const replacement = selectors.map((selector) => document.querySelector(selector)).find(Boolean);
  if (replacement) replacement.focus();
  else if (state.view === "alerts") $("alerts-heading").focus();
}

// Reopen dialog
let reopenTarget = null;

function openReopenDialog(alertId, trigger) {
  const form = $("reopen-form");
  form.reset();
  $("reopen-error").hidden = true;
  reopenTarget = { alertId, trigger };
  $("reopen-dialog").showModal();
  form.elements.reason.focus();
}

async function submitReopen(event) {
  event.preventDefault();
  if (!reopenTarget) return;
  const form = $("reopen-form");
  const reason = form.elements.reason.value.trim();
  const submit = form.querySelector('[data-action="confirm-reopen"]');
  submit.disabled = true;
  try {
    const alertId = reopenTarget.alertId;
    const updated = await api.reopen(alertId, reason || undefined);
    rememberOwnStep("alert.reopened", alertId);
    reopenTarget = null;
    $("reopen-dialog").close();
    mergeAlert(state.alerts, updated);
    renderAlerts();
    toast("Alerte rouverte : elle revient dans la liste des alertes actives.", "success");
    refreshAlerts();
    if (state.patient) await showPatientAfterStep(alertId, null);
  } catch (error) {
    if (endedWithSession(error)) return;
    $("reopen-error").textContent = error.detail || String(error);
    $("reopen-error").hidden = false;
    toastError(error);
  } finally {
    submit.disabled = false;
  }
}

/**
 * After a step on an alert taken in the patient view (taken, closed, reopened): the view as it is now, and the
 * focus on what comes next for that alert (`nextAction`, "Clôturer" once taken) or else on its history, since the
 * button used is gone with the re-render.
 */
async function showPatientAfterStep(alertId, nextAction) {
  if (!state.patient || state.view !== "patient") return;
  await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
  if (state.view !== "patient") return;
  const escaped = CSS.escape(alertId);
  const view = $("patient-view");
  const next = nextAction && view.querySelector(`[data-action="${nextAction}"][data-alert-id="${escaped}"]`);
  const item = view.querySelector(`[data-prior-alert-id="${escaped}"]`);
  const target = next || item || $("history-title") || $("patient-title");
  if (target && !next && !item) target.setAttribute("tabindex", "-1");
  target?.focus();
}

// ---------------------------------------------------------------------------------------------------
// Views and routing (#alertes, #patient/<id>[/<alert id>], #indicateurs)
// ---------------------------------------------------------------------------------------------------

let returnToAlertId = null;

function showView(view) {
  const previous = state.view;
  state.view = view;
  $("alerts-view").hidden = view !== "alerts";
  $("patient-view").hidden = view !== "patient";
  $("metrics-view").hidden = view !== "metrics";
  for (const tab of document.querySelectorAll(".tabs a")) {
    const current = tab.dataset.view === (view === "patient" ? "alerts" : view);
    if (current) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (view === "alerts" && previous !== "alerts") {
    state.patient = null;
    releasePhotos(); // the photos seen are let go of with the view
    const row =
      returnToAlertId && document.querySelector(`#alert-rows tr[data-alert-id="${CSS.escape(returnToAlertId)}"]`);
    if (row) row.querySelector('[data-action="open-patient"]')?.focus();
    else if (previous) $("alerts-heading").focus();
    returnToAlertId = null;
    tickWaitingTimes();
  }
}

function route() {
  if (!state.me) return;
  // A dialog belongs to the view it was opened from.
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  let hash = "";
  try {
    hash = decodeURIComponent(location.hash.replace(/^#/, ""));
  } catch {
    hash = ""; // a mangled address: show the list
  }
  if (hash.startsWith("patient/")) {
    const [, patientId, alertId] = hash.split("/");
    if (patientId && UUIDISH.test(patientId)) {
      showView("patient");
      loadPatient(patientId, alertId && UUIDISH.test(alertId) ? alertId : null);
      return;
    }
  }
  if (hash === "indicateurs") {
    showView("metrics");
    loadMetrics();
    $("metrics-heading").focus();
    return;
  }
  showView("alerts");
}

// --- Patient view -----------------------------------------------------------------------------------

let patientRequest = 0;

async function loadPatient(patientId, alertId, { keepFocus = false } = {}) {
  const container = $("patient-view");
  const request = ++patientRequest;
  const scrollY = window.scrollY;
  if (!keepFocus) renderPatientLoading(container, patientId);
  if (!keepFocus) $("patient-title")?.focus();
  try {
    const [timeline, alertDetail] = await Promise.all([
      api.timeline(patientId),
      alertId ? api.alert(alertId).catch(() => null) : Promise.resolve(null),
    ]);
    if (request !== patientRequest || state.view !== "patient") return;
    if (state.patient && state.patient.patientId !== patientId) releasePhotos();
    state.patient = { patientId, alertId, timeline: timeline || {}, alertDetail };
    // The control focused now (a dialog just closed may have given it the focus while this view was loading) is
    // replaced by the render: the focus goes to the same control of the new view.
    const focused = keepFocus && container.contains(document.activeElement) ? document.activeElement : null;
    renderPatient(container, state.patient);
    loadPhotos(container, state.config && state.config.questionnaire_url);
    if (keepFocus) {
      window.scrollTo(0, scrollY);
      if (focused && !focused.isConnected) refocusPatientControl(focused);
    } else $("patient-title")?.focus();
  } catch (error) {
    if (request !== patientRequest || endedWithSession(error)) return;
    renderPatientError(container, patientId, error.detail || "Dossier indisponible.");
    toastError(error);
  }
}

/** The focus back on what a re-rendered patient view offers in place of ``control``, else on its title. */
function refocusPatientControl(control) {
  const alertId = control.dataset.alertId || control.dataset.priorAlertId;
  if (alertId) returnFocus({ alertId, trigger: null, from: "patient" }, control.dataset.action);
  if (!$("patient-view").contains(document.activeElement)) $("patient-title")?.focus();
}

/** The open patient view as it is now, the focus and the scroll left where they are. */
function refreshPatient() {
  if (state.view !== "patient" || !state.patient) return;
  loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
}

/** The closing dialog for the patient view's alert in progress, showing it as the view does. */
function openPatientResolveDialog(alertId, trigger) {
  const shown = state.patient && state.patient.alertDetail;
  if (!shown || shown.id !== alertId) return;
  openResolveDialog(alertId, trigger, { shown, from: "patient" });
}

/** The questionnaire a nurse fills in for the open patient during a phone call (phone.js). */
function openPhoneEntry(trigger) {
  if (!state.patient) return;
  const { patientId } = state.patient;
  openPhoneQuestionnaire({
    baseUrl: state.config && state.config.questionnaire_url,
    patientId,
    patientLabel: patientShortId(patientId),
    trigger,
    onSaved: () => {
      if (state.patient && state.patient.patientId === patientId) markPatientStale();
    },
  });
}

/** New data for the open patient: offer a refresh rather than re-render under the nurse's hands. */
function markPatientStale() {
  if (state.view !== "patient" || !state.patient) return;
  const container = $("patient-view");
  if (container.querySelector(".stale-patient")) return;
  const head = container.querySelector(".view-head");
  if (!head) return;
  head.append(
    h(
      "span",
      { class: "stale-patient", role: "status" },
      "Nouvelles informations pour ce patient. ",
      h("button", { type: "button", class: "btn btn-secondary", dataset: { action: "refresh-patient" } }, "Actualiser"),
    ),
  );
}

async function submitExpected(form) {
  if (!state.patient) return;
  const term = form.elements.term.value;
  const grade = Number(form.elements.grade.value);
  const until = form.elements.until.value;
  const today = parisDay();
  const max = addDays(today, MAX_EXPECTED_DAYS - 1); // 30 days in all, today included
  if (!term) {
    toast("Choisissez un symptôme.", "error");
    form.elements.term.focus();
    return;
  }
  if (!/^\d{4}-\d{2}-\d{2}$/.test(until) || until < today || until > max) {
    toast(
      `Choisissez une date entre aujourd'hui et le ${formatIsoDay(max)} (${MAX_EXPECTED_DAYS} jours au plus).`,
      "error",
    );
    form.elements.until.focus();
    return;
  }
  const submit = form.querySelector('[data-action="set-expected"]');
  submit.disabled = true;
  try {
    await api.setExpected(state.patient.patientId, term, grade, until);
    toast(
      `Niveau attendu enregistré : ${termLabel(term)}, jusqu'au grade ${grade}, jusqu'au ${formatIsoDay(until)}.`,
      "success",
    );
    await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
    $("expected-title")?.setAttribute("tabindex", "-1");
    $("expected-title")?.focus();
  } catch (error) {
    if (!endedWithSession(error)) toastError(error);
  } finally {
    if (submit.isConnected) submit.disabled = false;
  }
}

async function removeExpected(term, button) {
  if (!state.patient) return;
  button.disabled = true;
  try {
    await api.deleteExpected(state.patient.patientId, term);
    toast(`Niveau attendu retiré : ${termLabel(term)}.`, "success");
    await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
    $("expected-title")?.setAttribute("tabindex", "-1");
    $("expected-title")?.focus();
  } catch (error) {
    if (!endedWithSession(error)) toastError(error);
    if (button.isConnected) button.disabled = false;
  }
}

// --- Metrics view -----------------------------------------------------------------------------------

let metricsRequest = 0;

async function loadMetrics() {
  const form = $("period-form");
  form.elements.from.value = state.period.from;
  form.elements.to.value = state.period.to;
  form.elements.to.max = parisDay();
  const container = $("metrics-content");
  const request = ++metricsRequest;
  renderMetricsMessage(container, "Chargement des indicateurs…");
  try {
    const metrics = await api.metrics(state.period.from, state.period.to);
    if (request !== metricsRequest) return;
    renderMetrics(container, metrics || {});
  } catch (error) {
    if (request !== metricsRequest || endedWithSession(error)) return;
    renderMetricsMessage(container, error.detail || "Indicateurs indisponibles.", true);
    toastError(error);
  }
}

function submitPeriod(event) {
  event.preventDefault();
  const form = $("period-form");
  const from = form.elements.from.value;
  const to = form.elements.to.value;
  const problem = periodProblem(from, to);
  if (problem) {
    toast(problem, "error");
    if (problem === PERIOD_TOO_LONG) form.elements.from.focus();
    return;
  }
  state.period = { from, to };
  loadMetrics();
}

function quickPeriod(days) {
  state.period = lastDays(days);
  loadMetrics();
}

// ---------------------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------------------

function renderSoundToggle() {
  const button = $("sound-toggle");
  // The text says the state (a pressed/unpressed toggle with a changing label would say it twice).
  button.dataset.sound = sound.enabled ? "on" : "off";
  button.querySelector(".sound-text").textContent = `Son : ${sound.enabled ? "activé" : "désactivé"}`;
}

function wire() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = $("token-input")
      .value.trim()
      .replace(/^Bearer\s+/i, "");
    if (!raw) {
      showSignIn("Collez d'abord un jeton d'accès.");
      return;
    }
    $("token-input").value = "";
    signInWithToken(raw);
  });

  $("dev-users").addEventListener("click", async (event) => {
    const button = event.target.closest('[data-action="dev-login"]');
    if (!button) return;
    button.disabled = true;
    try {
      const body = await api.devToken(button.dataset.staffId);
      if (!body || typeof body.token !== "string") throw new ApiError(500, "", "Réponse inattendue du serveur.");
      await signInWithToken(body.token);
    } catch (error) {
      showSignIn(error.detail || String(error));
    } finally {
      button.disabled = false;
    }
  });

  $("sign-out").addEventListener("click", signOutByChoice);
  $("provider-sign-in").addEventListener("click", async () => {
    $("provider-sign-in").disabled = true;
    await signIn.begin(); // the page is left, or the sign-in screen says why not
    renderProviderSignIn();
  });
  $("session-renew").addEventListener("click", () => signOut("Reconnectez-vous pour continuer."));

  $("sound-toggle").addEventListener("click", () => {
    sound.unlock();
    sound.setEnabled(!sound.enabled);
    renderSoundToggle();
    if (sound.enabled) setTimeout(() => sound.beep({ force: true }), 50);
    $("sound-blocked").hidden = true;
  });
  renderSoundToggle();

  $("red-banner-close").addEventListener("click", hideBanner);
  $("red-banner-show").addEventListener("click", () => {
    const alertId = $("red-banner").dataset.alertId;
    hideBanner();
    if (state.view !== "alerts") location.hash = "#alertes";
    const row = alertId && document.querySelector(`#alert-rows tr[data-alert-id="${CSS.escape(alertId)}"]`);
    if (row) {
      row.scrollIntoView({ block: "center" });
      row.querySelector("[data-action]")?.focus();
    }
  });

  for (const input of document.querySelectorAll('input[name="level-filter"], input[name="status-filter"]')) {
    input.addEventListener("change", () => {
      state.filters = {
        level: document.querySelector('input[name="level-filter"]:checked').value,
        status: document.querySelector('input[name="status-filter"]:checked').value,
      };
      renderAlerts();
    });
  }

  $("alert-rows").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const row = button.closest("tr[data-alert-id]");
    if (!row) return;
    const alertId = row.dataset.alertId;
    switch (button.dataset.action) {
      case "ack":
        acknowledge(alertId, button);
        break;
      case "resolve":
        openResolveDialog(alertId, button);
        break;
      case "open-patient":
        returnToAlertId = alertId;
        location.hash = `#patient/${encodeURIComponent(button.dataset.patientId)}/${encodeURIComponent(alertId)}`;
        break;
      default:
        break;
    }
  });

  const patientView = $("patient-view");
  patientView.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    switch (button.dataset.action) {
      case "back":
        location.hash = "#alertes";
        break;
      case "refresh-patient":
        refreshPatient();
        break;
      case "reopen":
        openReopenDialog(button.dataset.alertId, button);
        break;
      case "ack":
        acknowledge(button.dataset.alertId, button, { from: "patient" });
        break;
      case "resolve":
        openPatientResolveDialog(button.dataset.alertId, button);
        break;
      case "remove-expected":
        removeExpected(button.dataset.term, button);
        break;
      case "phone-entry":
        openPhoneEntry(button);
        break;
      case "open-photo":
        openPhoto(button);
        break;
      default:
        break;
    }
  });
  patientView.addEventListener("submit", (event) => {
    if (event.target.id !== "expected-form") return;
    event.preventDefault();
    submitExpected(event.target);
  });

  const resolveForm = $("resolve-form");
  resolveForm.addEventListener("submit", submitResolve);
  resolveForm.addEventListener("input", updateResolveForm);
  resolveForm.addEventListener("change", updateResolveForm);
  $("resolve-dialog").addEventListener("close", () => {
    const target = resolveTarget;
    resolveTarget = null;
    if (target) returnFocus(target, "resolve");
  });
  $("reopen-form").addEventListener("submit", submitReopen);
  $("reopen-dialog").addEventListener("close", () => {
    const target = reopenTarget;
    reopenTarget = null;
    if (target) returnFocus(target, "reopen");
  });
  for (const button of document.querySelectorAll('[data-action="cancel-dialog"]')) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  $("period-form").addEventListener("submit", submitPeriod);
  for (const button of document.querySelectorAll("[data-period-days]")) {
    button.addEventListener("click", () => quickPeriod(Number(button.dataset.periodDays)));
  }

  window.addEventListener("hashchange", route);
}

async function boot() {
  wire();
  // Before anything else: the provider's answer leaves the address bar (a code is good once, and never belongs in
  // the history), then the config names the endpoint to exchange it at.
  const callback = signIn.takeCallback();
  state.config = await signIn.loadConfig();
  if (callback) {
    await signInFromProvider(callback);
  } else if (getToken()) {
    await signInWithToken(getToken());
  } else {
    showSignIn();
  }
}

boot();
