// The steps a nurse takes on an alert, from a row of the list or from the patient view's alert in progress: "Je prends",
// the closing dialog (which follows the alert as it changes under it, and is kept for the same nurse across an expired
// session, in memory only) and the reopening dialog. `from` says where ("list" or "patient"): the request, the
// dialog and the answers are the same; what is shown afterwards and where the focus goes follow the view she is in.

import { api } from "./api.js";
import { $, announce, clear, errorText, h, toast, toastError } from "./dom.js";
import { getReference, levelLabel, outcomeLabel, patientShortId, reasonText, staffName } from "./format.js";
import { filterAlerts, flashRows } from "./alerts.js";
import { alreadyTaken, mergeAlert, whatChanged } from "./cues.js";
import { endedWithSession } from "./session.js";

const CLOSING_DRAFT_MS = 15 * 60 * 1000; // how long a closing cut short by an expired session is kept

/**
 * `state`: the page's (`me`, `alerts`, `filters`, `view`, `patient`); `list`: list.js's; `rememberOwnStep(type,
 * alertId)`: live.js's; `patientView`: patientview.js's; `returnFocus(target, action)`: views.js's.
 */
export function createSteps({ state, list, rememberOwnStep, patientView, returnFocus }) {
  const { alertById, refreshAlerts, renderAlerts } = list;
  const { refreshPatient, showPatientAfterStep } = patientView;
  // {alertId, trigger, from: "list" | "patient", shown: the alert as the dialog shows it, whose version is closed}
  let resolveTarget = null;
  let reopenTarget = null;
  // A closing dialog cut short by an expired session: {staffId, alertId, shown, outcome, note, keptAt}. In memory
  // only, never in sessionStorage or localStorage (a note is health data); restored to the same nurse only.
  let closingDraft = null;

  async function acknowledge(alertId, button, { from = "list" } = {}) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = "Envoi…";
    try {
      const updated = await api.ack(alertId);
      rememberOwnStep("alert.acknowledged", alertId);
      mergeAlert(state.alerts, updated);
      if (from === "list") list.focusNext({ alertId, action: "resolve" });
      renderAlerts();
      flashRows([alertId]);
      const alert = alertById(alertId) ?? updated;
      announce(`Alerte prise${alert ? ` : ${patientShortId(alert.patient_id)}` : ""}.`);
      refreshAlerts(); // a list request already in flight may predate the acknowledgement
      if (from === "patient") await showPatientAfterStep(alertId, "resolve");
    } catch (error) {
      if (endedWithSession(error)) return;
      if (error.status === 409 && error.body && error.body.alert_status === "acknowledged") {
        // Taken meanwhile: by whom the reloaded list says (perhaps she did, on another screen or tab).
        const me = state.me;
        list.flashLater(alertId);
        await refreshAlerts();
        if (state.me !== me) return; // signed out meanwhile: not the next nurse's news
        const taken = alreadyTaken(alertById(alertId), me && me.staff_id);
        if (taken) toast(taken.text, taken.mine ? "info" : "error");
        else toastError(error);
        if (from === "patient") await showPatientAfterStep(alertId, "resolve");
        return;
      }
      toastError(error);
      if (error.status === 409 || error.status === 404) {
        list.flashLater(alertId);
        refreshAlerts();
        if (from === "patient") await showPatientAfterStep(alertId, "resolve");
      } else if (button.isConnected) {
        button.disabled = false;
        button.textContent = label;
      }
    }
  }

  /** `shown`: the alert as the nurse sees it where she asked to close it (the list's row, or the patient view's). */
  function openResolveDialog(alertId, trigger, { shown = alertById(alertId), from = "list" } = {}) {
    const alert = shown;
    const dialog = $("resolve-dialog");
    const form = $("resolve-form");
    form.reset();
    const select = form.elements.outcome;
    clear(select);
    select.append(h("option", { value: "" }, "— choisir —"));
    for (const [code, label] of Object.entries(getReference().outcomes))
      select.append(h("option", { value: code }, label));
    renderResolveContext(alert);
    $("resolve-error").hidden = true;
    updateResolveForm();
    resolveTarget = { alertId, trigger, from, shown: alert };
    dialog.showModal();
    select.focus();
    followResolveTarget(); // the list may know a newer version than the patient view showed
  }

  /** The closing dialog for the patient view's alert in progress, showing it as the view does. */
  function openPatientResolveDialog(alertId, trigger) {
    const shown = state.patient && state.patient.alertDetail;
    if (!shown || shown.id !== alertId) return;
    openResolveDialog(alertId, trigger, { shown, from: "patient" });
  }

  function renderResolveContext(alert) {
    $("resolve-context").textContent = alert
      ? `${patientShortId(alert.patient_id)} — ${levelLabel(alert.level)} — ${(alert.reasons || []).map(reasonText).join(", ")}`
      : "";
    const me = state.me && state.me.staff_id;
    let owner = "";
    if (alert && alert.status === "acknowledged" && alert.acknowledged_by && alert.acknowledged_by !== me)
      owner = `Prise par ${staffName(alert, "acknowledged_by")} : vous clôturez à sa place.`;
    else if (alert && alert.status === "open")
      owner = "Alerte rouverte par une nouvelle réponse : personne ne l'a en charge.";
    $("resolve-owner").textContent = owner;
    $("resolve-owner").hidden = !owner;
  }

  /** A list load brought a newer version of the alert being closed (a new answer, a colleague's step). */
  function followResolveTarget() {
    if (!resolveTarget || !resolveTarget.shown) return;
    const current = alertById(resolveTarget.alertId);
    const shown = resolveTarget.shown;
    if (!current || current.updated_at === shown.updated_at) return;
    // A list request sent before the version shown may answer after it: an older version is no news.
    if (Date.parse(current.updated_at) < Date.parse(shown.updated_at)) return;
    showChangedAlert(current);
  }

  /** The dialog shows the alert as it is now, says what changed, and asks for the outcome again: what she
   * confirms is what she saw (the server refuses to close another version, 412). Her note stays. */
  function showChangedAlert(current) {
    if (!resolveTarget || !current || current.id !== resolveTarget.alertId) return;
    const before = resolveTarget.shown;
    resolveTarget.shown = current;
    renderResolveContext(current);
    $("resolve-form").elements.outcome.value = "";
    updateResolveForm();
    const changed = whatChanged(before, current, state.me && state.me.staff_id);
    $("resolve-error").textContent = `${changed} Vérifiez avant de clôturer, puis choisissez de nouveau l'issue.`;
    $("resolve-error").hidden = false;
  }

  function draftOfClosing() {
    if (!resolveTarget || !state.me || !$("resolve-dialog").open) return null;
    const form = $("resolve-form");
    return {
      staffId: state.me.staff_id,
      alertId: resolveTarget.alertId,
      shown: resolveTarget.shown,
      outcome: form.elements.outcome.value,
      note: form.elements.note.value,
      keptAt: Date.now(),
    };
  }

  /** At sign-out: the closing in progress is kept for her (`keepDraft`, an expired session) or dropped. Kept? */
  function keepClosing(keepDraft) {
    closingDraft = keepDraft ? draftOfClosing() : null;
    return Boolean(closingDraft);
  }

  /** After signing in again as the same nurse, the closing her expired session cut short, as she left it. */
  function restoreClosing() {
    const draft = closingDraft;
    closingDraft = null;
    if (!draft || !state.me || draft.staffId !== state.me.staff_id || Date.now() - draft.keptAt > CLOSING_DRAFT_MS)
      return;
    if (!alertById(draft.alertId)) {
      toast("L'alerte que vous étiez en train de clôturer n'est plus dans la liste des alertes actives.");
      return;
    }
    openResolveDialog(draft.alertId, null);
    const form = $("resolve-form");
    form.elements.outcome.value = draft.outcome;
    form.elements.note.value = draft.note;
    updateResolveForm();
    $("resolve-error").textContent =
      "Votre saisie a été conservée pendant la reconnexion : vérifiez-la puis confirmez.";
    $("resolve-error").hidden = false;
    if (draft.shown) {
      resolveTarget.shown = draft.shown; // what she saw before: a change since is shown and asked about
      followResolveTarget();
    }
  }

  function updateResolveForm() {
    const form = $("resolve-form");
    form.querySelector('[data-action="confirm-resolve"]').disabled = !form.elements.outcome.value;
    $("resolve-note-count").textContent = `${form.elements.note.value.length} / 2000`;
  }

  async function submitResolve(event) {
    event.preventDefault();
    if (!resolveTarget) return;
    const form = $("resolve-form");
    const outcome = form.elements.outcome.value;
    const note = form.elements.note.value.trim();
    if (!outcome) return;
    const { alertId, from } = resolveTarget;
    const submit = form.querySelector('[data-action="confirm-resolve"]');
    submit.disabled = true;
    submit.textContent = "Envoi…";
    try {
      const visible = filterAlerts(state.alerts, state.filters);
      const index = visible.findIndex((alert) => alert.id === alertId);
      const alert = alertById(alertId) ?? resolveTarget.shown;
      const version = resolveTarget.shown ? resolveTarget.shown.updated_at : undefined;
      const updated = await api.resolve(alertId, outcome, note || undefined, version);
      rememberOwnStep("alert.resolved", alertId);
      resolveTarget = null;
      $("resolve-dialog").close();
      mergeAlert(state.alerts, updated);
      if (from === "patient") {
        renderAlerts();
      } else {
        const next = filterAlerts(state.alerts, state.filters)[Math.max(0, index)] || null;
        list.focusNext(next ? { alertId: next.id, action: null } : null);
        renderAlerts();
        if (!next) $("alerts-heading").focus();
      }
      const text = `Alerte clôturée${alert ? ` : ${patientShortId(alert.patient_id)}` : ""} — ${outcomeLabel(outcome)}.`;
      toast(text, "success");
      announce(text);
      refreshAlerts();
      if (from === "patient") await showPatientAfterStep(alertId, null);
    } catch (error) {
      if (endedWithSession(error)) return;
      if (error.status === 412 && error.body && error.body.alert && resolveTarget) {
        mergeAlert(state.alerts, error.body.alert);
        renderAlerts();
        showChangedAlert(error.body.alert);
        form.elements.outcome.focus(); // the button she pressed waits for the outcome she must choose again
        refreshAlerts();
        // The view behind the dialog shows the alert as it is now too: its 412 holds the alert, not its answers.
        if (from === "patient") refreshPatient();
      } else if (error.status === 409 || error.status === 404) {
        $("resolve-dialog").close(); // the close handler puts the focus back where the dialog was opened from
        toastError(error);
        list.flashLater(alertId);
        refreshAlerts();
        if (from === "patient") await showPatientAfterStep(alertId, null);
      } else {
        $("resolve-error").textContent = errorText(error);
        $("resolve-error").hidden = false;
        toastError(error);
      }
    } finally {
      submit.textContent = "Clôturer l'alerte";
      updateResolveForm();
    }
  }

  function openReopenDialog(alertId, trigger) {
    const form = $("reopen-form");
    form.reset();
    $("reopen-error").hidden = true;
    reopenTarget = { alertId, trigger };
    $("reopen-dialog").showModal();
    form.elements.reason.focus();
  }

  async function submitReopen(event) {
    event.preventDefault();
    if (!reopenTarget) return;
    const form = $("reopen-form");
    const reason = form.elements.reason.value.trim();
    const submit = form.querySelector('[data-action="confirm-reopen"]');
    submit.disabled = true;
    try {
      const alertId = reopenTarget.alertId;
      const updated = await api.reopen(alertId, reason || undefined);
      rememberOwnStep("alert.reopened", alertId);
      reopenTarget = null;
      $("reopen-dialog").close();
      mergeAlert(state.alerts, updated);
      renderAlerts();
      toast("Alerte rouverte : elle revient dans la liste des alertes actives.", "success");
      refreshAlerts();
      if (state.patient) await showPatientAfterStep(alertId, null);
    } catch (error) {
      if (endedWithSession(error)) return;
      $("reopen-error").textContent = errorText(error);
      $("reopen-error").hidden = false;
      toastError(error);
    } finally {
      submit.disabled = false;
    }
  }

  /** A closed dialog keeps what was typed in it (a note is health data): the next nurse finds them empty. */
  function forget() {
    for (const form of document.querySelectorAll("dialog form")) form.reset();
    $("resolve-context").textContent = "";
    $("resolve-owner").textContent = "";
    for (const error of document.querySelectorAll("dialog .error-text")) error.textContent = "";
  }

  function wire() {
    const resolveForm = $("resolve-form");
    resolveForm.addEventListener("submit", submitResolve);
    resolveForm.addEventListener("input", updateResolveForm);
    resolveForm.addEventListener("change", updateResolveForm);
    $("resolve-dialog").addEventListener("close", () => {
      const target = resolveTarget;
      resolveTarget = null;
      if (target) returnFocus(target, "resolve");
    });
    $("reopen-form").addEventListener("submit", submitReopen);
    $("reopen-dialog").addEventListener("close", () => {
      const target = reopenTarget;
      reopenTarget = null;
      if (target) returnFocus(target, "reopen");
    });
    for (const button of document.querySelectorAll('[data-action="cancel-dialog"]')) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
  }

  return {
    acknowledge,
    openResolveDialog,
    openPatientResolveDialog,
    openReopenDialog,
    followResolveTarget,
    keepClosing,
    restoreClosing,
    forget,
    wire,
  };
}
