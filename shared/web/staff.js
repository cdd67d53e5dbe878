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

// --- The session's words -------------------------------------------------------------------------------------------

/**
 * One sentence for each way a staff session ends or is refused, the same on every staff page: a nurse who also
 * lends tablets reads the same words on the dashboard and on the fleet page (tests/unit/shared/
 * test_staff_pages_french.py fails on a page that writes its own).
 */
export const SESSION_WORDS = Object.freeze({
  // The person chose to leave.
  signedOut: "Vous êtes déconnecté·e.",
  // The banner's button, before the session ends.
  signInAgain: "Reconnectez-vous pour continuer.",
  // A request refused for its token (401), as a refusal's message.
  invalid: "Votre session n'est plus valide. Reconnectez-vous.",
  // The session ended under way (expired, revoked, closed elsewhere), or a token kept in the tab no longer works.
  endedWithProvider: "Votre session n'est plus valide. Reconnectez-vous avec le compte de l'hôpital.",
  endedWithToken: "Votre session n'est plus valide. Collez un nouveau jeton.",
  // A token just pasted, refused.
  tokenRefused: "Ce jeton n'est pas valide ou a expiré. Collez un nouveau jeton.",
  // A token the provider has just given, refused by the page's service: signing in again would not help.
  providerTokenRefused:
    "Cette page n'a pas reconnu la connexion de l'hôpital. Réessayez, ou prévenez le support informatique.",
  providerFailed: "La connexion avec le compte de l'hôpital a échoué.",
  // A request the service could not check: the provider's keys out of reach (503 identity-provider-unavailable).
  providerUnreachable:
    "Le service d'identité de l'hôpital ne répond pas : votre connexion n'a pas pu être vérifiée. Réessayez dans quelques secondes.",
  // The provider's ID token sent in place of its access token: the hospital's sign-in is misconfigured, and signing
  // in again brings the same token back, so the person is sent to those who can change the setting.
  idToken: "Contactez le support informatique : la connexion de l'hôpital envoie un jeton d'identité au lieu d'un jeton d'accès.",
});

/** The banner a few minutes before the session ends (`time`: "14:05"). */
export function sessionEndsAt(time) {
  return `Votre session se termine à ${time} — reconnectez-vous pour continuer.`;
}

/** An account or a token without the page's role (`role`: its name as the person's administrator knows it). */
export function missingRole(role, { provider }) {
  return provider
    ? `Votre compte de l'hôpital n'a pas le rôle ${role} nécessaire à cette page. Demandez-le à l'administrateur des comptes de l'hôpital.`
    : `Ce jeton n'a pas le rôle ${role} nécessaire à cette page. Collez le jeton d'un compte qui l'a.`;
}

/**
 * The sign-in screen's sentence when the page's service refuses the token (`status` 401 or 403). `provider`: the
 * token came from the hospital's sign-in; `fresh`: it has just come (not kept from before); `pasted`: it has just
 * been pasted; `idToken`: the service said it was an ID token.
 */
export function sessionRefusal(status, { role, provider = false, fresh = false, pasted = false, idToken = false }) {
  if (idToken) return SESSION_WORDS.idToken;
  if (status === 403) return missingRole(role, { provider });
  if (provider) return fresh ? SESSION_WORDS.providerTokenRefused : SESSION_WORDS.endedWithProvider;
  return pasted ? SESSION_WORDS.tokenRefused : SESSION_WORDS.endedWithToken;
}

/** Whether a refusal is the service's "ID token instead of an access token". */
export function isIdTokenRefusal(error) {
  const type = error && error.body && typeof error.body.type === "string" ? error.body.type : "";
  return type.endsWith("/id-token");
}

// --- Requests ------------------------------------------------------------------------------------------------------

/** A page's own fault or an answer it cannot use: what the person can do (the details go to the console). */
export const UNEXPECTED =
  "La page a rencontré un problème inattendu. Rechargez la page ; si cela continue, prévenez le support informatique.";

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
  if (status === 401) return SESSION_WORDS.invalid;
  if (status === 403) return "Votre compte n'a pas les droits pour cette action.";
  if (status === 404) return "Cet élément n'existe pas (ou plus).";
  if (status === 429) return "Trop de demandes en peu de temps : patientez un instant, puis réessayez.";
  if (status >= 500) return `Le serveur a rencontré une erreur (${status}). Réessayez dans un instant.`;
  return `La demande a été refusée (erreur ${status}) : rechargez la page. Si cela continue, prévenez le support informatique.`;
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
