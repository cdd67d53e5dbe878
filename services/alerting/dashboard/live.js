// The live stream as the page uses it (stream.js keeps the connection): each event refreshes the list, an escalation
// is announced, news of the open patient offers "Nouvelles informations"; the connection's state above the list; the
// steps this page took itself, whose events are no news to it.

import { api, ApiError } from "./api.js";
import { $, toast } from "./dom.js";
import { AlertStream } from "./stream.js";

const SEEN_EVENTS_MAX = 2000;

// Steps this page took itself, for a short while: their live events tell the patient view nothing new (it reloads
// after each step), so they do not offer "Nouvelles informations". Kept briefly, because an event may also arrive
// before the step's own answer, and a later step of the same kind on the same alert is someone else's news.
const OWN_STEP_MS = 10_000;

const CONNECTION_TEXT = {
  live: "En direct",
  reconnecting: "Connexion perdue — reconnexion…",
  offline: "Hors ligne",
};

/** The words beside the connection's dot: "Connexion…" until a first connection has been made or has failed. */
export function connectionText(connection, { everLive = false, streamFailed = false } = {}) {
  let text = CONNECTION_TEXT[connection] ?? connection;
  if (connection === "reconnecting" && !everLive && !streamFailed) text = "Connexion…";
  return text;
}

/** Whether an event's payload is about the patient the view shows (`current`: `{patientId, timeline}`). */
export function concernsPatient(payload, current) {
  if (!current) return false;
  if (payload.patient_id && payload.patient_id === current.patientId) return true;
  const alerts = current.timeline && Array.isArray(current.timeline.alerts) ? current.timeline.alerts : [];
  return Boolean(payload.alert_id && alerts.some((alert) => alert.id === payload.alert_id));
}

/** `state`: the page's (`me`, `view`, `patient`, `everLive`, `streamFailed`); `list`; `markPatientStale()`. */
export function createLive({ state, list, markPatientStale }) {
  let stream = null;
  const seenEvents = new Set();
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
        list.refreshAlerts();
      },
      onReset: () => {
        toast("Une partie de l'historique en direct n'était plus disponible : la liste a été rechargée.");
        list.refreshAlerts();
        markPatientStale();
      },
      isFatal: (error) => error instanceof ApiError && (error.status === 401 || error.status === 403),
    });
    stream.start();
  }

  function renderConnectionState(connection, { failed = false } = {}) {
    const element = $("connection-state");
    if (connection === "live") state.everLive = true;
    if (failed) state.streamFailed = true;
    element.dataset.state = connection;
    element.querySelector(".connection-text").textContent = connectionText(connection, state);
    const notice = $("stale-notice");
    notice.hidden = connection === "live" || !(state.everLive || state.streamFailed) || !state.me;
  }

  function handleStreamEvent({ type, streamId, envelope }) {
    if (!state.me) return;
    const payload = envelope && envelope.data && typeof envelope.data === "object" ? envelope.data : {};
    const key =
      envelope && typeof envelope.id === "string" ? `event:${envelope.id}` : streamId ? `seq:${streamId}` : null;
    const fresh = rememberEvent(key);
    const alertId = typeof payload.alert_id === "string" ? payload.alert_id : null;

    if (alertId) list.flashLater(alertId);
    // What needs a nurse (new, turned red, back to open) is decided from the list this event refreshes
    // (cueChanges): after a reconnection, replayed events tell the past, the list tells what is active now.
    if (fresh && type === "alert.escalated") list.announceLater({ cause: "escalated", alertId, payload });
    const own = alertId !== null && isOwnStep(type, alertId);
    if (!own && state.view === "patient" && state.patient && concernsPatient(payload, state.patient))
      markPatientStale();
    // Whatever the type (even one this page does not know), the list from the server is the truth.
    list.refreshAlerts();
  }

  /** Her stream ends with her session, its position too: the next nurse's starts afresh. */
  function forget() {
    if (stream) {
      stream.stop();
      stream.forgetPosition();
      stream = null;
    }
    ownSteps.clear();
    seenEvents.clear();
    state.everLive = false;
    state.streamFailed = false;
  }

  return { startStream, rememberOwnStep, forget };
}
