// The patient view as the page runs it (patient.js draws it): loading it (only the latest request is shown), "Nouvelles
// informations" when news of the patient arrives, the focus and the scroll kept across a reload, the expected
// levels' form, the photos, the phone entry's glue (phone.js) and the reminder of one kept across an expiry. The
// alert steps its buttons offer come from app.js (`wire`).

import { api } from "./api.js";
import { $, clear, h, toast, toastError } from "./dom.js";
import { addDays, formatIsoDay, parisDay, patientShortId, termLabel } from "./format.js";
import { MAX_EXPECTED_DAYS, renderPatient, renderPatientError, renderPatientLoading } from "./patient.js";
import { openPhoneQuestionnaire, phoneEntryKeptFor } from "./phone.js";
import { loadPhotos, openPhoto, releasePhotos, retryPhoto } from "./photos.js";
import { endedWithSession } from "./session.js";

/** `state`: the page's (`config`, `me`, `view`, `patient`); `returnFocus(target, action)`: views.js's. */
export function createPatientView({ state, returnFocus }) {
  let patientRequest = 0;

  async function loadPatient(patientId, alertId, { keepFocus = false } = {}) {
    const container = $("patient-view");
    const request = ++patientRequest;
    const scrollY = window.scrollY;
    if (!keepFocus) renderPatientLoading(container, patientId);
    if (!keepFocus) $("patient-title")?.focus();
    try {
      const [timeline, alertDetail] = await Promise.all([
        api.timeline(patientId),
        alertId ? api.alert(alertId).catch(() => null) : Promise.resolve(null),
      ]);
      if (request !== patientRequest || state.view !== "patient") return;
      if (state.patient && state.patient.patientId !== patientId) releasePhotos();
      state.patient = { patientId, alertId, timeline: timeline || {}, alertDetail };
      // The control focused now (a dialog just closed may have given it the focus while this view was loading) is
      // replaced by the render: the focus goes to the same control of the new view.
      const focused = keepFocus && container.contains(document.activeElement) ? document.activeElement : null;
      renderPatient(container, state.patient);
      loadPhotos(container, state.config && state.config.questionnaire_url);
      if (keepFocus) {
        window.scrollTo(0, scrollY);
        if (focused && !focused.isConnected) refocusPatientControl(focused);
      } else $("patient-title")?.focus();
    } catch (error) {
      if (request !== patientRequest || endedWithSession(error)) return;
      renderPatientError(container, patientId, error.detail || "Dossier indisponible.");
      toastError(error);
    }
  }

  /** The focus back on what a re-rendered patient view offers in place of ``control``, else on its title. */
  function refocusPatientControl(control) {
    const alertId = control.dataset.alertId || control.dataset.priorAlertId;
    if (alertId) returnFocus({ alertId, trigger: null, from: "patient" }, control.dataset.action);
    if (!$("patient-view").contains(document.activeElement)) $("patient-title")?.focus();
  }

  /** The open patient view as it is now, the focus and the scroll left where they are. */
  function refreshPatient() {
    if (state.view !== "patient" || !state.patient) return;
    loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
  }

  /**
   * After a step on an alert taken in the patient view (taken, closed, reopened): the view as it is now, and the
   * focus on what comes next for that alert (`nextAction`, "Clôturer" once taken) or else on its history, since the
   * button used is gone with the re-render.
   */
  async function showPatientAfterStep(alertId, nextAction) {
    if (!state.patient || state.view !== "patient") return;
    await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
    if (state.view !== "patient") return;
    const escaped = CSS.escape(alertId);
    const view = $("patient-view");
    const next = nextAction && view.querySelector(`[data-action="${nextAction}"][data-alert-id="${escaped}"]`);
    const item = view.querySelector(`[data-prior-alert-id="${escaped}"]`);
    const target = next || item || $("history-title") || $("patient-title");
    if (target && !next && !item) target.setAttribute("tabindex", "-1");
    target?.focus();
  }

  /** The questionnaire a nurse fills in for the open patient during a phone call (phone.js). */
  function openPhoneEntry(trigger) {
    if (!state.patient) return;
    const { patientId } = state.patient;
    openPhoneQuestionnaire({
      baseUrl: state.config && state.config.questionnaire_url,
      patientId,
      patientLabel: patientShortId(patientId),
      trigger,
      onSaved: () => {
        if (state.patient && state.patient.patientId === patientId) markPatientStale();
      },
    });
  }

  /** After signing in again as the same nurse, where to take up the phone entry her expired session cut short (the
   * form gives the answers back when she opens it for that patient). */
  function remindPhoneEntry() {
    const patientId = state.me ? phoneEntryKeptFor(state.me.staff_id) : null;
    if (!patientId) return;
    toast(
      `Votre saisie téléphonique pour le patient ${patientShortId(patientId)} a été conservée : ouvrez sa fiche puis ` +
        "« Saisir le questionnaire » pour la reprendre.",
    );
  }

  /** New data for the open patient: offer a refresh rather than re-render under the nurse's hands. */
  function markPatientStale() {
    if (state.view !== "patient" || !state.patient) return;
    const container = $("patient-view");
    if (container.querySelector(".stale-patient")) return;
    const head = container.querySelector(".view-head");
    if (!head) return;
    head.append(
      h(
        "span",
        { class: "stale-patient", role: "status" },
        "Nouvelles informations pour ce patient. ",
        h(
          "button",
          { type: "button", class: "btn btn-secondary", dataset: { action: "refresh-patient" } },
          "Actualiser",
        ),
      ),
    );
  }

  async function submitExpected(form) {
    if (!state.patient) return;
    const term = form.elements.term.value;
    const grade = Number(form.elements.grade.value);
    const until = form.elements.until.value;
    const today = parisDay();
    const max = addDays(today, MAX_EXPECTED_DAYS - 1); // 30 days in all, today included
    if (!term) {
      toast("Choisissez un symptôme.", "error");
      form.elements.term.focus();
      return;
    }
    if (!/^\d{4}-\d{2}-\d{2}$/.test(until) || until < today || until > max) {
      toast(
        `Choisissez une date entre aujourd'hui et le ${formatIsoDay(max)} (${MAX_EXPECTED_DAYS} jours au plus).`,
        "error",
      );
      form.elements.until.focus();
      return;
    }
    const submit = form.querySelector('[data-action="set-expected"]');
    submit.disabled = true;
    try {
      await api.setExpected(state.patient.patientId, term, grade, until);
      toast(
        `Niveau attendu enregistré : ${termLabel(term)}, jusqu'au grade ${grade}, jusqu'au ${formatIsoDay(until)}.`,
        "success",
      );
      await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
      $("expected-title")?.setAttribute("tabindex", "-1");
      $("expected-title")?.focus();
    } catch (error) {
      if (!endedWithSession(error)) toastError(error);
    } finally {
      if (submit.isConnected) submit.disabled = false;
    }
  }

  async function removeExpected(term, button) {
    if (!state.patient) return;
    button.disabled = true;
    try {
      await api.deleteExpected(state.patient.patientId, term);
      toast(`Niveau attendu retiré : ${termLabel(term)}.`, "success");
      await loadPatient(state.patient.patientId, state.patient.alertId, { keepFocus: true });
      $("expected-title")?.setAttribute("tabindex", "-1");
      $("expected-title")?.focus();
    } catch (error) {
      if (!endedWithSession(error)) toastError(error);
      if (button.isConnected) button.disabled = false;
    }
  }

  /** Her patient's view goes with her session: an answer still coming is not shown to the next nurse. */
  function forget() {
    patientRequest += 1;
    state.patient = null;
    clear($("patient-view"));
    releasePhotos();
  }

  /** `actions`: the alert steps the view's buttons take, `reopen`, `acknowledge`, `resolve` (alertId, button). */
  function wire({ reopen, acknowledge, resolve }) {
    const patientView = $("patient-view");
    patientView.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button || button.disabled) return;
      switch (button.dataset.action) {
        case "back":
          location.hash = "#alertes";
          break;
        case "refresh-patient":
          refreshPatient();
          break;
        case "reopen":
          reopen(button.dataset.alertId, button);
          break;
        case "ack":
          acknowledge(button.dataset.alertId, button);
          break;
        case "resolve":
          resolve(button.dataset.alertId, button);
          break;
        case "remove-expected":
          removeExpected(button.dataset.term, button);
          break;
        case "phone-entry":
          openPhoneEntry(button);
          break;
        case "open-photo":
          openPhoto(button);
          break;
        case "retry-photo":
          retryPhoto(patientView, state.config && state.config.questionnaire_url, button.dataset.photoId);
          break;
        default:
          break;
      }
    });
    patientView.addEventListener("submit", (event) => {
      if (event.target.id !== "expected-form") return;
      event.preventDefault();
      submitExpected(event.target);
    });
  }

  return { loadPatient, refreshPatient, showPatientAfterStep, markPatientStale, remindPhoneEntry, forget, wire };
}
