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

const PENDING_MAX_AGE_MS = 10 * 60 * 1000; // a sign-in left at the provider's page longer than this starts over
const EXCHANGE_TIMEOUT_MS = 15000;
const REFRESH_BEFORE_MS = 60 * 1000; // how long before it expires a token from the provider is renewed silently
const WARN_BEFORE_MS = 5 * 60 * 1000; // how long before a token expires (without renewal) the person is warned

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

  function provider() {
    return config && config.provider_sign_in ? config.provider_sign_in : null;
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

  /** A new access token for the refresh token the provider gave, without the person noticing; null if refused. */
  async function refresh() {
    const token = storage()?.getItem(keys.refresh);
    const current = provider();
    if (!current || !token) return null;
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

  return {
    /** The page's config (null when it cannot be read: no sign-in with the provider then). */
    async loadConfig() {
      try {
        const response = await fetch(configUrl, {
          headers: { Accept: "application/json" },
          credentials: "omit",
          cache: "no-store",
        });
        config = response.ok ? await response.json() : null;
      } catch {
        config = null;
      }
      return config;
    },

    provider,

    /** The button: shown when the page signs in with the provider, greyed (with its sentence) while out of reach. */
    showButton({ section, button, unavailable }) {
      const current = provider();
      section.hidden = !(current || (config && config.provider_unavailable));
      button.disabled = !current;
      unavailable.hidden = Boolean(current);
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
      if (!(signedInWithProvider() && hasRefreshToken())) {
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
