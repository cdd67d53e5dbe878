// Sign-in with the hospital's identity provider, for every staff page (the nurse dashboard, the fleet page):
// OpenID Connect authorization code with PKCE (S256), `state` and `nonce`, as a public client (no secret in a page).
// The provider's endpoints come from the page's config (`provider_sign_in`), which its service reads from the
// provider's discovery document (shared/http/sign_in.py).
//
// What travels through the provider and back is in sessionStorage only, for this tab: the PKCE verifier, the state
// and the nonce until the code comes back, then the refresh token (if the provider gives one) and the ID token (the
// sign-out's `id_token_hint`). The code comes back in the query, is exchanged at once by a POST, and is removed from
// the address bar before anything else. What differs between pages is given to `pageSignIn`: where its config is,
// its storage keys, the role it needs, its own address (its redirect URI) and how it shows a sentence.
//
// While the provider cannot be reached, the sign-in screen asks the page's service again (every
// `provider_recheck_s`, and when the browser is back online or the tab visible again) and turns its button on when
// the provider is back, in place: signing in leaves the page, and the code comes back to a page loaded anew, whose
// Content-Security-Policy names the token endpoint the service then knows. A page already signed in keeps the
// policy it was loaded with: it renews a session silently only at the provider's origin that policy names (the
// first config's `provider_origin`), and otherwise warns as for a refused renewal, whose button signs in again.

const PENDING_MAX_AGE_MS = 10 * 60 * 1000; // a sign-in left at the provider's page longer than this starts over
const EXCHANGE_TIMEOUT_MS = 15000;
const REFRESH_BEFORE_MS = 60 * 1000; // how long before it expires a token from the provider is renewed silently
const WARN_BEFORE_MS = 5 * 60 * 1000; // how long before a token expires (without renewal) the person is warned
const RECHECK_MS = 30 * 1000; // while the provider is out of reach, when a config says no other
const MIN_RECHECK_MS = 500;

/** A sign-in that did not succeed: `message` is the French sentence the sign-in screen shows. */
export class SignInError extends Error {
  constructor(message) {
    super(message);
    this.name = "SignInError";
  }
}

/**
 * The field a staff token is pasted into, when the provider's sign-in is not used: a textarea (a token is long and
 * wraps), yet one line, so Enter signs in as in any sign-in form rather than adding a line no token has.
 */
export function signInOnEnter(textarea) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    textarea.form.requestSubmit();
  });
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

/** The origin (`scheme://host[:port]`, lower case) of an http(s) address, as a policy names it; null otherwise. */
export function originOf(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.origin : null;
  } catch {
    return null;
  }
}

/**
 * Whether a page whose Content-Security-Policy lets it call `allowed` (the provider's origin its first config
 * named, or null) may fetch the token endpoint of `provider` (a config's `provider_sign_in`). A fetch the policy
 * refuses fails as the network does, and would cost the refresh token: the page does not try it.
 */
export function policyAllows(allowed, provider) {
  return Boolean(allowed && provider && originOf(provider.token_endpoint) === allowed);
}

/** How long the sign-in screen waits before asking again whether the provider is back (a config's seconds). */
export function recheckDelay(config) {
  const seconds = config && config.provider_recheck_s;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0
    ? Math.max(MIN_RECHECK_MS, seconds * 1000)
    : RECHECK_MS;
}

/** The page's directory (…/dashboard/, …/fleet/), however the page was opened: what it is registered as. */
export function pageAddress() {
  return `${location.origin}${location.pathname.replace(/index\.html$/, "")}`;
}

function storage() {
  try {
    return sessionStorage;
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

/**
 * One page's sign-in with the provider.
 *
 * - `configUrl`: where the page reads its config (`provider_sign_in`, `provider_unavailable`), without a token;
 * - `storagePrefix`: its sessionStorage keys (`<prefix>.providerPending`, `.refreshToken`, `.signInMethod`,
 *   `.idToken`), so that two pages of one origin never take each other's sign-in;
 * - `role`: the role without which the page shows nothing (`hasRole`);
 * - `redirectUri`: the page's own address, as registered at the provider (for the code and after the sign-out);
 * - `report(message)`: how the page shows a French sentence when a sign-in cannot even start.
 */
export function pageSignIn({ configUrl, storagePrefix, role, redirectUri = pageAddress, report = () => {} }) {
  const keys = {
    pending: `${storagePrefix}.providerPending`,
    refresh: `${storagePrefix}.refreshToken`,
    method: `${storagePrefix}.signInMethod`,
    idToken: `${storagePrefix}.idToken`,
  };
  let config = null;
  let timer = null;
  let watching = 0; // each watch (and each stop) is a new one: a renewal that comes back late is dropped
  // The provider's origin this page's policy names: its service said it in the config read as the page loaded.
  let allowed = null;
  let loaded = false;
  let following = null; // while the sign-in screen waits for the provider: what stops that

  function provider() {
    return config && config.provider_sign_in ? config.provider_sign_in : null;
  }

  /** Sign-in with the provider is configured, but the provider is out of reach just now. */
  function waitingForProvider() {
    return Boolean(config && config.provider_unavailable && !provider());
  }

  function remember(body) {
    const store = storage();
    store?.setItem(keys.method, "provider");
    if (typeof body.refresh_token === "string") store?.setItem(keys.refresh, body.refresh_token);
    else store?.removeItem(keys.refresh);
    // A refresh may answer a new ID token (Keycloak does); without one, the sign-in's stays the sign-out's hint.
    if (typeof body.id_token === "string") store?.setItem(keys.idToken, body.id_token);
  }

  function takePending() {
    const store = storage();
    const raw = store?.getItem(keys.pending);
    store?.removeItem(keys.pending);
    try {
      const pending = raw ? JSON.parse(raw) : null;
      return pending && Date.now() - pending.at < PENDING_MAX_AGE_MS ? pending : null;
    } catch {
      return null;
    }
  }

  function signedInWithProvider() {
    return storage()?.getItem(keys.method) === "provider";
  }

  function hasRefreshToken() {
    return Boolean(storage()?.getItem(keys.refresh));
  }

  /** The page's config as its service says it now; null when it cannot be read (the previous one then stays). */
  async function readConfig() {
    try {
      const response = await fetch(configUrl, {
        headers: { Accept: "application/json" },
        credentials: "omit",
        cache: "no-store",
      });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  /** Whether the provider's token endpoint is one this page may fetch, as it was loaded. */
  function reachable() {
    return policyAllows(allowed, provider());
  }

  /** A new access token for the refresh token the provider gave, without the person noticing; null if refused. */
  async function refresh() {
    const token = storage()?.getItem(keys.refresh);
    if (!token) return null;
    // Loaded while the provider was out of reach: whether it is back is asked now, when the session needs it.
    if (!provider()) config = (await readConfig()) ?? config;
    const current = provider();
    // Beyond the page's policy, the fetch would fail: the refresh token is kept for a page loaded anew.
    if (!current || !reachable()) return null;
    try {
      const body = await tokenRequest(current, {
        grant_type: "refresh_token",
        refresh_token: token,
        client_id: current.client_id,
      });
      remember(body);
      return body;
    } catch {
      storage()?.removeItem(keys.refresh);
      return null;
    }
  }

  function stopWatching() {
    watching += 1;
    clearTimeout(timer);
    timer = null;
  }

  /** The button as the config says: shown when the page signs in with the provider, greyed while out of reach. */
  function render({ section, button, unavailable }) {
    const current = provider();
    section.hidden = !(current || (config && config.provider_unavailable));
    button.disabled = !current;
    unavailable.hidden = Boolean(current);
  }

  function stopFollowing() {
    following?.();
    following = null;
  }

  /**
   * While the provider is out of reach and the sign-in screen is shown: the config read again, quietly (no token,
   * nothing said when it cannot be read), every `provider_recheck_s`, and at once when the browser comes back
   * online or the tab is shown again; the button turns on when the provider is back. It stops there, or when the
   * screen is left (signed in): showing the button again starts it again.
   */
  function follow(elements) {
    stopFollowing();
    let delay = null;
    let asking = false;
    let askAgain = false;
    const onScreen = () => elements.section.getClientRects().length > 0;
    const check = async () => {
      if (following !== stop) return;
      if (!onScreen()) return stopFollowing();
      if (document.visibilityState === "hidden") return; // asked when the tab is shown again
      // A reason to ask that comes while an answer is awaited (back online while the request sent offline fails) is
      // kept for when that answer is in, not dropped until the next tick, `provider_recheck_s` later.
      if (asking) {
        askAgain = true;
        return;
      }
      asking = true;
      do {
        askAgain = false;
        const fresh = await readConfig();
        if (following !== stop) return;
        if (fresh) config = fresh;
      } while (askAgain && waitingForProvider());
      asking = false;
      if (!waitingForProvider()) {
        stopFollowing();
        if (onScreen()) render(elements);
      }
    };
    const tick = async () => {
      await check();
      if (following === stop) delay = setTimeout(tick, recheckDelay(config));
    };
    const shown = () => {
      if (document.visibilityState === "visible") check();
    };
    function stop() {
      clearTimeout(delay);
      removeEventListener("online", check);
      document.removeEventListener("visibilitychange", shown);
    }
    following = stop;
    addEventListener("online", check);
    document.addEventListener("visibilitychange", shown);
    delay = setTimeout(tick, recheckDelay(config));
  }

  return {
    /**
     * The page's config as it loads (null when it cannot be read: no sign-in with the provider then). Read with the
     * page, it also tells which of the provider's origins the page's policy names (`provider_origin`).
     */
    async loadConfig() {
      config = await readConfig();
      if (!loaded) allowed = originOf(config && config.provider_origin);
      loaded = true;
      return config;
    },

    provider,

    /**
     * The button: shown when the page signs in with the provider, greyed (with its sentence) while out of reach,
     * and turned on without a reload when the provider comes back (see `follow`).
     */
    showButton(elements) {
      render(elements);
      if (waitingForProvider()) follow(elements);
      else stopFollowing();
    },

    /** Off to the provider's sign-in page (the browser leaves the page, and comes back with a code). */
    async begin() {
      const current = provider();
      if (!current) return;
      try {
        const verifier = randomString(48);
        const pending = { state: randomString(), nonce: randomString(), verifier, at: Date.now() };
        storage()?.setItem(keys.pending, JSON.stringify(pending));
        const url = new URL(current.authorization_endpoint);
        const params = {
          response_type: "code",
          client_id: current.client_id,
          redirect_uri: redirectUri(),
          scope: current.scopes,
          state: pending.state,
          nonce: pending.nonce,
          code_challenge: await challengeOf(verifier),
          code_challenge_method: "S256",
        };
        for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
        location.assign(url.toString());
      } catch {
        report("La connexion avec le compte de l'hôpital n'a pas pu démarrer dans ce navigateur.");
      }
    },

    /**
     * The provider's answer in this page's address (`code` and `state`, or `error`), or null when there is none.
     * It is removed from the address at once, whatever comes next: a code is good once, and never belongs in the
     * history.
     */
    takeCallback() {
      const params = new URLSearchParams(location.search);
      if (!params.has("code") && !params.has("error")) return null;
      const callback = { code: params.get("code"), state: params.get("state"), error: params.get("error") };
      for (const name of ["code", "state", "error", "error_description", "error_uri", "session_state", "iss"])
        params.delete(name);
      const rest = params.toString();
      history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
      return callback;
    },

    /**
     * The tokens the provider gives for the code it sent back, once the state, the PKCE verifier and the ID token's
     * nonce and audience check out. Throws a SignInError with the French sentence to show otherwise.
     */
    async complete(callback) {
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
      const current = provider();
      if (!current) {
        throw new SignInError(
          "Le service d'identité de l'hôpital est indisponible pour le moment. Réessayez dans un instant.",
        );
      }
      const body = await tokenRequest(current, {
        grant_type: "authorization_code",
        code: callback.code,
        redirect_uri: redirectUri(),
        client_id: current.client_id,
        code_verifier: pending.verifier,
      });
      if (typeof body.id_token === "string") {
        // Straight from the token endpoint over TLS, so its signature need not be checked here (OpenID Connect Core
        // 3.1.3.7); its nonce and audience tie it to the sign-in this tab started.
        const claims = claimsOf(body.id_token);
        const audience = claims && (Array.isArray(claims.aud) ? claims.aud : [claims.aud]);
        if (!claims || claims.nonce !== pending.nonce || !audience.includes(current.client_id)) {
          throw new SignInError("La réponse du service d'identité ne correspond pas à cette connexion. Recommencez.");
        }
      }
      remember(body);
      return body;
    },

    /** Whether the staff member `/v1/me` describes holds the role the page needs. */
    hasRole(me) {
      return Boolean(me && Array.isArray(me.roles) && me.roles.includes(role));
    },

    /** Whether this tab's session came from the provider (its sign-out then goes through the provider too). */
    signedInWithProvider,
    hasRefreshToken,
    refresh,

    /**
     * Keep the session going: `expiresIn` seconds are left (the service's count, not this computer's clock, which
     * may be wrong). With a refresh token, a new access token shortly before, silently: `renewed(body)` stores it
     * and answers the seconds the new one has (or null: warn as if refused; undefined: the session ended, stop).
     * Without one, or if the provider refuses, `warn(endsAt)` a few minutes before the end (the page's banner).
     */
    watch(expiresIn, { renewed, warn, warnBeforeMs = WARN_BEFORE_MS }) {
      stopWatching();
      if (typeof expiresIn !== "number") return;
      const generation = watching;
      const endsAt = Date.now() + expiresIn * 1000;
      const warnAt = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () => {
            if (generation === watching) warn(new Date(endsAt));
          },
          Math.max(0, endsAt - warnBeforeMs - Date.now()),
        );
      };
      // Without a refresh token, or one this page cannot use (its policy does not name the provider's token
      // endpoint), the warning comes as for a pasted token: its button signs in again, into a page loaded anew.
      if (!(signedInWithProvider() && hasRefreshToken()) || (provider() && !reachable())) {
        warnAt();
        return;
      }
      const lead = Math.min(REFRESH_BEFORE_MS, (expiresIn * 1000) / 2);
      timer = setTimeout(
        async () => {
          const body = await refresh();
          if (generation !== watching) return;
          if (body) {
            let next = null;
            try {
              next = await renewed(body);
            } catch {
              next = null;
            }
            if (generation !== watching || next === undefined) return;
            if (typeof next === "number") {
              this.watch(next, { renewed, warn, warnBeforeMs });
              return;
            }
          }
          warnAt();
        },
        Math.max(0, endsAt - lead - Date.now()),
      );
    },

    stopWatching,

    /** Forget this tab's sign-in with the provider (a refusal, an expiry): nothing more to end there. */
    forget() {
      stopWatching();
      const store = storage();
      for (const key of Object.values(keys)) store?.removeItem(key);
    },

    /**
     * The person chose to leave: this tab's sign-in is forgotten, and the provider's end-session address to go
     * through is answered (null when the session did not come from the provider, or it has none). It names the
     * ID token received at sign-in (`id_token_hint`, so that the provider ends that session without asking "Do you
     * want to log out?"), the page's client id and its own address to come back to.
     */
    endSession() {
      const wasProvider = signedInWithProvider();
      const idToken = storage()?.getItem(keys.idToken);
      this.forget();
      const current = provider();
      if (!wasProvider || !current || !current.end_session_endpoint) return null;
      const url = new URL(current.end_session_endpoint);
      if (idToken) url.searchParams.set("id_token_hint", idToken);
      url.searchParams.set("client_id", current.client_id);
      url.searchParams.set("post_logout_redirect_uri", redirectUri());
      return url.toString();
    },
  };
}
