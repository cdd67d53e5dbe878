// Who is signed in: the sign-in screen (a pasted token, a development user, the hospital's identity provider), the
// session's generation (an answer to an earlier nurse's request is never shown to the next), its expiry (the banner,
// the provider's silent renewal) and the sign-out. What the running page forgets at sign-out, each module forgets
// itself: app.js passes that in (`stop`), with what a session cut short keeps for the same nurse (`keep`).

import {
  api,
  ApiError,
  clearToken,
  endSessionRequests,
  ID_TOKEN_REFUSAL,
  onUnauthorized,
  setToken,
} from "./api.js";
import { pageSignIn, signInOnEnter, SignInError } from "/web/oidc.js";
import { missingRole, SESSION_WORDS, sessionEndsAt, sessionRefusal, UNEXPECTED } from "../web/staff.js";
import { $, clear, clearAnnouncements, errorText, h } from "./dom.js";
import { formatTime } from "./format.js";

// The roles without which the dashboard shows nothing (its alert list is the nurses'), and its name in a sentence.
const DASHBOARD_ROLE = "nurse";
const ROLE_NAME = "infirmier·ère coordinateur·rice";

export const NO_ROLE = missingRole(ROLE_NAME, { provider: true });

/** A request that failed because the session ended (expired, revoked, or signed out): nothing to show. */
export function endedWithSession(error) {
  return error.status === 401 || error.cancelled === true;
}

/**
 * The sign-in screen's words for a token refused with `status` (401 or 403), as every staff page says them:
 * `fromProvider`, just given by the hospital's sign-in; `providerToken`, the provider's (just given or kept in the
 * tab); `pasted`, just pasted (or a development user's); otherwise a token kept in the tab, from before.
 */
export function refusalText(status, detail, { fromProvider = false, providerToken = false, pasted = false } = {}) {
  return sessionRefusal(status, {
    role: ROLE_NAME,
    provider: fromProvider || providerToken,
    fresh: fromProvider,
    pasted,
    // Signing in again would not help: the sentence says whom to call, whatever the sign-in was.
    idToken: detail === ID_TOKEN_REFUSAL,
  });
}

/** What the sign-in screen adds when a session cut short kept the nurse's work for her. */
export function keptText({ closing = false, phone = false } = {}) {
  return (
    (closing ? " Votre clôture en cours sera rétablie quand vous vous reconnecterez." : "") +
    (phone ? " Votre saisie téléphonique en cours sera conservée si vous vous reconnectez dans les 15 minutes." : "")
  );
}

/**
 * `state`: the page's (`config`, `me`); `start(me)`: the running page for a nurse just signed in; `keep(keepDraft)`:
 * what her work in progress becomes, `{closing, phone}` kept or not; `stop()`: every module forgets her session.
 */
export function createSession({ state, start, keep, stop }) {
  // The sign-in with the hospital's identity provider, as every staff page does it (shared/web/oidc.js); its keys are
  // the dashboard's, as they were before the module was shared.
  const signIn = pageSignIn({
    configUrl: "/v1/dashboard/config",
    storagePrefix: "oncofollow",
    role: DASHBOARD_ROLE,
    report: (message) => showSignIn(message),
  });

  // Which nurse's session a request belongs to: each sign-out starts a new one, and an answer that comes back for an
  // earlier one is not shown (she may be gone, and the next nurse signed in meanwhile).
  let sessionGeneration = 0;

  function isCurrentSession(generation) {
    return generation === sessionGeneration && state.me !== null;
  }

  function showSignIn(message = "") {
    $("app").hidden = true;
    $("signin-screen").hidden = false;
    const box = $("signin-message");
    box.textContent = message;
    box.hidden = !message;
    renderDevUsers();
    renderProviderSignIn();
    if ($("provider-login").hidden) $("token-input").focus();
    else $("provider-sign-in").focus();
  }

  function renderProviderSignIn() {
    signIn.showButton({
      section: $("provider-login"),
      button: $("provider-sign-in"),
      unavailable: $("provider-unavailable"),
    });
  }

  function renderDevUsers() {
    const config = state.config;
    const section = $("dev-login");
    const list = clear($("dev-users"));
    const users = config && config.dev_login && Array.isArray(config.dev_users) ? config.dev_users : [];
    section.hidden = users.length === 0;
    for (const user of users) {
      if (!user || typeof user.staff_id !== "string") continue;
      const roles = Array.isArray(user.roles) ? user.roles.join(", ") : "";
      list.append(
        h(
          "li",
          null,
          h(
            "button",
            {
              type: "button",
              class: "btn btn-secondary dev-user",
              dataset: { action: "dev-login", staffId: user.staff_id },
            },
            h("span", { class: "dev-user-name" }, user.display_name || user.staff_id),
            h("span", { class: "dev-user-meta" }, `${user.staff_id}${roles ? ` · ${roles}` : ""}`),
          ),
        ),
      );
    }
    const env = config && config.environment;
    $("signin-env").textContent = env === "development" ? "Environnement de développement" : "";
    $("signin-env").hidden = env !== "development";
  }

  async function signInWithToken(token, { fromProvider = false, pasted = false } = {}) {
    setToken(token);
    // A reload keeps the provider's token in this tab: its expiry then says to sign in with the hospital's account.
    const providerToken = fromProvider || signIn.signedInWithProvider();
    try {
      const me = await api.me();
      if (!me || typeof me.staff_id !== "string") {
        console.error("GET /v1/me: no staff_id in the answer", me); // for the support desk, never on screen
        throw new ApiError(500, "", UNEXPECTED);
      }
      if (fromProvider && !signIn.hasRole(me)) {
        clearToken();
        signIn.forget();
        showSignIn(NO_ROLE);
        return;
      }
      await start(me);
    } catch (error) {
      if (fromProvider && error instanceof ApiError && error.status === 403) {
        clearToken();
        signIn.forget();
        showSignIn(NO_ROLE);
      } else if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        clearToken();
        signIn.forget();
        showSignIn(refusalText(error.status, error.detail, { fromProvider, providerToken, pasted }));
      } else {
        // Network trouble: keep the token so that a reload retries.
        showSignIn(errorText(error));
      }
    }
  }

  /** The code the provider sent back to this page: exchanged for a token, then signed in with it (or a message). */
  async function signInFromProvider(callback) {
    try {
      const body = await signIn.complete(callback);
      await signInWithToken(body.access_token, { fromProvider: true });
    } catch (error) {
      clearToken();
      if (!(error instanceof SignInError)) console.error("sign-in with the hospital's account:", error);
      showSignIn(error instanceof SignInError ? error.message : SESSION_WORDS.providerFailed);
    }
  }

  /** The nurse chose to leave: her session here ends, and the provider's too when it has an end-session endpoint. */
  function signOutByChoice() {
    const endSession = signIn.endSession();
    signOut(SESSION_WORDS.signedOut);
    if (endSession) location.assign(endSession);
  }

  function signOut(message = "", { keepDraft = false } = {}) {
    const kept = keep(keepDraft);
    endSession();
    stop();
    hideSessionWarning();
    // What the previous nurse was told stays hers: the next one starts clean.
    clearAnnouncements();
    clear($("toasts"));
    clearToken();
    signIn.forget();
    state.me = null;
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    showSignIn(`${message}${keptText(kept)}`);
  }

  /** What the nurse asked for and is still coming is dropped: answers to her session are never shown to the next. */
  function endSession() {
    sessionGeneration += 1;
    endSessionRequests();
  }

  // The token stopped working under way (expired, revoked, or the session closed elsewhere).
  onUnauthorized((error) => {
    if (!state.me) return;
    const providerToken = signIn.signedInWithProvider();
    signOut(refusalText(401, error && error.detail, { providerToken }), { keepDraft: true });
  });

  /**
   * A token from the provider is renewed shortly before it expires, without a word; the banner comes a few minutes
   * before the end otherwise (a pasted token, no refresh token, or the provider refused: her session there ended).
   */
  function watchSession(me) {
    hideSessionWarning();
    const generation = sessionGeneration;
    signIn.watch(me.session_expires_in, {
      renewed: async (body) => {
        if (!isCurrentSession(generation)) return undefined;
        setToken(body.access_token);
        try {
          const renewed = await api.me();
          if (!isCurrentSession(generation)) return undefined;
          return renewed && typeof renewed.session_expires_in === "number" ? renewed.session_expires_in : null;
        } catch (error) {
          return endedWithSession(error) ? undefined : null;
        }
      },
      warn: (endsAt) => {
        if (!state.me) return;
        showSessionWarning(sessionEndsAt(formatTime(endsAt)));
      },
    });
  }

  /**
   * The banner, and the same words at the top of each dialog: a modal dialog's backdrop covers the page, banner
   * included, and a nurse busy closing an alert is the one who most needs to know her session is ending.
   */
  function showSessionWarning(text) {
    $("session-banner-text").textContent = text;
    $("session-banner").hidden = false;
    for (const warning of document.querySelectorAll(".dialog-session")) {
      warning.textContent = text;
      warning.hidden = false;
    }
  }

  function hideSessionWarning() {
    $("session-banner").hidden = true;
    $("session-banner-text").textContent = "";
    for (const warning of document.querySelectorAll(".dialog-session")) {
      warning.textContent = "";
      warning.hidden = true;
    }
  }

  function wire() {
    signInOnEnter($("token-input"));
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const raw = $("token-input")
        .value.trim()
        .replace(/^Bearer\s+/i, "");
      if (!raw) {
        showSignIn("Collez d'abord un jeton d'accès.");
        return;
      }
      $("token-input").value = "";
      signInWithToken(raw, { pasted: true });
    });

    $("dev-users").addEventListener("click", async (event) => {
      const button = event.target.closest('[data-action="dev-login"]');
      if (!button) return;
      button.disabled = true;
      try {
        const body = await api.devToken(button.dataset.staffId);
        if (!body || typeof body.token !== "string") {
          console.error("POST /v1/dashboard/dev-token: no token in the answer", body);
          throw new ApiError(500, "", UNEXPECTED);
        }
        await signInWithToken(body.token, { pasted: true });
      } catch (error) {
        showSignIn(errorText(error));
      } finally {
        button.disabled = false;
      }
    });

    $("sign-out").addEventListener("click", signOutByChoice);
    $("provider-sign-in").addEventListener("click", async () => {
      $("provider-sign-in").disabled = true;
      await signIn.begin(); // the page is left, or the sign-in screen says why not
      renderProviderSignIn();
    });
    $("session-renew").addEventListener("click", () => signOut(SESSION_WORDS.signInAgain));
  }

  return {
    signIn,
    generation: () => sessionGeneration,
    isCurrentSession,
    showSignIn,
    signInWithToken,
    signInFromProvider,
    watchSession,
    wire,
  };
}
