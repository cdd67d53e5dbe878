// The questionnaire a nurse fills in during a phone call, for a patient who cannot use the tablet (COPACOM).
//
// The form is drawn from the FHIR R4 Questionnaire the questionnaire service serves (groups, choice items with
// their answerOption, booleans, numbers with their unit and bounds, enableWhen branching), and the answers go to
// that service's staff route, POST /v1/patients/{id}/submissions, as a QuestionnaireResponse: the server records
// them as answered by `nurse_phone`, with this nurse's staff id. The service is on another origin (CORS), found in
// the dashboard's config (`questionnaire_url`).

import { request } from "./api.js";
import { errorText, h, toast } from "./dom.js";
// The enableWhen branching and the response's items are the tablet's too: one module, served to both pages.
import {
  DEFAULT_QUESTIONNAIRE,
  evaluate as evaluateAnswers,
  flatten,
  newKey,
  numberBounds,
  questionnaireResponse,
  refusedLinkId,
  responseItems,
} from "../web/questionnaire_form.js";

const enc = encodeURIComponent;

// --- answers kept across an expired session ----------------------------------------------------------
//
// A session that ends in the middle of a phone call (its token expired) must not lose what the nurse has noted: the
// form's state is kept in memory only (never in sessionStorage or localStorage: these are health data), given back
// to the same nurse when she opens the form again for the same patient, within PHONE_DRAFT_MS, with the same
// Idempotency-Key (answers the service did record before the session ended are not recorded twice).

const PHONE_DRAFT_MS = 15 * 60 * 1000;
let openEntry = null; // {patientId, form, keyState}: the phone form on screen, if any
let keptEntry = null; // {staffId, patientId, fields, key, sentBody, keptAt, signedInAgain}

function fieldsOf(form) {
  return [...form.querySelectorAll("input, textarea")].map((field) => ({
    name: field.name,
    value: field.value,
    checked: field.checked,
    choice: field.type === "radio",
  }));
}

function restoreFields(form, fields) {
  for (const field of form.querySelectorAll("input, textarea")) {
    const saved = fields.find((f) => f.name === field.name && (!f.choice || f.value === field.value));
    if (!saved) continue;
    if (saved.choice) field.checked = saved.checked;
    else field.value = saved.value;
  }
}

/** The session is ending without the nurse choosing it: keep the phone form on screen, if any, for her. */
export function keepPhoneEntry(staffId) {
  keptEntry = null;
  if (!openEntry || !openEntry.form.isConnected || !staffId) return false;
  const { key, sentBody } = openEntry.keyState();
  keptEntry = {
    staffId,
    patientId: openEntry.patientId,
    fields: fieldsOf(openEntry.form),
    key,
    sentBody,
    keptAt: Date.now(),
    signedInAgain: false,
  };
  return true;
}

/** Someone signed in: the kept entry is hers to take up (the patient it is for), or is dropped. */
export function phoneEntryKeptFor(staffId) {
  if (!keptEntry || keptEntry.staffId !== staffId || Date.now() - keptEntry.keptAt > PHONE_DRAFT_MS) {
    keptEntry = null;
    return null;
  }
  keptEntry.signedInAgain = true;
  return keptEntry.patientId;
}

export function forgetPhoneEntry() {
  keptEntry = null;
}

function takeKeptEntry(patientId) {
  const entry = keptEntry;
  if (!entry || !entry.signedInAgain || entry.patientId !== patientId || Date.now() - entry.keptAt > PHONE_DRAFT_MS)
    return null;
  keptEntry = null;
  return entry;
}

// --- drawing the form ------------------------------------------------------------------------------

function questionText(item) {
  return item.text || item.linkId;
}

/** A radio group cannot be unticked: this takes a click given by mistake back. */
function clearButton(item) {
  return h(
    "button",
    {
      type: "button",
      class: "btn btn-quiet phone-clear",
      dataset: { clear: item.linkId },
      "aria-label": `Effacer la réponse : ${questionText(item)}`,
    },
    "Effacer",
  );
}

function choiceQuestion(item, id) {
  const options = (item.answerOption || []).filter((option) => option.valueCoding);
  return h(
    "fieldset",
    { class: "phone-question", id, dataset: { linkId: item.linkId, type: "choice" } },
    h("legend", null, questionText(item)),
    h(
      "div",
      { class: "phone-options" },
      options.map((option, index) =>
        h(
          "label",
          { class: "phone-option" },
          h("input", {
            type: "radio",
            name: item.linkId,
            value: String(index),
            dataset: { system: option.valueCoding.system ?? "", code: option.valueCoding.code },
          }),
          " ",
          option.valueCoding.display || option.valueCoding.code,
        ),
      ),
      clearButton(item),
    ),
  );
}

function booleanQuestion(item, id) {
  return h(
    "fieldset",
    { class: "phone-question", id, dataset: { linkId: item.linkId, type: "boolean" } },
    h("legend", null, questionText(item)),
    h(
      "div",
      { class: "phone-options" },
      h("label", { class: "phone-option" }, h("input", { type: "radio", name: item.linkId, value: "true" }), " Oui"),
      h("label", { class: "phone-option" }, h("input", { type: "radio", name: item.linkId, value: "false" }), " Non"),
      clearButton(item),
    ),
  );
}

function numberQuestion(item, id) {
  const { min, max, unit } = numberBounds(item);
  const inputId = `${id}-input`;
  return h(
    "div",
    { class: "phone-question field", id, dataset: { linkId: item.linkId, type: item.type } },
    h("label", { for: inputId }, questionText(item)),
    h(
      "span",
      { class: "phone-number" },
      h("input", {
        id: inputId,
        name: item.linkId,
        type: "number",
        inputmode: "decimal",
        step: item.type === "integer" ? "1" : "0.1",
        min,
        max,
      }),
      unit ? ` ${unit}` : null,
    ),
  );
}

function textQuestion(item, id) {
  const inputId = `${id}-input`;
  return h(
    "div",
    { class: "phone-question field", id, dataset: { linkId: item.linkId, type: item.type } },
    h("label", { for: inputId }, questionText(item)),
    item.type === "text"
      ? h("textarea", { id: inputId, name: item.linkId, rows: "3" })
      : h("input", { id: inputId, name: item.linkId, type: "text" }),
  );
}

function drawItems(items, prefix) {
  return (items || []).map((item, index) => {
    const id = `${prefix}-${index}`;
    switch (item.type) {
      case "group":
        return h(
          "fieldset",
          { class: "phone-group", id, dataset: { linkId: item.linkId, type: "group" } },
          h("legend", null, questionText(item)),
          drawItems(item.item, id),
        );
      case "display":
        return h("p", { class: "help", id, dataset: { linkId: item.linkId, type: "display" } }, questionText(item));
      case "choice":
        return choiceQuestion(item, id);
      case "boolean":
        return booleanQuestion(item, id);
      case "decimal":
      case "integer":
        return numberQuestion(item, id);
      case "string":
      case "text":
        return textQuestion(item, id);
      default:
        return null; // a type the tablet's questionnaires do not use: nothing to ask
    }
  });
}

// --- reading the answers ---------------------------------------------------------------------------

/** The answer values of one question as drawn: [] when unanswered, {invalid} for a number that is not one. */
function readQuestion(form, item) {
  const element = form.querySelector(`[data-link-id="${CSS.escape(item.linkId)}"]`);
  if (!element) return [];
  if (item.type === "choice") {
    const checked = element.querySelector("input:checked");
    if (!checked) return [];
    return [{ system: checked.dataset.system || undefined, code: checked.dataset.code }];
  }
  if (item.type === "boolean") {
    const checked = element.querySelector("input:checked");
    return checked ? [checked.value === "true"] : [];
  }
  const input = element.querySelector("input, textarea");
  if (!input) return [];
  if (item.type === "decimal" || item.type === "integer") {
    if (input.value === "" && !input.validity.badInput) return [];
    const value = input.valueAsNumber;
    if (Number.isNaN(value) || (item.type === "integer" && !Number.isInteger(value))) return { invalid: true };
    return [value];
  }
  return input.value.trim() ? [input.value.trim()] : [];
}

/** Which items are shown now, and the answers of those shown (a hidden question counts as unanswered). */
function evaluate(form, flat) {
  return evaluateAnswers(flat, (item) => readQuestion(form, item));
}

function applyVisibility(form, shown) {
  for (const element of form.querySelectorAll("[data-link-id]")) {
    element.hidden = shown.get(element.dataset.linkId) === false;
  }
}

// --- the dialog ------------------------------------------------------------------------------------

function frenchProblem(error, itemsSent, flat) {
  const body = error && error.body;
  const kind = body && typeof body.type === "string" ? body.type.split("/").pop() : "";
  if (error.status === 422 && body && typeof body.pointer === "string") {
    // The answer refused is at the pointer (this form sends its items flat, in order); a missing one is named in
    // the detail ("Item 'nausea.severity' is missing: …"), its pointer being the list it belongs in.
    const linkId = refusedLinkId(body, itemsSent);
    const entry = linkId ? flat.find((f) => f.item.linkId === linkId) : null;
    if (entry) return { text: `Vérifiez la réponse à : « ${questionText(entry.item)} ».`, linkId: entry.item.linkId };
    if (body.pointer === "/item") return { text: "Répondez au moins à une question." };
    if (body.pointer === "/authored") return { text: "L'horloge de cet ordinateur semble fausse : vérifiez-la." };
  }
  if (kind === "missing-role" || kind === "wrong-token")
    return { text: "Seul le personnel infirmier peut saisir un questionnaire pour un patient." };
  return { text: error.detail || "L'enregistrement a échoué. Réessayez." };
}

/**
 * Opens the phone questionnaire for a patient. `baseUrl`: the questionnaire service as the browser reaches it.
 * `onSaved(submissionId)` is called once the answers are recorded.
 */
export async function openPhoneQuestionnaire({ baseUrl, patientId, patientLabel, trigger, onSaved }) {
  const base = (baseUrl || "").replace(/\/+$/, "");
  const error = h("p", { class: "error-text", role: "alert", hidden: true });
  const status = h("p", { class: "help", role: "status" }, "Chargement du questionnaire…");
  const dialog = h(
    "dialog",
    { id: "phone-dialog", class: "dialog dialog-wide", "aria-labelledby": "phone-title" },
    h("h2", { id: "phone-title" }, "Saisir le questionnaire (appel téléphonique)"),
    h("p", { class: "dialog-context" }, patientLabel),
    status,
    error,
  );
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (trigger && trigger.isConnected) trigger.focus();
  });
  dialog.showModal();

  let definition;
  try {
    const bundle = await request("GET", `${base}/v1/questionnaires/${enc(DEFAULT_QUESTIONNAIRE)}`);
    definition = bundle;
  } catch (failure) {
    if (!dialog.isConnected) return;
    status.hidden = true;
    error.hidden = false;
    // A session ended meanwhile says so in the client's words; any other failure says what to do next.
    error.textContent = failure.cancelled ? failure.detail : `Le questionnaire n'a pas pu être chargé. ${errorText(failure)}`;
    dialog.append(
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", class: "btn btn-secondary", dataset: { action: "close-phone" } }, "Fermer"),
      ),
    );
    dialog.querySelector('[data-action="close-phone"]').addEventListener("click", () => dialog.close());
    return;
  }
  if (!dialog.isConnected) return;
  const flat = flatten(definition.item);
  status.textContent = `${definition.title || definition.id} — posez les questions et notez les réponses du patient. Les réponses seront enregistrées comme données par téléphone, à votre nom.`;
  const form = h(
    "form",
    { id: "phone-form", novalidate: true },
    h("div", { class: "phone-items" }, drawItems(definition.item, "phone-item")),
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "button", class: "btn btn-secondary", dataset: { action: "cancel-phone" } }, "Annuler"),
      h("button", { type: "submit", class: "btn btn-primary", dataset: { action: "send-phone" } }, "Enregistrer les réponses"),
    ),
  );
  dialog.append(form);
  form.lastElementChild.before(error); // the refusal shows beside the button that sent the answers
  const refresh = (event) => {
    // A question answered again is no longer the one the last refusal pointed at.
    event?.target?.closest?.("[aria-invalid]")?.removeAttribute("aria-invalid");
    applyVisibility(form, evaluate(form, flat).shown);
  };
  refresh();
  form.addEventListener("change", refresh);
  form.addEventListener("input", refresh);
  form.addEventListener("click", (event) => {
    const clearButton = event.target.closest("button[data-clear]");
    if (clearButton) {
      for (const input of form.querySelectorAll(`input[name="${CSS.escape(clearButton.dataset.clear)}"]`))
        input.checked = false;
      refresh(event);
    }
    if (event.target.closest('[data-action="cancel-phone"]')) dialog.close();
  });

  // One key per content: a retry of the same answers (a timeout, a 503) is never recorded twice, and changed
  // answers after a refusal are a new request.
  let sentBody = null;
  let key = null;
  const resumed = takeKeptEntry(patientId);
  if (resumed) {
    restoreFields(form, resumed.fields);
    ({ key, sentBody } = resumed);
    refresh();
    showError("Vos réponses ont été conservées pendant la reconnexion : vérifiez-les puis enregistrez-les.");
  }
  openEntry = { patientId, form, keyState: () => ({ key, sentBody }) };
  dialog.addEventListener("close", () => {
    if (openEntry && openEntry.form === form) openEntry = null;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { shown, answers } = evaluate(form, flat);
    applyVisibility(form, shown);
    for (const element of form.querySelectorAll("[aria-invalid]")) element.removeAttribute("aria-invalid");
    const invalid = flat.find(
      ({ item }) => shown.get(item.linkId) && (item.type === "decimal" || item.type === "integer") && !Array.isArray(readQuestion(form, item)),
    );
    if (invalid) {
      showError(`Saisissez un nombre pour : « ${questionText(invalid.item)} ».`, invalid.item.linkId);
      return;
    }
    const items = responseItems(flat, shown, answers);
    if (!items.length) {
      showError("Répondez au moins à une question.");
      return;
    }
    const response = questionnaireResponse(definition, items, { subject: `Patient/${patientId}` });
    const content = JSON.stringify({ ...response, authored: "" });
    if (content !== sentBody) {
      sentBody = content;
      key = newKey("phone");
    }
    const submit = form.querySelector('[data-action="send-phone"]');
    submit.disabled = true;
    error.hidden = true;
    try {
      const accepted = await request("POST", `${base}/v1/patients/${enc(patientId)}/submissions`, {
        body: response,
        headers: { "Idempotency-Key": key },
      });
      if (!dialog.isConnected) return;
      dialog.close();
      toast("Réponses enregistrées (appel téléphonique). Elles sont analysées comme celles de la tablette.", "success");
      if (onSaved) onSaved(accepted && accepted.id);
    } catch (failure) {
      if (!dialog.isConnected || failure.cancelled) return;
      const problem = frenchProblem(failure, items, flat);
      showError(problem.text, problem.linkId);
    } finally {
      submit.disabled = false;
    }
  });

  function showError(text, linkId) {
    error.textContent = text;
    error.hidden = false;
    const element = linkId ? form.querySelector(`[data-link-id="${CSS.escape(linkId)}"]`) : null;
    if (element) {
      element.setAttribute("aria-invalid", "true");
      element.scrollIntoView({ block: "center" });
    } else error.scrollIntoView({ block: "nearest" });
  }
}
