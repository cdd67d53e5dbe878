// The pure part of answering a FHIR R4 Questionnaire, shared by the pages that draw one: the nurse dashboard's
// phone entry (services/alerting/dashboard/phone.js) and the patient's tablet (services/questionnaire/tablet/).
// No DOM here: the pages draw the questions and read the answers their own way, and this module decides which
// questions are enabled and what the QuestionnaireResponse holds, so both agree with the questionnaire service
// (services/questionnaire/: fhir_questionnaire.py, branching.py, answers.py).
//
// An answer value is a Coding ({system, code}) for a choice, a boolean, a number, or a string.

/** The questionnaire both pages ask today. */
export const DEFAULT_QUESTIONNAIRE = "reconnect-symptoms";

const PRO_CTCAE_ATTRIBUTE = "https://oncofollow.example/fhir/CodeSystem/pro-ctcae-attribute";

/** The extension of an item whose URL ends with `/name`, or null. */
export function extension(item, name) {
  const found = (item.extension || []).find((e) => typeof e.url === "string" && e.url.endsWith(`/${name}`));
  return found || null;
}

/** A number item's bounds and unit, as the definition gives them ({min, max, unit}; each may be null). */
export function numberBounds(item) {
  const bound = (e) => (e ? (e.valueDecimal ?? e.valueInteger ?? null) : null);
  const unit = extension(item, "questionnaire-unit");
  return {
    min: bound(extension(item, "minValue")),
    max: bound(extension(item, "maxValue")),
    unit: unit && unit.valueCoding ? unit.valueCoding.display || unit.valueCoding.code : null,
  };
}

/** Every item of the definition, depth first, with its parent's linkId. */
export function flatten(items, parent = null, out = []) {
  for (const item of items || []) {
    out.push({ item, parent });
    flatten(item.item, item.linkId, out);
  }
  return out;
}

/** Whether the item asks something (groups and display texts do not). */
export function isQuestion(item) {
  return !["group", "display"].includes(item.type);
}

/**
 * Whether the service refuses a response that leaves this question out once it is enabled: a required item, or
 * an attribute of a PRO-CTCAE term (a term answered must be answered whole, and each term's first question is
 * what the others depend on).
 */
export function mustAnswer(item) {
  return Boolean(item.required) || (item.code || []).some((c) => c.system === PRO_CTCAE_ATTRIBUTE);
}

function conditionValue(condition) {
  for (const [key, value] of Object.entries(condition)) {
    if (key.startsWith("answer")) return { kind: key.slice("answer".length), value };
  }
  return null;
}

function same(answer, expected) {
  if (expected.kind === "Coding") {
    if (!answer || typeof answer !== "object") return false;
    const systems = !expected.value.system || !answer.system || answer.system === expected.value.system;
    return answer.code === expected.value.code && systems;
  }
  return answer === expected.value;
}

/**
 * Whether a condition holds for these answers. FHIR's "!=" holds while the question is unanswered; here a question
 * follows the one it depends on, so every condition but "exists" waits for that answer: an item these pages ask
 * is always one the server considers enabled.
 */
export function holds(condition, answers) {
  const expected = conditionValue(condition);
  if (!expected) return false;
  if (condition.operator === "exists") return (answers.length > 0) === expected.value;
  if (answers.length === 0) return false;
  switch (condition.operator) {
    case "=":
      return answers.some((a) => same(a, expected));
    case "!=":
      return !answers.some((a) => same(a, expected));
    case ">":
      return answers.some((a) => typeof a === "number" && a > expected.value);
    case "<":
      return answers.some((a) => typeof a === "number" && a < expected.value);
    case ">=":
      return answers.some((a) => typeof a === "number" && a >= expected.value);
    case "<=":
      return answers.some((a) => typeof a === "number" && a <= expected.value);
    default:
      return false;
  }
}

/**
 * Which items are enabled now, and the answers of those enabled (a disabled question counts as unanswered, as in
 * FHIR). `read(item)` gives a question's answer values ([] when unanswered).
 */
export function evaluate(flat, read) {
  const shown = new Map();
  const answers = new Map();
  for (const { item, parent } of flat) {
    let on = parent === null || shown.get(parent) === true;
    if (on && Array.isArray(item.enableWhen) && item.enableWhen.length) {
      const results = item.enableWhen.map((c) => holds(c, answers.get(c.question) || []));
      on = item.enableBehavior === "any" ? results.some(Boolean) : results.every(Boolean);
    }
    shown.set(item.linkId, on);
    if (on && isQuestion(item)) {
      const values = read(item);
      answers.set(item.linkId, Array.isArray(values) ? values : []);
    }
  }
  return { shown, answers };
}

/** One answer value as a QuestionnaireResponse answer. */
export function answerOf(item, value) {
  if (item.type === "choice") return { valueCoding: value.system ? value : { code: value.code } };
  if (item.type === "boolean") return { valueBoolean: value };
  if (item.type === "integer") return { valueInteger: value };
  if (item.type === "decimal") return { valueDecimal: value };
  return { valueString: value };
}

/** The response's items, flat and in the definition's order: the enabled questions that have an answer. */
export function responseItems(flat, shown, answers) {
  const items = [];
  for (const { item } of flat) {
    const values = answers.get(item.linkId);
    if (shown.get(item.linkId) && values && values.length)
      items.push({ linkId: item.linkId, answer: values.map((value) => answerOf(item, value)) });
  }
  return items;
}

/** A QuestionnaireResponse for the definition, answered now unless `authored` says when. */
export function questionnaireResponse(definition, items, { subject = null, source = null, authored = null } = {}) {
  const response = {
    resourceType: "QuestionnaireResponse",
    questionnaire: `${definition.url}|${definition.version}`,
    status: "completed",
    authored: authored || new Date().toISOString(),
    item: items,
  };
  if (subject) response.subject = { reference: subject };
  if (source) response.source = { reference: source };
  return response;
}

/**
 * The linkId a 422 of the service points at: the item at its `pointer` (these pages send their items flat, in
 * order), or the one its detail names as missing ("Item 'nausea.severity' is missing: …").
 */
export function refusedLinkId(problem, itemsSent) {
  if (!problem || typeof problem.pointer !== "string") return null;
  const match = /^\/item\/(\d+)/.exec(problem.pointer);
  if (match && itemsSent[Number(match[1])]) return itemsSent[Number(match[1])].linkId;
  const named = typeof problem.detail === "string" ? /^Item '([^']+)'/.exec(problem.detail) : null;
  return named ? named[1] : null;
}

export { newKey } from "./page.js";
