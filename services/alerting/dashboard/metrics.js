// Team figures: GET /v1/metrics over a period, shown as labelled tiles.

import { h, clear, levelIcon } from "./dom.js";
import {
  addDays,
  formatDecimal,
  formatDuration,
  formatInteger,
  formatIsoDay,
  formatPercent,
  levelLabel,
  parisDay,
} from "./format.js";

export const DEFAULT_PERIOD_DAYS = 30;
export const MAX_PERIOD_DAYS = 366; // the API's limit (GET /v1/metrics)
export const PERIOD_TOO_LONG = `Choisissez une période de ${MAX_PERIOD_DAYS} jours au plus.`;

/** The last `days` days, today included, in Paris (the API counts both ends). */
export function lastDays(days, now = new Date()) {
  const to = parisDay(now);
  return { from: addDays(to, -(days - 1)), to };
}

/** Days in the period, both ends included (as the API counts). */
export function periodDays(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000) + 1;
}

/** What is wrong with the period the nurse chose ("YYYY-MM-DD" dates from the form), in French; null: nothing. */
export function periodProblem(from, to) {
  if (!from || !to) return "Choisissez les deux dates de la période.";
  if (from > to) return "La date de début doit précéder la date de fin.";
  if (periodDays(from, to) > MAX_PERIOD_DAYS) return PERIOD_TOO_LONG;
  return null;
}

export function defaultPeriod() {
  return lastDays(DEFAULT_PERIOD_DAYS);
}

function tile(title, main, details = [], hint = null, extraClass = "") {
  return h(
    "section",
    { class: `tile ${extraClass}`.trim() },
    h("h2", { class: "tile-title" }, title),
    h("p", { class: "tile-value" }, main),
    details.length
      ? h(
          "dl",
          { class: "tile-details" },
          details.map(([term, value]) => [h("dt", null, term), h("dd", null, value)]),
        )
      : null,
    hint ? h("p", { class: "tile-hint" }, hint) : null,
  );
}

const obj = (value) => (value && typeof value === "object" ? value : {});

export function renderMetrics(container, metrics) {
  clear(container);
  const byLevel = obj(metrics.alerts_by_level);
  const ack = obj(metrics.time_to_acknowledge);
  const close = obj(metrics.time_to_close);
  const red = Number(byLevel.red) || 0;
  const orange = Number(byLevel.orange) || 0;
  const noData = "pas de données sur la période";

  container.append(
    h("p", { class: "period-shown" }, `Période du ${formatIsoDay(metrics.from)} au ${formatIsoDay(metrics.to)}`),
    h(
      "div",
      { class: "tiles" },
      tile("Alertes par niveau", formatInteger(red + orange), [
        [h("span", { class: "mini-level level-red" }, levelIcon("red"), levelLabel("red")), formatInteger(red)],
        [
          h("span", { class: "mini-level level-orange" }, levelIcon("orange"), levelLabel("orange")),
          formatInteger(orange),
        ],
      ]),
      tile(
        "Délai de prise en charge",
        ack.median_s === null || ack.median_s === undefined ? "—" : `${formatDuration(ack.median_s)}`,
        [
          ["Médiane", formatDuration(ack.median_s)],
          ["90e centile", formatDuration(ack.p90_s)],
          ["Part dans le délai", formatPercent(ack.within_service_level_share)],
          ["Alertes prises", formatInteger(ack.count ?? 0)],
        ],
        ack.count ? "Du déclenchement à « Je prends ». Valeur principale : médiane." : noData,
      ),
      tile(
        "Délai de clôture",
        close.median_s === null || close.median_s === undefined ? "—" : formatDuration(close.median_s),
        [
          ["Médiane", formatDuration(close.median_s)],
          ["90e centile", formatDuration(close.p90_s)],
          ["Alertes clôturées", formatInteger(close.count ?? 0)],
        ],
        close.count ? "Du déclenchement à la clôture. Valeur principale : médiane." : noData,
      ),
      tile(
        "Part des alertes suivies d'une action",
        formatPercent(metrics.acted_share),
        [],
        metrics.acted_share === null || metrics.acted_share === undefined
          ? noData
          : "Alertes clôturées avec une issue autre que « aucune action nécessaire ».",
      ),
      tile(
        "Semaines-patients avec une alerte",
        formatPercent(metrics.patient_weeks_with_alert_share),
        [["Alertes par semaine-patient", formatDecimal(metrics.alert_rate_per_patient_week)]],
        metrics.patient_weeks_with_alert_share === null || metrics.patient_weeks_with_alert_share === undefined
          ? noData
          : "Semaines où le patient a répondu ou écrit. Repère : 13 à 37 % dans les essais publiés.",
      ),
      tile(
        "Alertes en retard maintenant",
        formatInteger(metrics.overdue_now ?? 0),
        [],
        "Non prises dans le délai prévu.",
        Number(metrics.overdue_now) > 0 ? "tile-warning" : "",
      ),
    ),
  );
}

export function renderMetricsMessage(container, message, isError = false) {
  clear(container);
  container.append(h("p", { class: isError ? "error-text" : "loading", role: isError ? "alert" : null }, message));
}
