// The patient view: per-term grade trend aligned with chemotherapy sessions, who answered, prior alerts
// and their outcomes, messages, expected levels. Opened from a row of the alert list.

import { h, clear, levelIcon } from "./dom.js";
import { photoThumbnails } from "./photos.js";
import {
  LATE_ANSWERS_TITLE,
  lateAnswersNote,
  levelBadge,
  overdueBadge,
  reasonsList,
  reopenedByNurseSinceTaken,
  sourceBadge,
  STATUS_LABELS,
  submissionLateText,
} from "./alerts.js";
import {
  addDays,
  formatDateTime,
  formatDay,
  formatIsoDay,
  formatTime,
  getReference,
  levelLabel,
  outcomeLabel,
  parseDate,
  parisDay,
  patientShortId,
  sourceLabel,
  staffName,
  termLabel,
} from "./format.js";

export const MAX_EXPECTED_DAYS = 30;

const ATTRIBUTE_LABELS = [
  ["frequency", "Fréquence"],
  ["severity", "Sévérité"],
  ["interference", "Gêne"],
  ["amount", "Quantité"],
];

const SOURCE_SHORT = { patient: "Patient·e", relative: "Proche", nurse_phone: "IDE tél." };

/** Who answered, and for answers a nurse took by phone, which nurse ("Infirmier·ère (par téléphone) · Claire Martin"),
 * by her id when her name is not known. */
export function answeredBy(submission) {
  const label = sourceLabel(submission.answered_by);
  const nurse = submission.recorded_by_name || submission.recorded_by;
  return nurse ? `${label} · ${nurse}` : label;
}

function section(title, id, ...content) {
  return h(
    "section",
    { class: "panel", "aria-labelledby": id },
    h("h2", { id, class: "panel-title" }, title),
    ...content,
  );
}

/** Terms in the reference order (the questionnaire's), unknown codes after, alphabetically. */
export function orderTerms(terms) {
  const order = Object.keys(getReference().terms);
  const rank = (term) => {
    const index = order.indexOf(term);
    return index === -1 ? order.length : index;
  };
  return [...terms].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function time(value) {
  const date = parseDate(value);
  return date ? date.getTime() : 0;
}

// --- Trend ------------------------------------------------------------------------------------------

function gradeCell(grade, term, column) {
  const known = Number.isInteger(grade) && grade >= 0 && grade <= 3;
  const classes = ["grade", known ? `grade-${grade}` : "grade-none"];
  if (column.byRelative) classes.push("by-relative");
  return h(
    "td",
    {
      class: classes.join(" "),
      title: known
        ? `${termLabel(term)} : grade ${grade} le ${formatDay(column.at)} (${sourceLabel(column.submission.answered_by)})`
        : `${termLabel(term)} : non renseigné le ${formatDay(column.at)}`,
    },
    known ? String(grade) : h("span", { "aria-label": "non renseigné" }, "·"),
  );
}

function sessionCell() {
  return h("td", { class: "session-col", "aria-hidden": "true" });
}

function trendTable(timeline) {
  const submissions = (Array.isArray(timeline.submissions) ? timeline.submissions : [])
    .filter((submission) => parseDate(submission.authored))
    .sort((a, b) => time(a.authored) - time(b.authored));
  const sessions = (Array.isArray(timeline.sessions) ? timeline.sessions : []).filter((session) =>
    parseDate(session.scheduled_for),
  );
  if (submissions.length === 0) {
    return h("p", { class: "empty" }, "Aucun questionnaire reçu pour ce patient.");
  }

  const columns = [
    ...submissions.map((submission) => ({
      kind: "submission",
      at: submission.authored,
      submission,
      byRelative: submission.answered_by === "relative",
    })),
    ...sessions.map((session) => ({ kind: "session", at: session.scheduled_for, session })),
  ].sort((a, b) => time(a.at) - time(b.at) || (a.kind === "session" ? -1 : 1));

  const everSeen = new Set();
  let anyEcog = false;
  for (const submission of submissions) {
    const grades = submission.grades && typeof submission.grades === "object" ? submission.grades : {};
    for (const [term, grade] of Object.entries(grades)) if (Number(grade) > 0) everSeen.add(term);
    if (submission.ecog !== null && submission.ecog !== undefined) anyEcog = true;
  }
  const terms = orderTerms(everSeen);

  const headCells = columns.map((column) => {
    if (column.kind === "session") {
      const cycle = column.session.cycle;
      return h(
        "th",
        { scope: "col", class: "session-col session-head" },
        h("span", { class: "session-label" }, "Chimio"),
        cycle !== null && cycle !== undefined ? h("span", { class: "session-cycle" }, `C${cycle}`) : null,
        h("span", { class: "col-date" }, formatDay(column.at)),
      );
    }
    // A late one stays at the time it was given (the trend is the patient's), and says when it came.
    const late = submissionLateText(column.submission);
    return h(
      "th",
      { scope: "col", class: column.byRelative ? "by-relative" : null },
      h("span", { class: "col-date" }, formatDay(column.at)),
      h("span", { class: "col-time" }, formatTime(column.at)),
      late ? h("span", { class: "col-late", title: LATE_ANSWERS_TITLE }, late) : null,
    );
  });

  const rows = [];
  rows.push(
    h(
      "tr",
      { class: "meta-row" },
      h("th", { scope: "row" }, "Répondu par"),
      columns.map((column) =>
        column.kind === "session"
          ? sessionCell()
          : h(
              "td",
              {
                class: `source-cell${column.byRelative ? " by-relative" : ""}`,
                title: answeredBy(column.submission),
              },
              SOURCE_SHORT[column.submission.answered_by] ?? sourceLabel(column.submission.answered_by),
            ),
      ),
    ),
  );
  rows.push(
    h(
      "tr",
      { class: "meta-row" },
      h("th", { scope: "row" }, "Niveau"),
      columns.map((column) => {
        if (column.kind === "session") return sessionCell();
        const level = column.submission.level;
        return h(
          "td",
          { class: `level-cell${column.byRelative ? " by-relative" : ""}` },
          level === "red" || level === "orange"
            ? h(
                "span",
                { class: `mini-level level-${level}`, title: levelLabel(level) },
                levelIcon(level),
                levelLabel(level),
              )
            : h("span", { class: "muted", title: "Pas d'alerte" }, "—"),
        );
      }),
    ),
  );
  for (const term of terms) {
    rows.push(
      h(
        "tr",
        null,
        h("th", { scope: "row" }, termLabel(term)),
        columns.map((column) => {
          if (column.kind === "session") return sessionCell();
          const grades = column.submission.grades || {};
          const value = Object.prototype.hasOwnProperty.call(grades, term) ? Number(grades[term]) : null;
          return gradeCell(value, term, column);
        }),
      ),
    );
  }
  if (anyEcog) {
    rows.push(
      h(
        "tr",
        { class: "meta-row" },
        h("th", { scope: "row" }, termLabel("ecog")),
        columns.map((column) => {
          if (column.kind === "session") return sessionCell();
          const ecog = column.submission.ecog;
          return h(
            "td",
            { class: `ecog-cell${column.byRelative ? " by-relative" : ""}` },
            ecog === null || ecog === undefined ? "·" : String(ecog),
          );
        }),
      ),
    );
  }

  const table = h(
    "table",
    { class: "trend" },
    h(
      "caption",
      { class: "visually-hidden" },
      "Grade composite PRO-CTCAE (0 à 3) par symptôme et par questionnaire, du plus ancien au plus récent",
    ),
    h("thead", null, h("tr", null, h("th", { scope: "col", class: "corner" }, "Symptôme"), headCells)),
    h("tbody", null, rows),
  );
  const wrapper = h(
    "div",
    { class: "trend-scroll", tabindex: "0", role: "region", "aria-label": "Évolution des symptômes" },
    table,
  );
  const notes = [];
  if (terms.length === 0) notes.push(h("p", { class: "empty" }, "Aucun symptôme au-dessus du grade 0 sur la période."));
  const legend = h(
    "p",
    { class: "legend" },
    h("span", { class: "legend-item" }, h("span", { class: "swatch grade-1" }, "1"), " léger"),
    h("span", { class: "legend-item" }, h("span", { class: "swatch grade-2" }, "2"), " modéré"),
    h("span", { class: "legend-item" }, h("span", { class: "swatch grade-3" }, "3"), " sévère"),
    sessions.length
      ? h("span", { class: "legend-item" }, h("span", { class: "swatch session-col" }), " séance de chimiothérapie")
      : null,
    submissions.some((s) => s.answered_by === "relative")
      ? h(
          "span",
          { class: "legend-item" },
          h("span", { class: "swatch by-relative" }),
          " réponses d'un proche (à interpréter avec prudence)",
        )
      : null,
  );
  return [wrapper, ...notes, legend];
}

// --- The alert the view was opened from -------------------------------------------------------------

function answersTable(submission) {
  const answers = submission.answers && typeof submission.answers === "object" ? submission.answers : {};
  const grades = submission.grades && typeof submission.grades === "object" ? submission.grades : {};
  const terms = Array.isArray(answers.terms) ? answers.terms.filter((t) => t && typeof t.term === "string") : [];
  const shown = terms.filter((t) => ATTRIBUTE_LABELS.some(([key]) => Number(t[key]) > 0) || Number(grades[t.term]) > 0);
  const parts = [];
  if (shown.length) {
    parts.push(
      h(
        "table",
        { class: "answers" },
        h("caption", { class: "visually-hidden" }, "Réponses (échelles 0 à 4) et grade composite"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, "Symptôme"),
            ATTRIBUTE_LABELS.map(([, label]) => h("th", { scope: "col" }, label)),
            h("th", { scope: "col" }, "Grade"),
          ),
        ),
        h(
          "tbody",
          null,
          shown.map((t) =>
            h(
              "tr",
              null,
              h("th", { scope: "row" }, termLabel(t.term)),
              ATTRIBUTE_LABELS.map(([key]) =>
                h("td", null, t[key] === null || t[key] === undefined ? "" : `${t[key]}/4`),
              ),
              h(
                "td",
                { class: `grade grade-${Number.isInteger(grades[t.term]) ? grades[t.term] : "none"}` },
                grades[t.term] ?? "·",
              ),
            ),
          ),
        ),
      ),
    );
  } else {
    parts.push(h("p", { class: "muted" }, "Aucun symptôme au-dessus de 0 dans ce questionnaire."));
  }
  const flags = answers.red_flags && typeof answers.red_flags === "object" ? answers.red_flags : {};
  const raised = Object.entries(flags)
    .filter(([key, value]) => value === true && key !== "temperature_c")
    .map(([key]) => termLabel(key));
  if (flags.temperature_c !== null && flags.temperature_c !== undefined) {
    raised.push(`Température : ${String(flags.temperature_c).replace(".", ",")} °C`);
  }
  if (raised.length)
    parts.push(h("p", { class: "flags" }, h("strong", null, "Signes d'alerte : "), raised.join(" · ")));
  if (submission.ecog !== null && submission.ecog !== undefined) {
    parts.push(h("p", null, `${termLabel("ecog")} : ${submission.ecog}`));
  }
  return parts;
}

/**
 * "Questionnaire du 20/11/2026 à 14:02 (arrivé 2 j 3 h plus tard) — Patient·e": of an alert's several questionnaires,
 * the earlier may be the stale one, not only the latest that the alert's own flag judges.
 */
export function questionnaireTitle(submission) {
  const late = submissionLateText(submission);
  return [
    `Questionnaire du ${formatDateTime(submission.authored)}`,
    late ? h("span", { class: "late-submission", title: LATE_ANSWERS_TITLE }, ` (${late})`) : null,
    ` — ${answeredBy(submission)}`,
  ];
}

/** Who has the alert since when: the nurse who reopened it, when one did after it was taken. */
export function inHandText(alert) {
  if (reopenedByNurseSinceTaken(alert)) {
    const who = staffName(alert, "reopened_by") ?? staffName(alert, "acknowledged_by") ?? "—";
    return `Rouverte par ${who} le ${formatDateTime(alert.reopened_at)}`;
  }
  return `Prise par ${staffName(alert, "acknowledged_by") ?? "—"} le ${formatDateTime(alert.acknowledged_at)}`;
}

/**
 * What the nurse can do with the alert in progress, as on its row of the list: take it when nobody has it, close it
 * once taken (a colleague's too: the closing dialog names her). The list's own flows and dialog do the rest.
 */
function currentAlertActions(alert) {
  const action =
    alert.status === "open"
      ? { name: "ack", label: "Je prends", style: "btn-primary" }
      : alert.status === "acknowledged"
        ? { name: "resolve", label: "Clôturer", style: "btn-secondary" }
        : null;
  if (!action) return null;
  return h(
    "div",
    { class: "current-alert-actions" },
    h(
      "button",
      { type: "button", class: `btn ${action.style}`, dataset: { action: action.name, alertId: alert.id } },
      action.label,
    ),
  );
}

function currentAlertSection(alert) {
  const status =
    alert.status === "acknowledged"
      ? inHandText(alert)
      : alert.status === "open"
        ? "Pas encore prise"
        : (STATUS_LABELS[alert.status] ?? alert.status);
  const submissions = Array.isArray(alert.submissions) ? alert.submissions : [];
  const messages = Array.isArray(alert.messages) ? alert.messages : [];
  return section(
    "Alerte en cours",
    "current-alert-title",
    h(
      "div",
      { class: "current-alert-head" },
      levelBadge(alert.level),
      alert.overdue ? overdueBadge(alert.escalation_level) : null,
      h("span", null, `Levée le ${formatDateTime(alert.raised_at)} · ${status}`),
      h("span", null, "Répondu par : ", sourceBadge(alert.answered_by)),
    ),
    lateAnswersNote(alert, new Date()),
    currentAlertActions(alert),
    reasonsList(alert.reasons, alert.answered_by),
    submissions.map((submission) =>
      h(
        "div",
        { class: "submission-detail" },
        h("h3", null, questionnaireTitle(submission)),
        answersTable(submission),
      ),
    ),
    messages.length
      ? h(
          "div",
          { class: "submission-detail" },
          h("h3", null, "Message(s) à l'origine de l'alerte"),
          messagesList(messages),
        )
      : null,
  );
}

// --- History, messages, expected levels --------------------------------------------------------------

/** One step of an alert's history as the lines a nurse reads (free text stays text: h() makes text nodes). */
function stepLines(step) {
  const when = formatDateTime(step.at);
  const who = step.staff_name || step.staff_id || "—";
  switch (step.action) {
    case "acknowledged":
      return [h("li", null, `Prise par ${who} le ${when}`)];
    case "resolved":
      return [
        h(
          "li",
          null,
          `Clôturée par ${who} le ${when} : `,
          h("strong", null, step.outcome ? outcomeLabel(step.outcome) : "—"),
        ),
        step.note ? h("li", { class: "note" }, `Note : ${step.note}`) : null,
      ];
    case "reopened":
      return [
        h(
          "li",
          { class: step.reason ? "reason" : null },
          `Rouverte par ${who} le ${when}`,
          step.reason ? ` — Motif : ${step.reason}` : null,
        ),
      ];
    case "reopened_by_finding":
      return [h("li", null, `Rouverte par une nouvelle réponse le ${when}`)];
    default:
      return [h("li", null, `${step.action} le ${when}`)];
  }
}

function priorAlerts(alerts) {
  if (!alerts.length) return h("p", { class: "empty" }, "Aucune alerte pour ce patient.");
  return h(
    "ol",
    { class: "history" },
    alerts.map((alert) => {
      const steps = (Array.isArray(alert.steps) ? alert.steps : []).slice().sort((a, b) => time(a.at) - time(b.at));
      const lines = steps.flatMap(stepLines).filter(Boolean);
      return h(
        "li",
        {
          class: `history-item level-${alert.level}`,
          // Where focus goes after reopening it (the "Rouvrir" button is gone with the re-render).
          tabindex: "-1",
          dataset: { priorAlertId: alert.id, status: alert.status },
        },
        h(
          "div",
          { class: "history-head" },
          levelBadge(alert.level, "badge-small"),
          h("span", { class: "history-date" }, formatDateTime(alert.raised_at)),
          h("span", { class: `status-chip status-${alert.status}` }, STATUS_LABELS[alert.status] ?? alert.status),
          alert.overdue ? overdueBadge(alert.escalation_level) : null,
          alert.status === "resolved"
            ? h(
                "button",
                { type: "button", class: "btn btn-quiet", dataset: { action: "reopen", alertId: alert.id } },
                "Rouvrir",
              )
            : null,
        ),
        reasonsList(alert.reasons, alert.answered_by),
        h("p", { class: "history-source" }, "Répondu par : ", sourceLabel(alert.answered_by)),
        lines.length ? h("ul", { class: "history-steps" }, lines) : null,
      );
    }),
  );
}

function messagesList(messages) {
  const sorted = [...messages].sort((a, b) => time(b.sent_at) - time(a.sent_at));
  if (!sorted.length) return h("p", { class: "empty" }, "Aucun message.");
  return h(
    "ol",
    { class: "messages" },
    sorted.map((message) =>
      h(
        "li",
        { class: "message" },
        h("p", { class: "message-meta" }, `${formatDateTime(message.sent_at)} — ${sourceLabel(message.answered_by)}`),
        message.body ? h("blockquote", { class: "message-body" }, String(message.body)) : null,
        photoThumbnails(message),
      ),
    ),
  );
}

/**
 * The last day an expected level applies, as "YYYY-MM-DD". The API gives the instant it stops: midnight
 * (Paris) after the last day; a bare date is taken as the last day itself.
 */
export function lastDayOf(until) {
  if (typeof until === "string" && /^\d{4}-\d{2}-\d{2}$/.test(until)) return until;
  const date = parseDate(until);
  return date ? parisDay(new Date(date.getTime() - 1)) : "";
}

/** The symptoms a nurse can expect: the default questionnaire's, then those of a hospital's own questionnaire that
 * this patient has answered about (the API accepts both). */
function expectableTerms(submissions) {
  const known = new Set(Object.keys(getReference().terms));
  const reported = new Set();
  for (const submission of submissions) {
    const grades = submission.grades && typeof submission.grades === "object" ? submission.grades : {};
    for (const term of Object.keys(grades)) if (!known.has(term)) reported.add(term);
  }
  return [...known, ...orderTerms(reported)];
}

function expectedLevels(levels, submissions) {
  const today = parisDay();
  const rows = levels.length
    ? h(
        "table",
        { class: "expected" },
        h("caption", { class: "visually-hidden" }, "Niveaux attendus en cours"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", { scope: "col" }, "Symptôme"),
            h("th", { scope: "col" }, "Pas d'alerte jusqu'au grade"),
            h("th", { scope: "col" }, "Jusqu'au"),
            h("th", { scope: "col" }, "Posé par"),
            h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Action")),
          ),
        ),
        h(
          "tbody",
          null,
          levels.map((level) =>
            h(
              "tr",
              { dataset: { expectedTerm: level.term } },
              h("th", { scope: "row" }, termLabel(level.term)),
              h("td", null, String(level.grade)),
              h("td", null, formatIsoDay(lastDayOf(level.until))),
              h(
                "td",
                { title: level.set_by_name ? level.set_by : null },
                `${level.set_by_name || level.set_by || "—"}${level.set_at ? `, ${formatDateTime(level.set_at)}` : ""}`,
              ),
              h(
                "td",
                null,
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-quiet",
                    dataset: { action: "remove-expected", term: level.term },
                    "aria-label": `Retirer le niveau attendu : ${termLabel(level.term)}`,
                  },
                  "Retirer",
                ),
              ),
            ),
          ),
        ),
      )
    : h("p", { class: "empty" }, "Aucun niveau attendu.");

  const termOptions = expectableTerms(submissions).map((code) => h("option", { value: code }, termLabel(code)));
  const form = h(
    "form",
    { id: "expected-form", class: "inline-form", novalidate: true },
    h(
      "div",
      { class: "field" },
      h("label", { for: "expected-term" }, "Symptôme"),
      h(
        "select",
        { id: "expected-term", name: "term", required: true },
        h("option", { value: "" }, "— choisir —"),
        termOptions,
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "expected-grade" }, "Grade attendu (inclus ; un signe rouge alerte toujours)"),
      h(
        "select",
        { id: "expected-grade", name: "grade", required: true },
        [0, 1, 2].map((grade) => h("option", { value: String(grade), selected: grade === 1 }, String(grade))),
      ),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "expected-until" }, "Jusqu'au"),
      h("input", {
        id: "expected-until",
        name: "until",
        type: "date",
        required: true,
        min: today,
        max: addDays(today, MAX_EXPECTED_DAYS - 1), // 30 days in all, today included
        value: addDays(today, 7),
      }),
    ),
    h(
      "div",
      { class: "field field-submit" },
      h("button", { type: "submit", class: "btn btn-primary", dataset: { action: "set-expected" } }, "Enregistrer"),
    ),
  );
  return [
    h(
      "p",
      { class: "help" },
      `Pour un symptôme attendu chez ce patient, aucune alerte n'est levée jusqu'au grade choisi inclus (un signe rouge alerte toujours), pendant ${MAX_EXPECTED_DAYS} jours au plus.`,
    ),
    rows,
    form,
  ];
}

// --- The whole view ---------------------------------------------------------------------------------

export function renderPatientLoading(container, patientId) {
  clear(container);
  container.append(patientHeader(patientId, null), h("p", { class: "loading" }, "Chargement du dossier…"));
}

export function renderPatientError(container, patientId, message) {
  clear(container);
  container.append(patientHeader(patientId, null), h("p", { class: "error-text", role: "alert" }, message));
}

/**
 * The header's "Prochaine chimio": the earliest session not yet begun, as the list's column counts it (a session
 * that began this morning is past, not the next one); none, and the header says nothing of it.
 */
export function nextSessionDate(sessions, now) {
  return (
    (Array.isArray(sessions) ? sessions : [])
      .map((session) => parseDate(session && session.scheduled_for))
      .filter((date) => date && date.getTime() >= now.getTime())
      .sort((a, b) => a - b)[0] || null
  );
}

function patientHeader(patientId, timeline) {
  const next = nextSessionDate(timeline && timeline.sessions, new Date());
  return h(
    "div",
    { class: "view-head" },
    h(
      "button",
      { type: "button", class: "btn btn-secondary", dataset: { action: "back" } },
      h("span", { "aria-hidden": "true" }, "← "),
      "Retour",
    ),
    h("h1", { id: "patient-title", tabindex: "-1" }, patientShortId(patientId)),
    next ? h("span", { class: "next-session soon" }, `Prochaine chimio le ${formatDay(next)}`) : null,
  );
}

export function renderPatient(container, { patientId, timeline, alertDetail }) {
  clear(container);
  const alerts = (Array.isArray(timeline.alerts) ? timeline.alerts : [])
    .slice()
    .sort((a, b) => time(b.raised_at) - time(a.raised_at));
  const messages = Array.isArray(timeline.messages) ? timeline.messages : [];
  const levels = Array.isArray(timeline.expected_levels) ? timeline.expected_levels : [];

  const head = patientHeader(patientId, timeline);
  // COPACOM: for a patient who cannot use the tablet, the nurse asks the questions by phone and enters the answers.
  head.append(
    h(
      "button",
      { type: "button", class: "btn btn-secondary phone-entry", dataset: { action: "phone-entry" } },
      "Saisir le questionnaire (appel téléphonique)",
    ),
  );
  container.append(
    head,
    h(
      "div",
      { class: "patient-grid" },
      alertDetail && alertDetail.status !== "resolved" ? currentAlertSection(alertDetail) : null,
      section("Évolution des symptômes", "trend-title", trendTable(timeline)),
      // Every alert of the patient, the one in progress too: "précédentes" would misname it.
      section("Historique des alertes", "history-title", priorAlerts(alerts)),
      section("Messages", "messages-title", messagesList(messages)),
      section(
        "Niveaux attendus",
        "expected-title",
        expectedLevels(levels, Array.isArray(timeline.submissions) ? timeline.submissions : []),
      ),
    ),
  );
  // Show the most recent questionnaires first: the trend scrolls to its right end.
  const scroller = container.querySelector(".trend-scroll");
  if (scroller) scroller.scrollLeft = scroller.scrollWidth;
}
