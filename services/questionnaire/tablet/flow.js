// Which screen of the tablet's questionnaire comes next, and how far along the patient is: pure (no DOM, no
// storage), so it is unit-tested on its own (tests/browser/test_web_modules.py) and app.js only draws.
//
// `flat` is flatten(definition.item); `answers` is the draft's {linkId: [values]}; a screen is a question's linkId,
// "who" (before the first question) or "review". `editing` is null on the first walk through the questionnaire,
// or what startEdit kept when the patient touched "Modifier" on the review (a question's, or who answers: "who").

import { evaluate, isQuestion } from "../web/questionnaire_form.js";

function questionsOf(flat) {
  return flat.filter(({ item }) => isQuestion(item)).map(({ item }) => item);
}

function answered(answers, linkId) {
  return Array.isArray(answers[linkId]) && answers[linkId].length > 0;
}

/** The questions the answers enable, in the definition's order. */
export function askedQuestions(flat, answers) {
  const { shown } = evaluate(flat, (item) => answers[item.linkId] || []);
  return questionsOf(flat).filter((item) => shown.get(item.linkId));
}

/**
 * The answers without those of questions the answers no longer enable: turned on again later, such a question is
 * asked again rather than coming back with an answer the patient took back (and was never sent).
 */
export function keptForAsked(flat, answers) {
  const asked = new Set(askedQuestions(flat, answers).map((item) => item.linkId));
  return Object.fromEntries(Object.entries(answers).filter(([linkId]) => asked.has(linkId)));
}

/** The group a question is asked in (its parent in the definition), or null for a question outside any group. */
export function groupOf(flat, linkId) {
  const entry = flat.find(({ item }) => item.linkId === linkId);
  const parent = entry ? entry.parent : null;
  const group = parent ? flat.find(({ item }) => item.linkId === parent) : null;
  return group ? group.item : null;
}

/**
 * The review's sections: the questions the answers enable, in order, each run of questions of one group under that
 * group's title, as their question screens show it ("Nausées" above both nausea questions); a run of questions
 * outside any group has a section with no title. [{group: linkId or null, title: text or null, questions: linkIds}]
 */
export function reviewSections(flat, answers) {
  const sections = [];
  for (const item of askedQuestions(flat, answers)) {
    const group = groupOf(flat, item.linkId);
    const id = group ? group.linkId : null;
    const last = sections.at(-1);
    if (last && last.group === id) last.questions.push(item.linkId);
    else sections.push({ group: id, title: group ? group.text || "" : null, questions: [item.linkId] });
  }
  return sections;
}

/**
 * The answer the review marks as to check ({linkId, number}: its row, and its number in the review's one numbering),
 * or null. `refused` is the question a refusal pointed at (the draft's, until it is answered again with "Suivant"):
 * a patient back at the review from it ("Retour à mes réponses") would otherwise send the same refused answer
 * again. None once the answers no longer ask it (a change turned it off: nothing of it is sent).
 */
export function reviewToCheck(flat, answers, refused) {
  if (!refused) return null;
  const index = askedQuestions(flat, answers).findIndex((item) => item.linkId === refused);
  return index < 0 ? null : { linkId: refused, number: index + 1 };
}

/**
 * Who answers, on the review's first row: the choice of the first screen. None chosen reads as the patient, as it
 * is sent then (a response with no source).
 */
export function whoAnswers(source) {
  return source === "relative" ? "Un proche" : "Moi-même";
}

/**
 * The choice the "who answers" screen shows as made, as a question shows its chosen answer: the draft's, whenever the
 * patient is back there ("Précédent" from the first question, "Modifier : qui répond"); none on the first walk before
 * a choice. During a change from the review, none stored shows the patient, as the review read it (whoAnswers).
 */
export function whoChosen(source, editing = null) {
  if (source === "patient" || source === "relative") return source;
  return editing ? "patient" : null;
}

/**
 * What an edit from the review remembers: the questions asked when it started (any other one the change turns on
 * and that has no answer yet is asked before going back to the review) and the answers as they were, which
 * "Retour à mes réponses" puts back. `linkId` "who" is a change of who answers: a choice there turns no question
 * on, so nextScreen from the start goes straight back to the review.
 */
export function startEdit(flat, answers, linkId) {
  return {
    linkId,
    asked: askedQuestions(flat, answers).map((item) => item.linkId),
    before: JSON.parse(JSON.stringify(answers)), // a copy: what is stored is JSON anyway
  };
}

/** Whether an edit still has to ask this question: the change turned it on and it has no answer yet. */
function opened(editing, answers, linkId) {
  return !editing.asked.includes(linkId) && !answered(answers, linkId);
}

/**
 * The screen after `at` (a linkId, or null or "who" for the start): the next question the answers enable; during an
 * edit, only those the change turned on and that have no answer yet, and the review once none is left.
 */
export function nextScreen(flat, answers, at, editing = null) {
  const all = questionsOf(flat);
  const position = at === null ? -1 : all.findIndex((item) => item.linkId === at);
  const asked = new Set(askedQuestions(flat, answers).map((item) => item.linkId));
  const next = all
    .slice(position + 1)
    .find((item) => asked.has(item.linkId) && (!editing || opened(editing, answers, item.linkId)));
  return next ? next.linkId : "review";
}

/**
 * The screen before `at` (a linkId, or null for the review): the enabled question before it, or "who". During an
 * edit, "Précédent" stays within the change: back through the questions it opened to the question changed, and from
 * that one, "review" (where the patient came from), never the questions before it nor "who".
 */
export function previousScreen(flat, answers, at, editing = null) {
  const all = questionsOf(flat);
  const position = at === null ? all.length : all.findIndex((item) => item.linkId === at);
  const asked = new Set(askedQuestions(flat, answers).map((item) => item.linkId));
  const inEdit = (linkId) => !editing || linkId === editing.linkId || !editing.asked.includes(linkId);
  const previous = all
    .slice(0, Math.max(position, 0))
    .reverse()
    .find((item) => asked.has(item.linkId) && inEdit(item.linkId));
  if (previous) return previous.linkId;
  return editing ? "review" : "who";
}

/**
 * The progress bar on question `at` ({value, max}), among the questions the answers so far enable: the questions
 * before it are done. During an edit, what is left is this screen and the questions after it that the change
 * turned on and are not answered yet; everything else is already answered, and the bar says so.
 */
export function progress(flat, answers, at, editing = null) {
  const asked = askedQuestions(flat, answers);
  const max = Math.max(asked.length, 1);
  const index = asked.findIndex((item) => item.linkId === at);
  if (!editing) return { value: Math.max(index, 0), max };
  const left = 1 + asked.slice(index + 1).filter((item) => opened(editing, answers, item.linkId)).length;
  return { value: Math.max(asked.length - left, 0), max };
}
