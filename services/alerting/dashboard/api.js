// HTTP access to the alerting service: staff token storage, JSON requests, RFC 9457 problems.
//
// The staff token lives in sessionStorage only (never in a URL, never in localStorage), so it is gone
// when the browser tab is closed.

const TOKEN_KEY = "oncofollow.staffToken";
const REQUEST_TIMEOUT_MS = 15000;

/** An error the user can read: `detail` is shown as is (it comes from the server's problem JSON). */
export class ApiError extends Error {
  constructor(status, title, detail, body = null) {
    super(detail || title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail || title || `Erreur ${status}`;
    this.body = body;
  }
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing to clear
  }
}

// Every authenticated request belongs to the nurse's session that sent it: signing out aborts those still in flight
// (endSessionRequests), so that an answer meant for one nurse never reaches the next at the same screen.
let sessionRequests = new AbortController();

export function endSessionRequests() {
  sessionRequests.abort();
  sessionRequests = new AbortController();
}

/** The error of a request whose session ended first: nobody's news (no message, no retry). */
function sessionEnded() {
  const error = new ApiError(0, "Session terminée", "La session est terminée : la demande a été annulée.");
  error.cancelled = true;
  return error;
}

let unauthorizedHandler = null;

/** Called once with the ApiError when an authenticated request answers 401 (expired or revoked token). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

async function readProblem(response) {
  let body = null;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  const title = body && typeof body.title === "string" ? body.title : response.statusText;
  // The API's problem details are in English (it is an API); nurses read French.
  return new ApiError(response.status, title, frenchDetail(response.status, body) || fallbackDetail(response.status, title), body);
}

const PROBLEM_BASE = "https://oncofollow.example/problems/";

/** The French sentence for the problems a nurse can meet on this page, from the problem's type. */
function frenchDetail(status, body) {
  const kind = body && typeof body.type === "string" ? body.type.replace(PROBLEM_BASE, "") : "";
  if (kind === "alert-changed")
    return "L'alerte a changé depuis que vous l'avez ouverte. Vérifiez avant de clôturer.";
  if (kind === "alert-conflict") {
    if (body.alert_status === "acknowledged") return "Une collègue a déjà pris cette alerte.";
    if (body.alert_status === "resolved") return "Cette alerte est déjà clôturée.";
    if (body.alert_status === "open") return "Seule une alerte clôturée peut être rouverte.";
    return "Cette action n'est plus possible : l'alerte a changé entre-temps.";
  }
  if (kind === "missing-token" || kind === "invalid-token") return "Votre session n'est plus valide. Reconnectez-vous.";
  if (kind === "missing-role" || kind === "wrong-token") return "Votre compte n'a pas les droits pour cette action.";
  if (status === 404) return "Cet élément n'existe pas (ou plus).";
  if (status === 422 && body && body.pointer === "/until")
    return "La date de fin doit être aujourd'hui ou dans les 30 prochains jours.";
  if (status === 422 && body && body.pointer === "/from") {
    return Number.isInteger(body.max_days)
      ? `Choisissez une période de ${body.max_days} jours au plus.`
      : "La date de début doit précéder la date de fin.";
  }
  if (status === 422) return "Vérifiez les valeurs saisies.";
  if (status === 503) return "Le service est momentanément surchargé. Réessayez dans un instant.";
  return "";
}

function fallbackDetail(status, title) {
  if (status === 401) return "Votre session n'est plus valide. Reconnectez-vous.";
  if (status === 403) return "Votre compte n'a pas les droits pour cette action.";
  if (status === 404) return "Élément introuvable.";
  if (status >= 500) return `Le serveur a rencontré une erreur (${status}). Réessayez dans un instant.`;
  return title || `Erreur ${status}`;
}

/**
 * One request. `auth: false` for the public endpoints. Resolves with the parsed JSON (null for 204),
 * rejects with an ApiError (status 0 for network failures and timeouts; `cancelled` when the session ended first).
 */
export async function request(method, path, options = {}) {
  const session = options.auth === false ? null : sessionRequests.signal;
  const controller = new AbortController();
  const abort = () => controller.abort();
  session?.addEventListener("abort", abort, { once: true });
  try {
    return await exchange(method, path, options, controller);
  } catch (error) {
    if (session && session.aborted) throw sessionEnded();
    throw error;
  } finally {
    session?.removeEventListener("abort", abort);
  }
}

async function exchange(method, path, { body, auth = true, signal, headers: extra }, controller) {
  const headers = { Accept: "application/json, application/problem+json", ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
  }
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  if (signal) signal.addEventListener("abort", () => controller.abort(), { once: true });
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    const timedOut = controller.signal.aborted && !(signal && signal.aborted);
    throw new ApiError(
      0,
      "Réseau",
      timedOut
        ? "Le serveur met trop de temps à répondre. Réessayez."
        : "Le serveur ne répond pas. Vérifiez la connexion réseau.",
    );
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const problem = await readProblem(response);
    // Not for a request whose session has ended meanwhile: the next nurse's session is not the expired one.
    const sessionGone = controller.signal.aborted;
    if (problem.status === 401 && auth && unauthorizedHandler && !sessionGone) unauthorizedHandler(problem);
    throw problem;
  }
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(response.status, "Réponse illisible", "Le serveur a envoyé une réponse illisible.");
  }
}

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
