// Which view shows (#alertes, #patient/<id>[/<alert id>], #indicateurs), read from the address, and where the focus
// goes between them: back to the row a patient view was opened from, back to the button a dialog was opened from.

import { $ } from "./dom.js";
import { tickWaitingTimes } from "./alerts.js";
import { releasePhotos } from "./photos.js";

const UUIDISH = /^[0-9a-fA-F-]{8,64}$/;
const PATIENT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The patient id a nurse typed or pasted to open a patient's view (one with no alert yet, for a first phone entry):
 * the whole pseudonymous id, in any case, spaces around it ignored; null for anything else (a short id names no one
 * for sure).
 */
export function patientIdFrom(text) {
  const id = String(text ?? "")
    .trim()
    .toLowerCase();
  return PATIENT_ID.test(id) ? id : null;
}

const NOT_A_PATIENT_ID =
  "Collez l'identifiant entier du patient : 36 caractères, par exemple 3f2a9c1e-7b4d-4e8a-9c2f-1a2b3c4d5e6f.";

/** The view an address's fragment (`location.hash`) names: the list for anything it cannot read. */
export function parseRoute(fragment) {
  let hash = "";
  try {
    hash = decodeURIComponent(fragment.replace(/^#/, ""));
  } catch {
    hash = ""; // a mangled address: show the list
  }
  if (hash.startsWith("patient/")) {
    const [, patientId, alertId] = hash.split("/");
    if (patientId && UUIDISH.test(patientId))
      return { view: "patient", patientId, alertId: alertId && UUIDISH.test(alertId) ? alertId : null };
  }
  if (hash === "indicateurs") return { view: "metrics" };
  return { view: "alerts" };
}

/**
 * `state`: the page's (`me`, `view`, `patient`); `showPatient(patientId, alertId)` and `showMetrics()` load the view
 * the address names.
 */
export function createViews({ state, showPatient, showMetrics }) {
  let returnToAlertId = null;

  function showView(view) {
    const previous = state.view;
    state.view = view;
    $("alerts-view").hidden = view !== "alerts";
    $("patient-view").hidden = view !== "patient";
    $("metrics-view").hidden = view !== "metrics";
    for (const tab of document.querySelectorAll(".tabs a")) {
      const current = tab.dataset.view === (view === "patient" ? "alerts" : view);
      if (current) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (view === "alerts" && previous !== "alerts") {
      state.patient = null;
      releasePhotos(); // the photos seen are let go of with the view
      const row =
        returnToAlertId && document.querySelector(`#alert-rows tr[data-alert-id="${CSS.escape(returnToAlertId)}"]`);
      if (row) row.querySelector('[data-action="open-patient"]')?.focus();
      else if (previous) $("alerts-heading").focus();
      returnToAlertId = null;
      tickWaitingTimes();
    }
  }

  function route() {
    if (!state.me) return;
    // A dialog belongs to the view it was opened from.
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    const target = parseRoute(location.hash);
    if (target.view === "patient") {
      showView("patient");
      showPatient(target.patientId, target.alertId);
      return;
    }
    if (target.view === "metrics") {
      showView("metrics");
      showMetrics();
      $("metrics-heading").focus();
      return;
    }
    showView("alerts");
  }

  /** A row's patient: the address says which, and the focus comes back to the row on the way back. */
  function openPatient(patientId, alertId) {
    returnToAlertId = alertId;
    location.hash = `#patient/${encodeURIComponent(patientId)}/${encodeURIComponent(alertId)}`;
  }

  /** Back to the button that opened a dialog, or its replacement if a live refresh re-rendered it. */
  function returnFocus({ alertId, trigger, from }, action) {
    if (trigger && trigger.isConnected) {
      trigger.focus();
      return;
    }
    const escaped = CSS.escape(alertId);
    const selectors =
      action === "reopen" || from === "patient"
        ? // The same button, else what the view offers for that alert now (a reloaded view may show "Je prends" where
          // "Clôturer" was), else the alert in its history.
          [
            `#patient-view [data-action="${action}"][data-alert-id="${escaped}"]`,
            `#patient-view [data-action][data-alert-id="${escaped}"]`,
            `#patient-view [data-prior-alert-id="${escaped}"]`,
          ]
        : [`#alert-rows tr[data-alert-id="${escaped}"] [data-action]`];
    const replacement = selectors.map((selector) => document.querySelector(selector)).find(Boolean);
    if (replacement) replacement.focus();
    else if (state.view === "alerts") $("alerts-heading").focus();
  }

  function forget() {
    returnToAlertId = null;
    $("open-patient-form").reset();
    showOpenPatientError("");
  }

  function showOpenPatientError(text) {
    const error = $("open-patient-error");
    error.textContent = text;
    error.hidden = !text;
    if (text) $("open-patient-id").setAttribute("aria-invalid", "true");
    else $("open-patient-id").removeAttribute("aria-invalid");
  }

  /** The list's "Dossier d'un patient" form: the patient view of the id typed, as its address names it. */
  function openTypedPatient(event) {
    event.preventDefault();
    const input = $("open-patient-id");
    const patientId = patientIdFrom(input.value);
    if (!patientId) {
      showOpenPatientError(NOT_A_PATIENT_ID);
      input.focus();
      return;
    }
    showOpenPatientError("");
    input.value = "";
    returnToAlertId = null;
    location.hash = `#patient/${patientId}`;
  }

  function wire() {
    window.addEventListener("hashchange", route);
    $("open-patient-form").addEventListener("submit", openTypedPatient);
    $("open-patient-id").addEventListener("input", () => showOpenPatientError(""));
  }

  return { route, openPatient, returnFocus, forget, wire };
}
