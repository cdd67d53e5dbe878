// Sign-in with the hospital's identity provider: OpenID Connect authorization code with PKCE (S256), `state` and
// `nonce`, as a public client (no secret in a page). The provider's endpoints come from the dashboard's config,
// which the server reads from the provider's discovery document.
//
// What travels through the provider and back is in sessionStorage only, for this tab: the PKCE verifier, the state
// and the nonce until the code comes back, then the refresh token (if the provider gives one). No token is ever put
// in a URL: the code comes back in the query, is exchanged at once by a POST, and is removed from the address bar
// before anything else.

const PENDING_KEY = "oncofollow.providerPending";
const REFRESH_KEY = "oncofollow.refreshToken";
const METHOD_KEY = "oncofollow.signInMethod";
const PENDING_MAX_AGE_MS = 10 * 60 * 1000; // a sign-in left at the provider's page longer than this starts over
const EXCHANGE_TIMEOUT_MS = 15000;

/** A sign-in that did not succeed: `message` is the French sentence the sign-in screen shows. */
export class SignInError extends Error {
  constructor(message) {
    super(message);
    this.name = "SignInError";
  }
}

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

/** The page's own address, as the provider must know it (its registered redirect URI). */
export function redirectUri() {
  // The dashboard is registered at its directory (…/dashboard/), however the page was opened.
  return `${location.origin}${location.pathname.replace(/index\.html$/, "")}`;
}

function storage() {
  try {
    return sessionStorage;
  } catch {
    return null;
  }
}

/** Off to the provider's sign-in page (the browser leaves the dashboard, and comes back with a code). */
export async function beginSignIn(provider) {
  const verifier = randomString(48);
  const pending = { state: randomString(), nonce: randomString(), verifier, at: Date.now() };
  storage()?.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(provider.authorization_endpoint);
  const params = {
    response_type: "code",
    client_id: provider.client_id,
    redirect_uri: redirectUri(),
    scope: provider.scopes,
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.toString());
}

/**
 * The provider's answer in this page's address (`code` and `state`, or `error`), or null when there is none. It is
 * removed from the address at once, whatever comes next: a code is good once, and never belongs in the history.
 */
export function takeCallback() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const callback = {
    code: params.get("code"),
    state: params.get("state"),
    error: params.get("error"),
  };
  for (const name of ["code", "state", "error", "error_description", "error_uri", "session_state", "iss"])
    params.delete(name);
  const rest = params.toString();
  history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  return callback;
}

function takePending() {
  const store = storage();
  const raw = store?.getItem(PENDING_KEY);
  store?.removeItem(PENDING_KEY);
  try {
    const pending = raw ? JSON.parse(raw) : null;
    return pending && Date.now() - pending.at < PENDING_MAX_AGE_MS ? pending : null;
  } catch {
    return null;
  }
}

function claimsOf(jwt) {
  try {
    const segment = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(segment + "=".repeat((4 - (segment.length % 4)) % 4)));
  } catch {
    return null;
  }
}

async function tokenRequest(provider, form) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), EXCHANGE_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(provider.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams(form).toString(),
      credentials: "omit",
      cache: "no-store",
      signal: controller.signal,
    });
  } catch {
    throw new SignInError(
      "Le service d'identité de l'hôpital ne répond pas. Réessayez dans un instant, ou prévenez le support informatique.",
    );
  } finally {
    clearTimeout(timer);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok || !body || typeof body.access_token !== "string") {
    throw new SignInError(
      "La connexion avec le compte de l'hôpital n'a pas abouti (échange refusé par le service d'identité). Réessayez.",
    );
  }
  return body;
}

function remember(body) {
  const store = storage();
  store?.setItem(METHOD_KEY, "provider");
  if (typeof body.refresh_token === "string") store?.setItem(REFRESH_KEY, body.refresh_token);
  else store?.removeItem(REFRESH_KEY);
}

/**
 * The access token the provider gives for the code it sent back, once the state, the PKCE verifier and the ID
 * token's nonce and audience check out. Throws a SignInError with the French sentence to show otherwise.
 */
export async function completeSignIn(provider, callback) {
  const pending = takePending();
  if (callback.error) {
    throw new SignInError(
      callback.error === "access_denied"
        ? "Le service d'identité de l'hôpital a refusé la connexion. Vérifiez votre compte, ou demandez l'accès à votre cadre."
        : "Le service d'identité de l'hôpital n'a pas pu vous connecter. Réessayez dans un instant.",
    );
  }
  if (!pending || !callback.state || callback.state !== pending.state) {
    // Not the sign-in this tab started (an old link, another tab, or someone else's code): nobody is signed in.
    throw new SignInError("Cette connexion n'a pas été demandée depuis cet onglet. Recommencez la connexion.");
  }
  if (!provider) {
    throw new SignInError("Le service d'identité de l'hôpital est indisponible pour le moment. Réessayez dans un instant.");
  }
  const body = await tokenRequest(provider, {
    grant_type: "authorization_code",
    code: callback.code,
    redirect_uri: redirectUri(),
    client_id: provider.client_id,
    code_verifier: pending.verifier,
  });
  if (typeof body.id_token === "string") {
    // Straight from the token endpoint over TLS, so its signature need not be checked here (OpenID Connect Core
    // 3.1.3.7); its nonce and audience tie it to the sign-in this tab started.
    const claims = claimsOf(body.id_token);
    const audience = claims && (Array.isArray(claims.aud) ? claims.aud : [claims.aud]);
    if (!claims || claims.nonce !== pending.nonce || !audience.includes(provider.client_id)) {
      throw new SignInError("La réponse du service d'identité ne correspond pas à cette connexion. Recommencez.");
    }
  }
  remember(body);
  return body;
}

/** Whether this tab's session came from the provider (its sign-out then goes through the provider too). */
export function signedInWithProvider() {
  return storage()?.getItem(METHOD_KEY) === "provider";
}

export function hasRefreshToken() {
  return Boolean(storage()?.getItem(REFRESH_KEY));
}

/** A new access token for the refresh token the provider gave, without the nurse noticing; null if refused. */
export async function refresh(provider) {
  const token = storage()?.getItem(REFRESH_KEY);
  if (!provider || !token) return null;
  try {
    const body = await tokenRequest(provider, {
      grant_type: "refresh_token",
      refresh_token: token,
      client_id: provider.client_id,
    });
    remember(body);
    return body;
  } catch {
    storage()?.removeItem(REFRESH_KEY);
    return null;
  }
}

/** Forget this tab's sign-in with the provider; the provider's end-session address to go through, if any. */
export function forgetProviderSession(provider) {
  const wasProvider = signedInWithProvider();
  const store = storage();
  store?.removeItem(REFRESH_KEY);
  store?.removeItem(METHOD_KEY);
  store?.removeItem(PENDING_KEY);
  if (!wasProvider || !provider || !provider.end_session_endpoint) return null;
  const url = new URL(provider.end_session_endpoint);
  url.searchParams.set("client_id", provider.client_id);
  url.searchParams.set("post_logout_redirect_uri", redirectUri());
  return url.toString();
}
