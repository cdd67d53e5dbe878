// When the tablet gives a request up, when it sends a queued thing again, and what it tells the patient when answers
// are refused: pure, so it is unit-tested on its own (tests/browser/test_web_modules.py).

// A request that hangs (a captive Wi-Fi, a connection stalled half-way) answers nothing and fails nothing for minutes:
// given up after this, it counts as failed (the network's failure), so that what it sent waits and goes again under
// the same key, an enrolment says the tablet could not connect, and a heartbeat is the next one's job.
export const REQUEST_TIMEOUT_MS = 30_000;

/**
 * Runs `request(signal)`, given up after `ms`: the signal, which the request passes to its fetch, then aborts the
 * fetch, or the reading of its answer, wherever it waits (which then throws the signal's reason, a TimeoutError).
 * The one time-out of every request of the tablet's page: its calls to the service, the enrolment, the heartbeats,
 * config.json. Timed with setTimeout, not AbortSignal.timeout: the page's clock, which the browser tests move on.
 */
export async function giveUpAfter(ms, request) {
  const giveUp = new AbortController();
  const timer = setTimeout(() => giveUp.abort(new DOMException("The request took too long.", "TimeoutError")), ms);
  try {
    return await request(giveUp.signal);
  } finally {
    clearTimeout(timer);
  }
}

export const RETRY_FIRST_MS = 2_000;
export const RETRY_MAX_MS = 5 * 60_000;

/**
 * Whether an answer of the service (null: the network failed) means "send the same again later": offline, a
 * dropped connection, a timeout, a rate limit or a 5xx (a 503 during a database restart). Any other refusal would
 * be the same the next time.
 */
export function sendAgain(status) {
  return status === null || status >= 500 || status === 408 || status === 429;
}

/**
 * How long to wait before the `failures`-th retry in a row: 2 s, 4 s, 8 s… at most 5 minutes, each ±20 % at random
 * (`random()` in [0, 1)) so tablets that lost the network together do not all come back in the same second.
 */
export function retryDelay(failures, random = Math.random) {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(failures - 1, 0));
  return base * (0.8 + random() * 0.4);
}

// What a patient can do about a wrong clock: the answers are kept, and "Envoyer" dates them again. Whom to call is
// named as the "Appeler l'équipe soignante" button on the screens that say it (home, after a send) names it.
const SET_THE_CLOCK =
  "Vérifiez la date et l'heure dans les réglages de la tablette. Ensuite, touchez « Reprendre le questionnaire » " +
  "et envoyez vos réponses à nouveau. Si vous ne savez pas le faire, appelez l'équipe soignante de votre service.";

/** A problem's type (RFC 9457) without its base: "in-the-future"; "" when it has none. */
export function problemKind(problem) {
  const type = problem && typeof problem.type === "string" ? problem.type : "";
  return type.slice(type.lastIndexOf("/") + 1);
}

/**
 * What the patient reads when the service refused the answers (a 4xx other than 401: they are kept, as a draft to
 * go back to), in plain French: the questionnaire was updated (`updated`) meanwhile; the tablet's clock is wrong,
 * ahead (`in-the-future`) or more than a year behind (`too-far-in-the-past`), which sending again would not mend
 * and only a person can set right; or, otherwise, an answer is to be checked.
 */
export function answersRefused(problem, { updated = false } = {}) {
  if (updated)
    return "Vos réponses n'ont pas pu être envoyées. Le questionnaire a changé depuis que vous avez répondu. Vos réponses sont gardées. Touchez « Reprendre le questionnaire », vérifiez vos réponses, puis envoyez-les à nouveau.";
  const kind = problemKind(problem);
  if (kind === "in-the-future")
    return `Vos réponses n'ont pas pu être envoyées. La tablette est en avance : sa date ou son heure est fausse. Vos réponses sont gardées. ${SET_THE_CLOCK}`;
  if (kind === "too-far-in-the-past")
    return `Vos réponses n'ont pas pu être envoyées. La tablette a plus d'un an de retard : sa date est fausse. Vos réponses sont gardées. ${SET_THE_CLOCK}`;
  // A service of before these types (during an update) says only where: the date of the answers.
  if (problem && problem.pointer === "/authored")
    return `Vos réponses n'ont pas pu être envoyées. La date ou l'heure de la tablette semble fausse. Vos réponses sont gardées. ${SET_THE_CLOCK}`;
  return "Vos réponses n'ont pas pu être envoyées. Une réponse est à vérifier. Touchez « Reprendre le questionnaire », vérifiez-la, puis envoyez vos réponses à nouveau.";
}
