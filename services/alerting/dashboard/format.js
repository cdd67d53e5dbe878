// French formatting: labels from GET /v1/reference, Europe/Paris dates, durations, numbers.

const TZ = "Europe/Paris";

const dateFmt = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, day: "2-digit", month: "2-digit" });
const dateYearFmt = new Intl.DateTimeFormat("fr-FR", {
  timeZone: TZ,
  day: "2-digit",
  month: "2-digit",
  year: "numeric",
});
const timeFmt = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, hour: "2-digit", minute: "2-digit" });
const timeSecFmt = new Intl.DateTimeFormat("fr-FR", {
  timeZone: TZ,
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const weekdayFmt = new Intl.DateTimeFormat("fr-FR", { timeZone: TZ, weekday: "short" });
const isoDayFmt = new Intl.DateTimeFormat("fr-FR", {
  timeZone: TZ,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});
const integerFmt = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 0 });
const decimalFmt = new Intl.NumberFormat("fr-FR", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percentFmt = new Intl.NumberFormat("fr-FR", { style: "percent", maximumFractionDigits: 0 });

// --- Labels ---------------------------------------------------------------------------------------

let reference = { terms: {}, rules: {}, red_flags: {}, outcomes: {}, sources: {}, levels: {} };

export function setReference(value) {
  const safe = (table) => (table && typeof table === "object" ? table : {});
  reference = {
    terms: safe(value && value.terms),
    rules: safe(value && value.rules),
    red_flags: safe(value && value.red_flags),
    outcomes: safe(value && value.outcomes),
    sources: safe(value && value.sources),
    levels: safe(value && value.levels),
  };
}

export function getReference() {
  return reference;
}

function lookup(table, code) {
  return Object.prototype.hasOwnProperty.call(table, code) && typeof table[code] === "string" ? table[code] : null;
}

export const levelLabel = (level) => lookup(reference.levels, level) ?? String(level ?? "").toUpperCase();
export const sourceLabel = (source) => lookup(reference.sources, source) ?? String(source ?? "—");
export const outcomeLabel = (outcome) => lookup(reference.outcomes, outcome) ?? String(outcome ?? "—");
export const termLabel = (term) => lookup(reference.terms, term) ?? lookup(reference.red_flags, term) ?? String(term);
export const ruleLabel = (rule) => lookup(reference.rules, rule) ?? String(rule ?? "");

/** "Nausées (grade 3)", "Fièvre ≥ 38 °C", "État général (ECOG) : 3"; unknown codes fall back to the code. */
export function reasonText(reason) {
  if (!reason || typeof reason !== "object") return String(reason ?? "");
  const code = reason.code;
  const label =
    lookup(reference.terms, code) ?? lookup(reference.red_flags, code) ?? lookup(reference.rules, reason.rule) ?? code;
  const grade = reason.grade;
  if (grade === null || grade === undefined) return String(label ?? reason.rule ?? "?");
  if (code === "ecog") return `${label} : ${grade}`;
  return `${label} (grade ${grade})`;
}

// Rules that say more than the code and the grade; shown as a short note under the reason.
const INFORMATIVE_RULES = new Set(["red.very_severe", "orange.worsened", "orange.proxy_psychological"]);

export function reasonNote(reason) {
  if (!reason || !INFORMATIVE_RULES.has(reason.rule)) return null;
  return lookup(reference.rules, reason.rule);
}

export function patientShortId(patientId) {
  return `Patient ${String(patientId ?? "").slice(0, 8)}`;
}

// --- Dates (always shown in Europe/Paris) -------------------------------------------------------------

export function parseDate(value) {
  if (!value) return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "YYYY-MM-DD" of the given instant in Paris. */
export function parisDay(date = new Date()) {
  const parts = Object.fromEntries(isoDayFmt.formatToParts(date).map((part) => [part.type, part.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** Adds whole days to a "YYYY-MM-DD" calendar date. */
export function addDays(isoDay, days) {
  const [year, month, day] = isoDay.split("-").map(Number);
  const date = new Date(Date.UTC(year, month - 1, day + days));
  return date.toISOString().slice(0, 10);
}

export function formatDay(value) {
  const date = parseDate(value);
  return date ? dateFmt.format(date) : "—";
}

export function formatDayYear(value) {
  const date = parseDate(value);
  return date ? dateYearFmt.format(date) : "—";
}

/** A "YYYY-MM-DD" calendar date as "24/11/2025" (no time zone shift: it is a date, not an instant). */
export function formatIsoDay(isoDay) {
  if (typeof isoDay !== "string") return "—";
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(isoDay);
  return match ? `${match[3]}/${match[2]}/${match[1]}` : isoDay;
}

export function formatTime(value) {
  const date = parseDate(value);
  return date ? timeFmt.format(date) : "—";
}

export function formatClock(value) {
  const date = parseDate(value);
  return date ? timeSecFmt.format(date) : "—";
}

/** "14:32" today, "hier 14:32", "lun. 24/11 14:32" otherwise. */
export function formatWhen(value, now = new Date()) {
  const date = parseDate(value);
  if (!date) return "—";
  const day = parisDay(date);
  const today = parisDay(now);
  if (day === today) return timeFmt.format(date);
  if (day === addDays(today, -1)) return `hier ${timeFmt.format(date)}`;
  if (day === addDays(today, 1)) return `demain ${timeFmt.format(date)}`;
  return `${weekdayFmt.format(date)} ${dateFmt.format(date)} ${timeFmt.format(date)}`;
}

/** "le 24/11 à 08:15" style, for histories. */
export function formatDateTime(value) {
  const date = parseDate(value);
  if (!date) return "—";
  return `${dateYearFmt.format(date)} à ${timeFmt.format(date)}`;
}

/** Calendar days from today (Paris) to the date: 0 today, 1 tomorrow, negative in the past. */
export function daysFromToday(value, now = new Date()) {
  const date = parseDate(value);
  if (!date) return null;
  const target = Date.parse(`${parisDay(date)}T00:00:00Z`);
  const today = Date.parse(`${parisDay(now)}T00:00:00Z`);
  return Math.round((target - today) / 86400000);
}

// --- Durations --------------------------------------------------------------------------------------

/** "< 1 min", "42 min", "3 h 05", "2 j 4 h". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const total = Math.max(0, Math.round(Number(seconds)));
  if (total < 60) return "< 1 min";
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${String(minutes % 60).padStart(2, "0")}`;
  const days = Math.floor(hours / 24);
  const rest = hours % 24;
  return rest ? `${days} j ${rest} h` : `${days} j`;
}

/** "à l'instant", "il y a 12 min" under an hour, then "depuis 3 h 05". */
export function formatWaiting(since, now = new Date()) {
  const date = parseDate(since);
  if (!date) return "—";
  const seconds = Math.max(0, (now.getTime() - date.getTime()) / 1000);
  if (seconds < 60) return "à l'instant";
  if (seconds < 3600) return `il y a ${Math.floor(seconds / 60)} min`;
  return `depuis ${formatDuration(seconds)}`;
}

// --- Numbers ------------------------------------------------------------------------------------------

export const formatInteger = (value) => (value === null || value === undefined ? "—" : integerFmt.format(value));
export const formatDecimal = (value) => (value === null || value === undefined ? "—" : decimalFmt.format(value));
export const formatPercent = (value) => (value === null || value === undefined ? "—" : percentFmt.format(value));

export function plural(count, singular, pluralForm) {
  return `${integerFmt.format(count)} ${count > 1 ? pluralForm : singular}`;
}

/** Who an alert names at `field` (acknowledged_by…), as colleagues know her: her name when known, else her id. */
export function staffName(alert, field) {
  if (!alert) return null;
  return alert[`${field}_name`] || alert[field] || null;
}
