// What a staff page needs whatever its service: the DOM helper `h` (data only ever as text nodes and attributes,
// never innerHTML), French dates and numbers, and the authenticated request with RFC 9457 problems.
//
// The staff token is pasted by the person, kept in sessionStorage only (gone with the tab, never in a URL, never in
// localStorage) and sent as a bearer token. `h` and the Idempotency-Key are every page's (page.js); the nurse
// dashboard still has its own French formats and requests (dashboard/format.js, api.js), richer than these.

export { append, h, newKey } from "./page.js";

// --- French formats (Europe/Paris: the day hospital's clock, whatever the computer's) -----------------------------

const ZONE = "Europe/Paris";
const DAY = new Intl.DateTimeFormat("fr-FR", { timeZone: ZONE, day: "numeric", month: "long", year: "numeric" });
const DAY_TIME = new Intl.DateTimeFormat("fr-FR", { timeZone: ZONE, dateStyle: "short", timeStyle: "short" });
const TIME = new Intl.DateTimeFormat("fr-FR", { timeZone: ZONE, hour: "2-digit", minute: "2-digit" });
const NUMBER = new Intl.NumberFormat("fr-FR");

/** "12 mars 2026" for a calendar date (YYYY-MM-DD, no zone: the day as written) or an instant. */
export function formatDay(value) {
  if (!value) return "—";
  const day = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T12:00:00Z`) : new Date(value);
  return Number.isNaN(day.getTime()) ? "—" : DAY.format(day);
}

export function formatDateTime(value) {
  if (!value) return "—";
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? "—" : DAY_TIME.format(moment);
}

/** "14:05" (Paris time) for an instant. */
export function formatTime(value) {
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? "—" : TIME.format(moment);
}

export function formatNumber(value) {
  return value === null || value === undefined ? "—" : NUMBER.format(value);
}

/** Today in Paris, as YYYY-MM-DD (what a date input takes). */
export function parisDay(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: ZONE }).format(date);
}

/** A pseudonymous id, shortened for a table: the first 8 characters (the whole id is in the title and copied). */
export function shortId(id) {
  return typeof id === "string" ? `${id.slice(0, 8)}…` : "—";
}

// --- Requests ------------------------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}

export function tokenStore(key) {
  return {
    get() {
      try {
        return sessionStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(token) {
      sessionStorage.setItem(key, token);
    },
    clear() {
      try {
        sessionStorage.removeItem(key);
      } catch {
        // storage disabled: nothing to clear
      }
    },
  };
}

const TIMEOUT_MS = 15000;

function fallback(status) {
  if (status === 401) return "Votre session n'est plus valide : reconnectez-vous.";
  if (status === 403) return "Votre compte n'a pas les droits pour cette action.";
  if (status === 404) return "Cet élément n'existe pas (ou plus).";
  if (status >= 500) return `Le serveur a rencontré une erreur (${status}). Réessayez dans un instant.`;
  return `La demande a été refusée (${status}).`;
}

/**
 * A client whose requests carry the stored token. Resolves with the JSON (null for 204); rejects with an ApiError
 * whose `detail` is the server's own (status 0: the network), and calls `onUnauthorized` on a 401 or 403.
 */
export function client(store, { onUnauthorized } = {}) {
  return async function request(method, path, { body, headers: extra } = {}) {
    const headers = { Accept: "application/json, application/problem+json", ...extra };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = store.get();
    if (token) headers.Authorization = `Bearer ${token}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "Le serveur ne répond pas. Vérifiez la connexion réseau et réessayez.");
    } finally {
      clearTimeout(timer);
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const detail = parsed && typeof parsed.detail === "string" ? parsed.detail : fallback(response.status);
      const error = new ApiError(response.status, detail, parsed);
      if ((response.status === 401 || response.status === 403) && onUnauthorized) onUnauthorized(error);
      throw error;
    }
    return parsed;
  };
}
