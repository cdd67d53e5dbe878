// Nurse dashboard: sign-in, the open-alerts list kept live by the SSE stream, the patient view, the
// team figures. Plain ES modules, no build step, no external resource.
//
// The entry point: the page's state, the modules made with what each needs, what a sign-in starts and a sign-out
// stops. Each module owns its part: session.js who is signed in; views.js which view shows; list.js the alert list
// and its cues; live.js the stream; steps.js an alert's steps and dialogs; patientview.js and metricsview.js the
// other two views. They call each other only through what is passed to them here.

import { api, getToken } from "./api.js";
import { $, errorText, toast } from "./dom.js";
import { setReference } from "./format.js";
import { defaultPeriod } from "./metrics.js";
import { forgetPhoneEntry, keepPhoneEntry } from "./phone.js";
import { Sound } from "./sound.js";
import { createSession, endedWithSession } from "./session.js";
import { createViews } from "./views.js";
import { createList } from "./list.js";
import { createLive } from "./live.js";
import { createPatientView } from "./patientview.js";
import { createSteps } from "./steps.js";
import { createMetricsView } from "./metricsview.js";

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

// Some modules need one made after them (the list follows the closing dialog, the views load the patient's): those
// are called through arrows, only once every module is made (a click, a list's answer, a route).
const session = createSession({ state, start: startApp, keep: keepWork, stop: stopApp });
const views = createViews({
  state,
  showPatient: (patientId, alertId) => patientView.loadPatient(patientId, alertId),
  showMetrics: () => metricsView.loadMetrics(),
});
const list = createList({ state, session, sound: new Sound(), onLoaded: () => steps.followResolveTarget() });
const patientView = createPatientView({ state, returnFocus: views.returnFocus });
const live = createLive({ state, list, markPatientStale: patientView.markPatientStale });
const steps = createSteps({
  state,
  list,
  rememberOwnStep: live.rememberOwnStep,
  patientView,
  returnFocus: views.returnFocus,
});
const metricsView = createMetricsView({ state });

async function startApp(me) {
  state.me = { staff_id: me.staff_id, roles: Array.isArray(me.roles) ? me.roles : [] };
  const generation = session.generation();
  $("signin-screen").hidden = true;
  $("app").hidden = false;
  // Who is signed in, as colleagues know her; the id (what the audit trail records) on hover.
  $("staff-id").textContent = typeof me.name === "string" && me.name ? me.name : state.me.staff_id;
  $("staff-id").title = state.me.staff_id;
  const env = state.config && state.config.environment;
  $("env-badge").hidden = env !== "development";
  session.watchSession(me);

  try {
    setReference(await api.reference());
  } catch (error) {
    if (endedWithSession(error) || !session.isCurrentSession(generation)) return;
    toast(`Les noms des symptômes n'ont pas pu être chargés : leurs codes s'affichent à la place. ${errorText(error)}`, "error");
  }
  if (!session.isCurrentSession(generation)) return; // signed out meanwhile (and perhaps another nurse in)

  list.renderAlerts();
  list.refreshAlerts().then(steps.restoreClosing);
  patientView.remindPhoneEntry();
  live.startStream();
  list.start();
  views.route();
}

/** At sign-out, before anything is forgotten: her work in progress, kept for her after an expiry, else dropped. */
function keepWork(keepDraft) {
  const closing = steps.keepClosing(keepDraft);
  if (!keepDraft) forgetPhoneEntry();
  const phone = keepDraft && keepPhoneEntry(state.me && state.me.staff_id);
  return { closing, phone };
}

/** What the previous nurse did, was told or was about to be told stays hers: the next one starts clean. */
function stopApp() {
  live.forget();
  list.forget();
  steps.forget();
  views.forget();
  patientView.forget();
  metricsView.forget();
}

function wire() {
  session.wire();
  list.wire({ acknowledge: steps.acknowledge, resolve: steps.openResolveDialog, openPatient: views.openPatient });
  patientView.wire({
    reopen: steps.openReopenDialog,
    acknowledge: (alertId, button) => steps.acknowledge(alertId, button, { from: "patient" }),
    resolve: steps.openPatientResolveDialog,
  });
  steps.wire();
  metricsView.wire();
  views.wire();
}

async function boot() {
  wire();
  // Before anything else: the provider's answer leaves the address bar (a code is good once, and never belongs in
  // the history), then the config names the endpoint to exchange it at.
  const callback = session.signIn.takeCallback();
  state.config = await session.signIn.loadConfig();
  if (callback) {
    await session.signInFromProvider(callback);
  } else if (getToken()) {
    await session.signInWithToken(getToken());
  } else {
    session.showSignIn();
  }
}

boot();
