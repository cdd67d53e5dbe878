// HTTP access to the alerting service: the staff pages' client (/web/staff.js) with the dashboard's token key, its
// French sentences for the problems a nurse can meet, and the alerting service's endpoints.

import { ApiError, client, SESSION_WORDS, statusSentence, tokenStore } from "../web/staff.js";

export { ApiError };

const store = tokenStore("oncofollow.staffToken");
export const getToken = store.get;
export const setToken = store.set;
export const clearToken = store.clear;

const PROBLEM_BASE = "https://oncofollow.example/problems/";

// The identity provider's ID token sent in place of its access token: the same words on every staff page.
export const ID_TOKEN_REFUSAL = SESSION_WORDS.idToken;

/** The French sentence for the problems a nurse can meet on this page, from the problem's type. */
function frenchDetail(status, body) {
  const kind = body && typeof body.type === "string" ? body.type.replace(PROBLEM_BASE, "") : "";
  if (kind === "alert-changed")
    return "L'alerte a changé depuis que vous l'avez ouverte. Vérifiez avant de clôturer.";
  if (kind === "alert-conflict") {
    if (body.alert_status === "acknowledged") return "Quelqu'un de l'équipe a déjà pris cette alerte.";
    if (body.alert_status === "resolved") return "Cette alerte est déjà clôturée.";
    if (body.alert_status === "open") return "Seule une alerte clôturée peut être rouverte.";
    return "Cette action n'est plus possible : l'alerte a changé entre-temps.";
  }
  if (kind === "id-token") return ID_TOKEN_REFUSAL;
  if (kind === "identity-provider-unavailable") return SESSION_WORDS.providerUnreachable;
  if (kind === "missing-token" || kind === "invalid-token") return SESSION_WORDS.invalid;
  if (kind === "missing-role" || kind === "wrong-token") return statusSentence(403);
  if (status === 404) return statusSentence(404);
  // The service's own check of a date the page sent (a validation problem, with `errors`, found it unreadable:
  // its pointer is the same, its sentence is not).
  const dateCheck = status === 422 && body && !Array.isArray(body.errors);
  if (dateCheck && body.pointer === "/until")
    return "La date de fin doit être aujourd'hui ou dans les 30 prochains jours.";
  if (dateCheck && body.pointer === "/from") {
    return Number.isInteger(body.max_days)
      ? `Choisissez une période de ${body.max_days} jours au plus.`
      : "La date de début doit précéder la date de fin.";
  }
  if (status === 422) return "Vérifiez les valeurs saisies.";
  if (status === 503) return "Le service est momentanément surchargé. Réessayez dans un instant.";
  return "";
}

/** What no sentence above covers: by its status, never the problem's English title nor a status alone. */
function fallbackDetail(status, body, title) {
  // The technical detail is for the support desk, who will find it in the browser's console.
  console.info("alerting service:", status, title, body && typeof body.detail === "string" ? body.detail : "");
  return statusSentence(status);
}

const staff = client(store, {
  // A 403 refuses one action (another role's), not the nurse: only an expired or revoked token ends her session.
  signOutOn: [401],
  credentials: "same-origin",
  // The API's problem details are in English (it is an API); nurses read French.
  describe: (status, body, title) => frenchDetail(status, body) || fallbackDetail(status, body, title),
  unreachable: "Le serveur ne répond pas. Vérifiez la connexion réseau.",
  timedOut: "Le serveur met trop de temps à répondre. Réessayez.",
});

/**
 * One request. `auth: false` for the public endpoints. Resolves with the parsed JSON (null for 204), rejects with an
 * ApiError (status 0 for network failures and timeouts; `cancelled` when the session ended first).
 */
export const request = staff.request;
/** Called with the ApiError when an authenticated request answers 401 (expired or revoked token). */
export const onUnauthorized = staff.onUnauthorized;
/** Signing out aborts the session's requests still in flight: no answer meant for one nurse reaches the next. */
export const endSessionRequests = staff.endSession;

const enc = encodeURIComponent;

export const api = {
  devToken: (staffId) => request("POST", "/v1/dashboard/dev-token", { auth: false, body: { staff_id: staffId } }),
  me: () => request("GET", "/v1/me"),
  reference: () => request("GET", "/v1/reference"),
  alerts: (offset, limit) =>
    request("GET", `/v1/alerts?status=open&status=acknowledged&offset=${enc(offset)}&limit=${enc(limit)}`),
  alert: (id) => request("GET", `/v1/alerts/${enc(id)}`),
  ack: (id) => request("POST", `/v1/alerts/${enc(id)}/ack`),
  // `version`: the updated_at of the alert the dialog showed; the server refuses to close another one (412).
  resolve: (id, outcome, note, version) =>
    request("POST", `/v1/alerts/${enc(id)}/resolve`, {
      body: note ? { outcome, note } : { outcome },
      headers: version ? { "If-Match": `"${version}"` } : undefined,
    }),
  reopen: (id, reason) => request("POST", `/v1/alerts/${enc(id)}/reopen`, { body: reason ? { reason } : {} }),
  timeline: (patientId) => request("GET", `/v1/patients/${enc(patientId)}/timeline`),
  setExpected: (patientId, term, grade, until) =>
    request("PUT", `/v1/patients/${enc(patientId)}/expected-levels/${enc(term)}`, { body: { grade, until } }),
  deleteExpected: (patientId, term) => request("DELETE", `/v1/patients/${enc(patientId)}/expected-levels/${enc(term)}`),
  metrics: (from, to) => request("GET", `/v1/metrics?from=${enc(from)}&to=${enc(to)}`),
  streamToken: () => request("POST", "/v1/alerts/stream-token"),
};

const ALERT_PAGE_SIZE = 500; // the API's largest page
export const MAX_ALERTS_SHOWN = 2000;

/**
 * Every active alert, in triage order, page by page up to MAX_ALERTS_SHOWN (the most urgent, red first), with
 * the server's totals and how many active alerts are beyond that cap (`notShown`).
 */
export async function activeAlerts() {
  const items = [];
  const seen = new Set();
  let totals = null;
  let cut = false;
  for (let offset = 0; offset < MAX_ALERTS_SHOWN; offset += ALERT_PAGE_SIZE) {
    const limit = Math.min(ALERT_PAGE_SIZE, MAX_ALERTS_SHOWN - offset);
    const body = await api.alerts(offset, limit);
    const page = Array.isArray(body && body.items) ? body.items.filter((item) => item && item.id) : [];
    if (body && body.totals && typeof body.totals === "object") totals = body.totals;
    // An alert that moved up between two pages would come twice: once is enough.
    for (const item of page) {
      if (seen.has(item.id)) continue;
      seen.add(item.id);
      items.push(item);
    }
    if (page.length < limit) break;
    cut = offset + limit >= MAX_ALERTS_SHOWN;
  }
  const total = totals && Number.isInteger(totals.total) ? totals.total : items.length;
  return { items, totals, notShown: cut ? Math.max(0, total - items.length) : 0 };
}
