// The alert list view and its live refresh: at most one list request in flight per session, what a refreshed list
// rings and announces (the red banner and its beep, the live region; decided by cues.js), the filters, the sound
// toggle, the waiting times' ticking. The rows themselves are drawn by alerts.js; their buttons' steps come from
// app.js (`wire`).

import { activeAlerts } from "./api.js";
import { $, announce, clear, errorText, h, toastError } from "./dom.js";
import { formatClock } from "./format.js";
import { flashRows, renderAlertRows, tickWaitingTimes } from "./alerts.js";
import { announcementText, bannerStillDue, cues } from "./cues.js";
import { endedWithSession } from "./session.js";

const TICK_MS = 30000;
const BANNER_MS = 8000;

/**
 * The red banner's words, cueParts' (cues.js) each in its span, so that its one line cuts who had the alert, then
 * the reasons, before the patient (style.css); its title, like its text, says them whole.
 */
export function showBannerText(element, parts) {
  element.replaceChildren(
    ...Object.entries(parts)
      .filter(([, words]) => words)
      .map(([part, words]) => h("span", { class: `cue-${part}` }, words)),
  );
  element.title = element.textContent;
}

/**
 * `state`: the page's (`me`, `alerts`, `totals`, `notShown`, `loaded`, `loadError`, `filters`, `view`); `session`: whose
 * answers are still shown; `sound`: the beep; `onLoaded()`: after each list shown (the closing dialog follows it).
 */
export function createList({ state, session, sound, onLoaded }) {
  const pendingFlash = new Set();
  const pendingAnnouncements = [];
  let refreshing = null;
  let refreshAgain = false;
  let focusHint = null;
  let lastErrorToast = { text: "", at: 0 };
  let bannerTimer = null;
  let tickTimer = null;

  function renderAlerts() {
    renderAlertRows({
      alerts: state.alerts,
      loaded: state.loaded,
      loadError: state.loadError,
      filters: state.filters,
      me: state.me && state.me.staff_id,
      focusHint: focusHint,
      totals: state.totals,
      notShown: state.notShown,
    });
    focusHint = null;
  }

  /** At most one GET /v1/alerts in flight per session; events arriving meanwhile cause exactly one more. */
  function refreshAlerts() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    const generation = session.generation();
    const run = (async () => {
      try {
        do {
          refreshAgain = false;
          await loadAlerts(generation);
        } while (refreshAgain && session.isCurrentSession(generation));
      } finally {
        if (refreshing === run) refreshing = null;
      }
    })();
    refreshing = run;
    return run;
  }

  /** The list, shown only in the session that asked for it. */
  async function loadAlerts(generation) {
    if (!session.isCurrentSession(generation)) return;
    let body;
    try {
      body = await activeAlerts();
    } catch (error) {
      if (endedWithSession(error) || !session.isCurrentSession(generation)) return;
      toastOnce(error);
      if (!state.loaded) {
        state.loadError = errorText(error);
        renderAlerts();
      }
      return;
    }
    if (!session.isCurrentSession(generation)) return;
    state.loadError = null;
    const items = body.items;
    const before = new Map(state.alerts.map((alert) => [alert.id, alert]));
    const wasLoaded = state.loaded;
    state.alerts = items;
    state.totals = body.totals;
    state.notShown = body.notShown;
    state.loaded = true;
    if (wasLoaded) for (const alert of items) if (!before.has(alert.id)) pendingFlash.add(alert.id);
    if (wasLoaded) cueChanges(before, items);
    if (!bannerStillDue($("red-banner").dataset.alertId, items)) hideBanner();
    renderAlerts();
    onLoaded();
    flashRows(pendingFlash);
    pendingFlash.clear();
    flushAnnouncements();
    $("last-updated").textContent = `Mis à jour à ${formatClock(new Date())}`;
  }

  function toastOnce(error) {
    const text = error && error.detail ? error.detail : String(error);
    const now = Date.now();
    if (text === lastErrorToast.text && now - lastErrorToast.at < 15000) return;
    lastErrorToast = { text, at: now };
    toastError(error);
  }

  function alertById(alertId) {
    return state.alerts.find((alert) => alert.id === alertId) || null;
  }

  /** The refreshed list's cues (cues.js): all announced, the most urgent red one on the banner with the beep. */
  function cueChanges(before, items) {
    const { announcements, red } = cues(before, items, state.me && state.me.staff_id);
    pendingAnnouncements.push(...announcements);
    if (red) redCue(red.alertId, red.parts);
  }

  function flushAnnouncements() {
    if (!pendingAnnouncements.length) return;
    const text = announcementText(pendingAnnouncements.splice(0), state.alerts, state.me && state.me.staff_id);
    if (text) announce(`${formatClock(new Date()).slice(0, 5)} — ${text}`);
  }

  function redCue(alertId, parts) {
    const banner = $("red-banner");
    showBannerText($("red-banner-text"), parts);
    banner.dataset.alertId = alertId;
    banner.hidden = false;
    banner.classList.remove("flashing");
    void banner.offsetWidth;
    banner.classList.add("flashing");
    const played = sound.beep();
    $("sound-blocked").hidden = played || !sound.enabled;
    clearTimeout(bannerTimer);
    bannerTimer = setTimeout(hideBanner, BANNER_MS);
  }

  function hideBanner() {
    $("red-banner").hidden = true;
    $("red-banner").classList.remove("flashing");
  }

  /** The waiting times count on while she is signed in. */
  function start() {
    clearInterval(tickTimer);
    tickTimer = setInterval(() => tickWaitingTimes(), TICK_MS); // its own clock, not the timer's argument
  }

  /** What the previous nurse saw, was told or was about to be told stays hers: the next one starts clean. */
  function forget() {
    refreshing = null; // the next session's list does not wait for (nor follow) this one's
    refreshAgain = false;
    clearInterval(tickTimer);
    tickTimer = null;
    hideBanner();
    pendingAnnouncements.length = 0;
    pendingFlash.clear();
    clearTimeout(bannerTimer);
    $("red-banner-text").textContent = "";
    $("red-banner-text").title = "";
    $("red-banner").dataset.alertId = "";
    $("sound-blocked").hidden = true;
    $("last-updated").textContent = "";
    $("alert-summary").textContent = "";
    $("alert-shown").textContent = "";
    focusHint = null;
    lastErrorToast = { text: "", at: 0 };
    state.alerts = [];
    state.loaded = false;
    state.loadError = null;
    clear($("alert-rows"));
  }

  function renderSoundToggle() {
    const button = $("sound-toggle");
    // The text says the state (a pressed/unpressed toggle with a changing label would say it twice).
    button.dataset.sound = sound.enabled ? "on" : "off";
    button.querySelector(".sound-text").textContent = `Son : ${sound.enabled ? "activé" : "désactivé"}`;
  }

  /** `actions`: a row's buttons, `acknowledge(alertId, button)`, `resolve(alertId, button)`, `openPatient(...)`. */
  function wire({ acknowledge, resolve, openPatient }) {
    $("sound-toggle").addEventListener("click", () => {
      sound.unlock();
      sound.setEnabled(!sound.enabled);
      renderSoundToggle();
      if (sound.enabled) setTimeout(() => sound.beep({ force: true }), 50);
      $("sound-blocked").hidden = true;
    });
    renderSoundToggle();
    // Her click on "Son bloqué" is the one the browser waits for: the sound is allowed once it has started, and a
    // beep then says so. A click anywhere else in the page allows it too: "Son bloqué" would then be untrue.
    let beepWhenReady = false;
    $("sound-blocked").addEventListener("click", () => {
      $("sound-blocked").hidden = true;
      sound.unlock();
      if (sound.ready) sound.beep({ force: true });
      else beepWhenReady = true;
    });
    sound.onReady = () => {
      const hint = $("sound-blocked");
      if (beepWhenReady) sound.beep({ force: true });
      beepWhenReady = false;
      // Pressed (or focused) now, its own click is still to come: hidden before it, it would never receive it.
      if (!hint.matches(":active") && document.activeElement !== hint) hint.hidden = true;
    };

    $("red-banner-close").addEventListener("click", hideBanner);
    $("red-banner-show").addEventListener("click", () => {
      const alertId = $("red-banner").dataset.alertId;
      hideBanner();
      if (state.view !== "alerts") location.hash = "#alertes";
      const row = alertId && document.querySelector(`#alert-rows tr[data-alert-id="${CSS.escape(alertId)}"]`);
      if (row) {
        row.scrollIntoView({ block: "center" });
        row.querySelector("[data-action]")?.focus();
      }
    });

    for (const input of document.querySelectorAll('input[name="level-filter"], input[name="status-filter"]')) {
      input.addEventListener("change", () => {
        state.filters = {
          level: document.querySelector('input[name="level-filter"]:checked').value,
          status: document.querySelector('input[name="status-filter"]:checked').value,
        };
        renderAlerts();
      });
    }

    $("alert-rows").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || button.disabled) return;
      const row = button.closest("tr[data-alert-id]");
      if (!row) return;
      const alertId = row.dataset.alertId;
      switch (button.dataset.action) {
        case "ack":
          acknowledge(alertId, button);
          break;
        case "resolve":
          resolve(alertId, button);
          break;
        case "open-patient":
          openPatient(button.dataset.patientId, alertId);
          break;
        default:
          break;
      }
    });
  }

  return {
    renderAlerts,
    refreshAlerts,
    alertById,
    /** A row to flash when the next list shows it. */
    flashLater: (alertId) => pendingFlash.add(alertId),
    /** Something to say with the next list's announcements (an escalation). */
    announceLater: (item) => pendingAnnouncements.push(item),
    /** Where the focus goes when the list is next drawn (the next step on the row she acted on). */
    focusNext: (hint) => {
      focusHint = hint;
    },
    hideBanner,
    start,
    forget,
    wire,
  };
}
