// When the tablet sends a queued thing again: pure, so it is unit-tested on its own
// (tests/browser/test_web_modules.py).

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
