// What a staff page needs whatever its service: the DOM helper `h` (data only ever as text nodes and attributes,
// never innerHTML), French dates and numbers, and the one client of every staff page's authenticated requests
// (the fleet page's and the nurse dashboard's), with RFC 9457 problems.
//
// The staff token is pasted by the person or comes from the hospital's sign-in, kept in sessionStorage only (gone
// with the tab, never in a URL, never in localStorage) and sent as a bearer token. `h` and the Idempotency-Key are
// every page's (page.js); the nurse dashboard still has its own French formats (dashboard/format.js), and its own
// sentences and endpoints for the client (dashboard/api.js).

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

/** An error the person can read: `detail` is shown as is (French, or the server's own when the page says so). */
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

/** The French sentence for a refusal known by its status only. */
export function statusSentence(status) {
  if (status === 401) return "Votre session n'est plus valide : reconnectez-vous.";
  if (status === 403) return "Votre compte n'a pas les droits pour cette action.";
  if (status === 404) return "Cet élément n'existe pas (ou plus).";
  if (status >= 500) return `Le serveur a rencontré une erreur (${status}). Réessayez dans un instant.`;
  return `La demande a été refusée (${status}).`;
}

/** The server's own detail: a page that translates problems by their type (fleet/problems.js) keeps it for support. */
function serverDetail(status, body) {
  return body && typeof body.detail === "string" ? body.detail : statusSentence(status);
}

const UNREACHABLE = "Le serveur ne répond pas. Vérifiez la connexion réseau et réessayez.";
// A proxy's or a portal's HTML page where JSON was expected: saying so beats a blank table.
const UNREADABLE = "Le serveur a envoyé une réponse illisible.";

/**
 * The client of a page whose requests carry the token of `store`. `request(method, path, {body, headers, auth,
 * signal, binary, timeout})` resolves with the JSON (null for 204) and rejects with an ApiError: status 0 for the
 * network, a timeout or `signal`; `cancelled` when the session ended first (`endSession`). With `binary`, the media
 * types asked for (["image/jpeg"]), it resolves with the answer's Blob instead, and an answer of another type (a
 * proxy's or a portal's page) is `unreadable`; refusals are read and told as for JSON. `timeout` (ms, 15 s by
 * default) runs until the whole answer is read: a photo's bytes too.
 *
 * What the pages differ in is an option, whose default is the fleet page's:
 * - `signOutOn`: the statuses that end the session: `onUnauthorized(error)` is called (a 403 too by default: every
 *   endpoint of such a page needs its role, so a token without it will never do);
 * - `credentials`: fetch's (no cookie is ever needed: the token is the session);
 * - `describe(status, body, title)`: the ApiError's `detail` for a refusal, from its problem (null if unreadable);
 * - `unreachable`, `timedOut`: the sentences of a request that got no answer;
 * - `unreadable`: the sentence of an answer that is not JSON (an ApiError with the answer's status).
 */
export function client(
  store,
  {
    onUnauthorized = null,
    signOutOn = [401, 403],
    credentials = "omit",
    describe = serverDetail,
    unreachable = UNREACHABLE,
    timedOut = unreachable,
    unreadable = UNREADABLE,
  } = {},
) {
  let unauthorized = onUnauthorized;
  // Every authenticated request belongs to the session that sent it: `endSession` aborts those still in flight, so
  // that an answer meant for one person never reaches the next at the same screen.
  let session = new AbortController();

  /** The error of a request whose session ended first: nobody's news (no message, no retry). */
  function sessionEnded() {
    const error = new ApiError(0, "Session terminée", "La session est terminée : la demande a été annulée.");
    error.cancelled = true;
    return error;
  }

  async function request(method, path, options = {}) {
    const ended = options.auth === false ? null : session.signal;
    const controller = new AbortController();
    const abort = () => controller.abort();
    ended?.addEventListener("abort", abort, { once: true });
    try {
      return await exchange(method, path, options, controller);
    } catch (error) {
      if (ended && ended.aborted) throw sessionEnded();
      throw error;
    } finally {
      ended?.removeEventListener("abort", abort);
    }
  }

  async function exchange(
    method,
    path,
    { body, auth = true, signal, headers: extra, binary = null, timeout = TIMEOUT_MS },
    controller,
  ) {
    const accept = binary ? [...binary, "application/problem+json"] : ["application/json", "application/problem+json"];
    const headers = { Accept: accept.join(", "), ...extra };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = auth ? store.get() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    const timer = setTimeout(() => controller.abort(), timeout);
    if (signal) signal.addEventListener("abort", () => controller.abort(), { once: true });
    // No answer, or one cut off: the network, the timeout, or the caller's `signal`.
    const noAnswer = () => {
      const late = controller.signal.aborted && !(signal && signal.aborted);
      return new ApiError(0, "Réseau", late ? timedOut : unreachable);
    };
    try {
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
          credentials,
          cache: "no-store",
        });
      } catch {
        throw noAnswer();
      }
      if (!response.ok) {
        // A problem is a few hundred bytes: its wait must not pass for the session's end below.
        clearTimeout(timer);
        const problem = await readProblem(response);
        // Not for a request whose session has ended meanwhile: the next person's session is not the expired one.
        const sessionGone = controller.signal.aborted;
        if (signOutOn.includes(problem.status) && auth && unauthorized && !sessionGone) unauthorized(problem);
        throw problem;
      }
      if (binary) {
        const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
        if (!binary.includes(type)) throw new ApiError(response.status, "Réponse illisible", unreadable);
        try {
          return await response.blob();
        } catch {
          throw noAnswer();
        }
      }
      if (response.status === 204) return null;
      let text;
      try {
        text = await response.text();
      } catch {
        throw noAnswer();
      }
      if (!text) return null;
      try {
        return JSON.parse(text);
      } catch {
        throw new ApiError(response.status, "Réponse illisible", unreadable);
      }
    } finally {
      clearTimeout(timer);
    }
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
    return new ApiError(response.status, title, describe(response.status, body, title), body);
  }

  return {
    request,
    /** Called with the ApiError when an authenticated request answers a status of `signOutOn`. */
    onUnauthorized(handler) {
      unauthorized = handler;
    },
    endSession() {
      session.abort();
      session = new AbortController();
    },
  };
}
