// The team figures' view as the page runs it (metrics.js draws the tiles and checks the period): the period's form
// and its quick choices, and the figures' request (only the latest is shown).

import { api } from "./api.js";
import { $, clear, toast, toastError } from "./dom.js";
import { parisDay } from "./format.js";
import { lastDays, PERIOD_TOO_LONG, periodProblem, renderMetrics, renderMetricsMessage } from "./metrics.js";
import { endedWithSession } from "./session.js";

/** `state`: the page's (`period`). */
export function createMetricsView({ state }) {
  let metricsRequest = 0;

  async function loadMetrics() {
    const form = $("period-form");
    form.elements.from.value = state.period.from;
    form.elements.to.value = state.period.to;
    form.elements.to.max = parisDay();
    const container = $("metrics-content");
    const request = ++metricsRequest;
    renderMetricsMessage(container, "Chargement des indicateurs…");
    try {
      const metrics = await api.metrics(state.period.from, state.period.to);
      if (request !== metricsRequest) return;
      renderMetrics(container, metrics || {});
    } catch (error) {
      if (request !== metricsRequest || endedWithSession(error)) return;
      renderMetricsMessage(container, error.detail || "Indicateurs indisponibles.", true);
      toastError(error);
    }
  }

  function submitPeriod(event) {
    event.preventDefault();
    const form = $("period-form");
    const from = form.elements.from.value;
    const to = form.elements.to.value;
    const problem = periodProblem(from, to);
    if (problem) {
      toast(problem, "error");
      if (problem === PERIOD_TOO_LONG) form.elements.from.focus();
      return;
    }
    state.period = { from, to };
    loadMetrics();
  }

  function quickPeriod(days) {
    state.period = lastDays(days);
    loadMetrics();
  }

  /** The figures go with her session: an answer still coming is not shown to the next nurse. */
  function forget() {
    metricsRequest += 1;
    clear($("metrics-content"));
  }

  function wire() {
    $("period-form").addEventListener("submit", submitPeriod);
    for (const button of document.querySelectorAll("[data-period-days]")) {
      button.addEventListener("click", () => quickPeriod(Number(button.dataset.periodDays)));
    }
  }

  return { loadMetrics, forget, wire };
}
