// The open-alerts list: one row per alert, in the order the API returns (red first; untaken before taken;
// longest waiting; next chemotherapy). A table on desktop; the same rows become cards on narrow screens (CSS only).

import { h, clockIcon, levelIcon } from "./dom.js";
import {
  daysFromToday,
  formatDay,
  formatDuration,
  formatInteger,
  formatTime,
  formatWaiting,
  levelLabel,
  parseDate,
  parisDay,
  patientShortId,
  plural,
  reasonNote,
  reasonText,
  sourceLabel,
  staffName,
} from "./format.js";

export const STATUS_LABELS = Object.freeze({ open: "Ouverte", acknowledged: "Prise", resolved: "Clôturée" });

/** The level badge: text (ROUGE/ORANGE) + a distinct shape + colour. */
export function levelBadge(level, extraClass = "") {
  const known = level === "red" || level === "orange";
  return h(
    "span",
    { class: `badge level-badge level-${known ? level : "unknown"} ${extraClass}`.trim() },
    levelIcon(level),
    h("span", { class: "badge-text" }, levelLabel(level)),
  );
}

export function overdueBadge(escalationLevel) {
  const level = Number(escalationLevel) || 0;
  return h(
    "span",
    { class: "badge overdue-badge" },
    clockIcon(),
    "EN RETARD",
    level > 0 ? h("span", { class: "escalation" }, ` · niveau ${level}`) : null,
  );
}

/** A reason's parts: its text, the rule's note when it says more, and who answered when not the alert's source. */
function reasonParts(reason, alertSource) {
  const source = reason && reason.answered_by;
  const otherSource = alertSource && source && source !== alertSource ? source : null;
  return { text: reasonText(reason), note: reasonNote(reason), otherSource };
}

/**
 * The alert's reasons; a reason someone else answered than the alert's source says who ("· Un proche"). `titled`:
 * the whole list in the title too, for a row whose reasons a zoomed-in screen cuts short (style.css).
 */
export function reasonsList(reasons, alertSource = null, { titled = false } = {}) {
  const list = Array.isArray(reasons) ? reasons : [];
  if (list.length === 0) return h("span", { class: "muted" }, "—");
  const parts = list.map((reason) => reasonParts(reason, alertSource));
  return h(
    "ul",
    { class: "reasons", title: titled ? parts.map(reasonSentence).join(" ; ") : null },
    list.map((reason, i) => {
      const { text, note, otherSource } = parts[i];
      return h(
        "li",
        { class: `reason reason-${reason && reason.level === "red" ? "red" : "orange"}` },
        h("span", { class: "reason-text" }, text),
        note ? h("span", { class: "reason-note" }, note) : null,
        otherSource
          ? h("span", { class: "reason-source", dataset: { source: otherSource } }, ` · ${sourceLabel(otherSource)}`)
          : null,
      );
    }),
  );
}

/** One reason as the list's title says it: "Syndrome main-pied (grade 3) — Intensité déclarée … · Un proche". */
function reasonSentence({ text, note, otherSource }) {
  return `${text}${note ? ` — ${note}` : ""}${otherSource ? ` · ${sourceLabel(otherSource)}` : ""}`;
}

export function sourceBadge(source) {
  return h(
    "span",
    { class: `source source-${source === "patient" ? "patient" : source === "relative" ? "relative" : "other"}` },
    sourceLabel(source),
  );
}

/**
 * The row's "Prochaine chimio". Null (the cell shows "—") for a session already begun: the server names the next one
 * from its own clock when the list is read, and a page left open overnight must not offer yesterday's as the next.
 */
export function nextSessionText(nextSessionAt, now) {
  const date = parseDate(nextSessionAt);
  if (!date || date.getTime() < now.getTime()) return null;
  const days = daysFromToday(date, now);
  let when = null;
  if (days === 0) when = "aujourd'hui";
  else if (days === 1) when = "demain";
  else if (days === 2) when = "après-demain";
  return { text: `Chimio le ${formatDay(date)}`, when, soon: when !== null };
}

export function dueText(dueAt, now) {
  const due = parseDate(dueAt);
  if (!due) return null;
  const sameDay = parisDay(due) === parisDay(now);
  const label = sameDay ? formatTime(due) : `${formatDay(due)} ${formatTime(due)}`;
  return due.getTime() <= now.getTime() ? `échéance dépassée (${label})` : `échéance ${label}`;
}

/**
 * The deadline of `element` (its `data-due`) as it reads at `now`; false when it has none. One to come is kept on one
 * line (style.css): at 125 % zoom "échéance 25/11 09:00" broke into three lines and made its row half as tall again.
 * One past may break after "dépassée", its row flagged EN RETARD anyway.
 */
function showDue(element, now) {
  const text = dueText(element.dataset.due, now);
  if (!text) return false;
  element.textContent = text;
  element.classList.toggle("due-past", parseDate(element.dataset.due).getTime() <= now.getTime());
  return true;
}

/** "à 14:32" today, "le 24/11 à 14:32" otherwise. */
function formatAt(value, now) {
  const date = parseDate(value);
  if (!date) return "";
  return parisDay(date) === parisDay(now) ? `à ${formatTime(date)}` : `le ${formatDay(date)} à ${formatTime(date)}`;
}

/**
 * An alert in hand: how long the patient waited before someone took it ("a attendu 4 min · prise à 16:50"), and
 * when a nurse reopened it since ("· rouverte à 17:30"): a reopen keeps the first take's time, and the wait.
 */
export function waitedText(alert, now) {
  const taken = alert.acknowledged_at ? `prise ${formatAt(alert.acknowledged_at, now)}` : "";
  const waited = Number.isFinite(alert.waiting_seconds) ? `a attendu ${formatDuration(alert.waiting_seconds)}` : "";
  const reopened = reopenedByNurseSinceTaken(alert) ? `rouverte ${formatAt(alert.reopened_at, now)}` : "";
  return [waited, taken, reopened].filter(Boolean).join(" · ") || "—";
}

/** A nurse reopened it after it was taken: it is in her hands since then (`acknowledged_by`). */
export function reopenedByNurseSinceTaken(alert) {
  const reopened = parseDate(alert.reopened_at);
  const taken = parseDate(alert.acknowledged_at);
  return Boolean(reopened && (!taken || reopened > taken));
}

/**
 * An alert a new finding sent back to open after a nurse had taken it: "Rouverte à 16:52 · était prise par …", or
 * "· vous l'aviez prise" when it was she (`me`, her staff id), not her own name as if a colleague's.
 */
export function reopenedText(alert, now, me = null) {
  const parts = reopenedParts(alert, now, me);
  return parts && parts.when + parts.who;
}

function reopenedParts(alert, now, me) {
  if (alert.status !== "open" || !alert.reopened_by_finding_at) return null;
  const had = alert.previously_acknowledged_by;
  const who = !had
    ? ""
    : me && had === me
      ? " · vous l'aviez prise"
      : ` · était prise par ${staffName(alert, "previously_acknowledged_by")}`;
  return { when: `Rouverte ${formatAt(alert.reopened_by_finding_at, now)}`, who };
}

function reopenedNote(alert, now, me) {
  const parts = reopenedParts(alert, now, me);
  if (!parts) return null;
  // At 125 % zoom, beside "Je prends", who had it gives way (style.css) and the time stays whole: a time cut short
  // ("23:3…") reads as another one. Its title and a screen reader say it all.
  return h(
    "span",
    { class: "reopened-note", title: parts.when + parts.who },
    h("span", { class: "reopened-when" }, ...reopenedWhen(alert.reopened_by_finding_at, now)),
    parts.who ? h("span", { class: "reopened-who" }, parts.who) : null,
  );
}

/**
 * "Rouverte à 16:52", or "Rouverte le 24/11 à 23:30" on another day, whose "le" and "à" the table leaves unsaid at
 * 125 % zoom (style.css): "Rouverte" over "24/11 23:30" is two lines beside "Je prends", where the whole took three.
 * The day and the time are never parted. The words are reopenedText's.
 */
function reopenedWhen(value, now) {
  const date = parseDate(value);
  const time = formatTime(date);
  if (parisDay(date) === parisDay(now)) return ["Rouverte ", h("span", { class: "reopened-time" }, `à ${time}`)];
  const word = (text) => h("span", { class: "reopened-word" }, text);
  return ["Rouverte ", h("span", { class: "reopened-time" }, word("le "), `${formatDay(date)} `, word("à "), time)];
}

// Answers given this long before they reached the team (a tablet offline, then back) are flagged on their row.
export const LATE_ANSWERS_S = 6 * 3600;

/** How long after they were given answers reached the team, in seconds, when late enough to flag (null: in time). */
function lateSeconds(given, received) {
  const answered = parseDate(given);
  const arrived = parseDate(received);
  if (!answered || !arrived) return null;
  const late = (arrived.getTime() - answered.getTime()) / 1000;
  return late >= LATE_ANSWERS_S ? late : null;
}

/** The participle agrees with what arrived: "arrivées …" (des réponses), "arrivé …" (un questionnaire). */
function arrivedLater(late, agreement = "") {
  return `arrivé${agreement} ${formatDuration(late)} plus tard`;
}

/**
 * Answers that arrived late: "Réponses du 20/11 à 14:02 · arrivées 2 j 3 h plus tard". The symptoms may have changed
 * since: the nurse checks with the patient how she is now. Judged on the answers the alert received last, so that
 * late answers joining an alert already open say so too ("Dernières réponses du …"), however timely those that raised
 * it; without them (an alert of messages only), on its newest answers against when it began waiting. Answers a nurse
 * took by phone are never late, as in the patient view (`submissionLateText`), whatever their dates say.
 */
export function lateAnswersText(alert, now) {
  const parts = lateAnswersParts(alert, now);
  return parts && parts.which + parts.given + parts.delay;
}

/** lateAnswersText in its parts: which answers ("Réponses "), when they were given, how late they arrived. */
function lateAnswersParts(alert, now) {
  if (alert.latest_answers_by === "nurse_phone") return null;
  const given = parseDate(alert.latest_answers_authored);
  const received = parseDate(alert.latest_answers_received_at);
  const [answered, arrived] =
    given && received
      ? [given, received]
      : [parseDate(alert.answered_at), parseDate(alert.waiting_since ?? alert.raised_at)];
  const late = lateSeconds(answered, arrived);
  if (late === null) return null;
  const merged = Array.isArray(alert.submission_ids) && alert.submission_ids.length > 1;
  const which = merged ? "Dernières réponses" : "Réponses";
  return { which: `${which} `, given: answeredOn(answered, now), delay: ` · ${arrivedLater(late, "es")}` };
}

/** What hovering a late questionnaire's flag says (the patient view, its trend): what the nurse does about it. */
export const LATE_ANSWERS_TITLE = "Réponses envoyées en retard : vérifiez avec le patient comment il va maintenant.";
// The alert's flag says when and how late in its title too: at 125 % zoom its row shows when only.
const LATE_ANSWERS_ADVICE = "Vérifiez avec le patient comment il va maintenant.";

/**
 * The row's and the patient view's flag for answers that arrived late (null: in time). At 125 % zoom the table shows
 * when they were given, "Du 20/11 à 14:02", on one line under "Patient·e" (style.css): the whole sentence took four
 * lines and made its row twice as tall. Its title, and a screen reader, say it all and what to do about it.
 */
export function lateAnswersNote(alert, now) {
  const parts = lateAnswersParts(alert, now);
  if (!parts) return null;
  const text = parts.which + parts.given + parts.delay;
  return h(
    "div",
    { class: "late-answers", title: `${text}. ${LATE_ANSWERS_ADVICE}` },
    h("span", { class: "late-which" }, parts.which),
    h("span", { class: "late-given" }, parts.given),
    h("span", { class: "late-delay" }, parts.delay),
  );
}

/**
 * One questionnaire that reached the team late (an alert's, or a column of the patient's trend): "arrivé 2 j 3 h plus
 * tard", on the same threshold as the alert's flag; null when it came in time. Answers a nurse took by phone are
 * never late: she heard them as the patient gave them, and any wait before they were scored was the platform's.
 */
export function submissionLateText(submission) {
  if (!submission || submission.answered_by === "nurse_phone") return null;
  const late = lateSeconds(submission.authored, submission.received_at);
  return late === null ? null : arrivedLater(late);
}

/** "de 08:10" today, "du 20/11 à 14:02" otherwise. */
function answeredOn(date, now) {
  return parisDay(date) === parisDay(now) ? `de ${formatTime(date)}` : `du ${formatDay(date)} à ${formatTime(date)}`;
}

/** The "Prochaine chimio" cell's content, drawn with the row and again by the tick (the day's words change). */
function nextSessionContent(nextSessionAt, now) {
  const session = nextSessionText(nextSessionAt, now);
  if (!session) return h("span", { class: "muted" }, "—");
  return h(
    "span",
    { class: `next-session${session.soon ? " soon" : ""}` },
    // Under its column's "Prochaine chimio", or after a card's, the date says it (style.css); to a screen reader, not.
    h("span", { class: "next-session-label" }, session.text.replace(/\S+$/, "")),
    session.text.match(/\S+$/)[0],
    session.when ? h("span", { class: "next-session-when" }, ` (${session.when})`) : null,
  );
}

/** "Karim Benali" → "K. Benali", "Marie-Christine Dufresne" → "M.-C. Dufresne"; an id ("ide-karim") as it is. */
export function initialled(name) {
  const words = String(name).trim().split(/\s+/);
  if (words.length < 2) return String(name);
  const first = words.slice(0, -1).map((word) =>
    word
      .split("-")
      .map((part) => `${part.charAt(0)}.`)
      .join("-"),
  );
  return [...first, words[words.length - 1]].join(" ");
}

function cell(label, className, ...children) {
  return h("td", { class: className, "data-label": label }, ...children);
}

export function alertRow(alert, me, now) {
  const level = alert.level === "red" ? "red" : alert.level === "orange" ? "orange" : String(alert.level ?? "");
  const status = String(alert.status ?? "");
  const overdue = Boolean(alert.overdue);
  const patientButtonId = `patient-${alert.id}`;

  const waiting = [];
  if (status === "open") {
    // The live clock runs only while nobody has it, from when it last began waiting (the API's waiting_since).
    const since = alert.waiting_since ?? alert.raised_at ?? "";
    waiting.push(h("div", { class: "waiting-since", "data-since": since }, formatWaiting(since, now)));
    const due = h("div", { class: "due", "data-due": alert.due_at });
    if (showDue(due, now)) waiting.push(due);
  } else {
    waiting.push(h("div", { class: "waited" }, waitedText(alert, now)));
  }
  if (overdue) {
    // At 125 % zoom the badge takes the past deadline's line (style.css): its title says which deadline it was.
    const badge = overdueBadge(alert.escalation_level);
    const past = dueText(alert.due_at, now);
    if (past) badge.title = past;
    waiting.push(h("div", null, badge));
  }

  const owner = [reopenedNote(alert, now, me)];
  if (status === "open") {
    owner.push(
      h(
        "button",
        { type: "button", class: "btn btn-primary", dataset: { action: "ack" }, "aria-describedby": patientButtonId },
        "Je prends",
      ),
    );
  } else if (status === "acknowledged") {
    const mine = me && alert.acknowledged_by === me;
    const name = staffName(alert, "acknowledged_by") ?? "—";
    const taken = `Prise par ${name}`;
    // Beside "Clôturer" at 125 % zoom the first names are initials ("Prise par K. Benali", style.css), hers is
    // "vous"; a screen reader, and the title, say the whole name.
    owner.push(
      h(
        "span",
        { class: `taken-by${mine ? " taken-by-me" : ""}`, title: taken },
        h("span", { class: "visually-hidden" }, taken),
        h("span", { "aria-hidden": "true" }, `Prise par ${mine ? "vous" : initialled(name)}`),
      ),
    );
    // A colleague's alert too: she may be off shift; the dialog names her, so closing in her place is deliberate.
    owner.push(
      h(
        "button",
        {
          type: "button",
          class: "btn btn-secondary",
          dataset: { action: "resolve" },
          "aria-describedby": patientButtonId,
        },
        "Clôturer",
      ),
    );
  } else {
    owner.push(h("span", { class: "muted" }, STATUS_LABELS[status] ?? status));
  }

  return h(
    "tr",
    {
      class: `alert-row level-${level || "unknown"} status-${status}${overdue ? " is-overdue" : ""}`,
      dataset: { alertId: alert.id, level, status, overdue: String(overdue), patientId: alert.patient_id },
    },
    cell("Niveau", "col-level", levelBadge(level)),
    cell(
      "Patient",
      "col-patient",
      h(
        "button",
        {
          type: "button",
          class: "patient-link",
          id: patientButtonId,
          dataset: { action: "open-patient", patientId: alert.patient_id },
          title: "Ouvrir le dossier de suivi",
        },
        // Under its column's "Patient" the id says it (style.css); its name, what a screen reader says, keeps it.
        h("span", { class: "patient-label" }, patientShortId(alert.patient_id).replace(/\S+$/, "")),
        patientShortId(alert.patient_id).match(/\S+$/)[0],
      ),
    ),
    cell("Motifs", "col-reasons", reasonsList(alert.reasons, alert.answered_by, { titled: true })),
    cell("Répondu par", "col-source", sourceBadge(alert.answered_by), lateAnswersNote(alert, now)),
    cell("Attente", "col-waiting", waiting),
    h(
      "td",
      { class: "col-session", "data-label": "Prochaine chimio", dataset: { nextSession: alert.next_session_at || null } },
      nextSessionContent(alert.next_session_at, now),
    ),
    cell("Prise en charge", "col-owner", h("div", { class: "owner" }, owner)),
  );
}

export function filterAlerts(alerts, filters) {
  return alerts.filter((alert) => {
    if (filters.level !== "all" && alert.level !== filters.level) return false;
    if (filters.status === "open" && alert.status !== "open") return false;
    if (filters.status === "acknowledged" && alert.status !== "acknowledged") return false;
    return true;
  });
}

/**
 * "2 rouges · 104 oranges · 1 en retard". Counted from the rows when every active alert is loaded (they follow
 * the nurse's own actions at once); from the server's totals when the list stops at its cap.
 */
export function summaryText(alerts, totals, notShown) {
  const counted = notShown > 0 && totals && totals.by_level;
  const red = counted ? totals.by_level.red : alerts.filter((alert) => alert.level === "red").length;
  const orange = counted ? totals.by_level.orange : alerts.filter((alert) => alert.level === "orange").length;
  const overdue = counted ? totals.overdue : alerts.filter((alert) => alert.overdue).length;
  return `${plural(red, "rouge", "rouges")} · ${plural(orange, "orange", "oranges")} · ${formatInteger(overdue)} en retard`;
}

export function cutText(shown, notShown) {
  if (!(notShown > 0)) return "";
  const missing = plural(notShown, "alerte active n'est pas affichée", "alertes actives ne sont pas affichées");
  return `${missing} : la liste montre les ${plural(shown, "plus urgente", "plus urgentes")} (rouges d'abord).`;
}

/**
 * Re-renders the rows. Keeps keyboard focus on the same control of the same alert when it still exists
 * (or on `focusHint = {alertId, action}`), so a live refresh never throws a keyboard user back to the top.
 */
export function renderAlertRows({ alerts, loaded, loadError, filters, me, focusHint, totals = null, notShown = 0 }) {
  const body = document.getElementById("alert-rows");
  const active = document.activeElement;
  let focus = focusHint || null;
  if (!focus && active && body.contains(active)) {
    const row = active.closest("tr[data-alert-id]");
    if (row) focus = { alertId: row.dataset.alertId, action: active.dataset.action || null };
  }

  const now = new Date();
  const visible = filterAlerts(alerts, filters);
  // A row drawn the same as before stays the same element: a live event redraws the list while a nurse may be
  // clicking one of its buttons, and a button replaced between her press and her release takes no click.
  const drawn = new Map([...body.querySelectorAll("tr[data-alert-id]")].map((row) => [row.dataset.alertId, row]));
  let rows;
  if (!loaded && loadError) {
    rows = [h("tr", { class: "empty-row error-row" }, h("td", { colspan: "7" }, `Liste indisponible. ${loadError}`))];
  } else if (!loaded) {
    rows = [h("tr", { class: "empty-row" }, h("td", { colspan: "7" }, "Chargement des alertes…"))];
  } else if (alerts.length === 0) {
    rows = [h("tr", { class: "empty-row" }, h("td", { colspan: "7" }, "Aucune alerte en attente."))];
  } else if (visible.length === 0) {
    rows = [h("tr", { class: "empty-row" }, h("td", { colspan: "7" }, "Aucune alerte ne correspond aux filtres choisis."))];
  } else {
    rows = visible.map((alert) => {
      const row = alertRow(alert, me, now);
      const before = drawn.get(row.dataset.alertId);
      return before && sameRow(before, row) ? before : row;
    });
  }
  placeRows(body, rows);

  const summary = document.getElementById("alert-summary");
  summary.textContent = loaded ? summaryText(alerts, totals, notShown) : "";
  const shown = document.getElementById("alert-shown");
  const activeCount = alerts.length + notShown;
  shown.textContent =
    loaded && visible.length !== activeCount
      ? `(${plural(visible.length, "affichée", "affichées")} sur ${formatInteger(activeCount)})`
      : "";
  const cut = document.getElementById("alert-cut");
  cut.textContent = loaded ? cutText(alerts.length, notShown) : "";
  cut.hidden = !cut.textContent;

  if (focus) restoreFocus(body, focus);
}

/** The rows in this order, a row already in its place left untouched (never taken out and put back). */
function placeRows(body, rows) {
  const kept = new Set(rows);
  for (const child of [...body.children]) if (!kept.has(child)) child.remove();
  rows.forEach((row, index) => {
    const there = body.children[index];
    if (there !== row) body.insertBefore(row, there || null);
  });
  while (body.children.length > rows.length) body.lastElementChild.remove();
}

/** Whether a row drawn now says exactly what the one on the page says (a flash under way is not a difference). */
function sameRow(before, row) {
  const flashing = before.classList.contains("flash");
  if (flashing) row.classList.add("flash");
  const same = before.isEqualNode(row);
  if (flashing) row.classList.remove("flash");
  return same;
}

function restoreFocus(body, { alertId, action }) {
  const row = body.querySelector(`tr[data-alert-id="${CSS.escape(alertId)}"]`);
  if (!row) {
    document.getElementById("alerts-heading")?.focus();
    return;
  }
  const target =
    (action && row.querySelector(`[data-action="${CSS.escape(action)}"]`)) ||
    row.querySelector('[data-action="resolve"], [data-action="ack"]') ||
    row.querySelector('[data-action="open-patient"]');
  target?.focus();
}

/** Briefly highlights rows whose alert changed (live event or my own action). */
export function flashRows(alertIds) {
  const body = document.getElementById("alert-rows");
  for (const alertId of alertIds) {
    const row = body.querySelector(`tr[data-alert-id="${CSS.escape(alertId)}"]`);
    if (!row) continue;
    row.classList.remove("flash");
    // Force a reflow so that the animation restarts on a row that flashed a moment ago.
    void row.offsetWidth;
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 4000);
  }
}

/**
 * Every 30 s: refresh the "il y a …" texts, the due dates and the next sessions without re-rendering the table. On
 * a quiet ward the list may not be redrawn for hours: a session begun must stop being offered as the next one.
 */
export function tickWaitingTimes(now = new Date()) {
  for (const element of document.querySelectorAll("#alert-rows [data-since]")) {
    element.textContent = formatWaiting(element.dataset.since, now);
  }
  for (const element of document.querySelectorAll("#alert-rows [data-due]")) showDue(element, now);
  for (const element of document.querySelectorAll("#alert-rows [data-next-session]")) {
    const content = nextSessionContent(element.dataset.nextSession, now);
    // Unchanged most of the time: leave the cell alone rather than replace it every 30 s.
    if (content.textContent !== element.textContent || content.className !== element.firstElementChild?.className)
      element.replaceChildren(content);
  }
}
