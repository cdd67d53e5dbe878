// The live alert stream (Server-Sent Events) with our own reconnection.
//
// EventSource would retry by itself, but with the same URL, hence the same short-lived stream token,
// which has expired by then. So on any error we close it, wait (0.5 s, 1 s, 2 s … 10 s), ask for a new
// stream token and reopen with `since=<last event id>`: the server replays exactly what we missed.

const LAST_EVENT_KEY = "oncofollow.lastEventId";
const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 10000;
// A connection that stayed up this long was healthy: the next failure starts the backoff again.
const STABLE_AFTER_MS = 10000;

export const ALERT_EVENT_TYPES = Object.freeze([
  "alert.raised",
  "alert.updated",
  "alert.acknowledged",
  "alert.resolved",
  "alert.reopened",
  "alert.escalated",
]);

const VALID_ID = /^\d{1,20}$/;

/** How long to wait before the reconnection after `attempt` failed ones in a row: 0.5 s, 1 s, 2 s … at most 10 s. */
export function reconnectDelay(attempt) {
  return Math.min(BASE_DELAY_MS * 2 ** attempt, MAX_DELAY_MS);
}

function readStoredId() {
  try {
    const value = sessionStorage.getItem(LAST_EVENT_KEY);
    return value && VALID_ID.test(value) ? value : null;
  } catch {
    return null;
  }
}

export function clearStoredEventId() {
  try {
    sessionStorage.removeItem(LAST_EVENT_KEY);
  } catch {
    // storage disabled
  }
}

export class AlertStream {
  /**
   * @param {object} options
   * @param {() => Promise<string>} options.fetchToken resolves with a fresh stream token
   * @param {(event: {type: string, streamId: string|null, envelope: object|null}) => void} options.onEvent
   * @param {(state: "live"|"reconnecting"|"offline") => void} options.onState "reconnecting" while we keep
   *   trying (whatever the cause, network down included), "offline" once stopped (signed out, token refused)
   * @param {() => void} options.onOpen called on every successful (re)connection
   * @param {() => void} options.onReset the server could not replay the gap: reload everything
   * @param {(error: Error) => boolean} [options.isFatal] true stops reconnecting (e.g. signed out)
   */
  constructor({ fetchToken, onEvent, onState, onOpen, onReset, isFatal }) {
    this.fetchToken = fetchToken;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onOpen = onOpen;
    this.onReset = onReset;
    this.isFatal = isFatal || (() => false);
    this.lastEventId = readStoredId();
    this.source = null;
    this.attempt = 0;
    this.openedAt = 0;
    this.retryTimer = null;
    this.running = false;
    this.generation = 0;
    this.state = null;
    this.handleOnline = () => {
      if (this.running && this.retryTimer !== null) this.retryNow();
    };
  }

  start() {
    if (this.running) return;
    this.running = true;
    window.addEventListener("online", this.handleOnline);
    this.connect();
  }

  stop() {
    this.running = false;
    this.generation += 1;
    window.removeEventListener("online", this.handleOnline);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.closeSource();
    this.setState("offline");
  }

  /** Forget the position in the stream (sign-out): the next start only gets new events. */
  forgetPosition() {
    this.lastEventId = null;
    clearStoredEventId();
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  closeSource() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  retryNow() {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  scheduleRetry() {
    if (!this.running) return;
    const delay = reconnectDelay(this.attempt);
    this.attempt += 1;
    // Always told, even when already "reconnecting": a first connection that fails is a lost connection.
    this.state = "reconnecting";
    this.onState("reconnecting", { failed: true });
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  async connect() {
    if (!this.running) return;
    const generation = ++this.generation;
    this.closeSource();
    if (this.state !== "live") this.setState("reconnecting");
    let token;
    try {
      token = await this.fetchToken();
    } catch (error) {
      if (generation !== this.generation || !this.running) return;
      if (this.isFatal(error)) {
        this.stop();
        return;
      }
      this.scheduleRetry();
      return;
    }
    if (generation !== this.generation || !this.running) return;

    const params = new URLSearchParams({ stream_token: token });
    if (this.lastEventId) params.set("since", this.lastEventId);
    const source = new EventSource(`/v1/alerts/stream?${params}`);
    this.source = source;

    source.addEventListener("open", () => {
      if (this.source !== source) return;
      this.openedAt = Date.now();
      this.setState("live");
      this.onOpen();
    });
    source.addEventListener("error", () => {
      if (this.source !== source) return;
      // Never let EventSource retry with the expired token: close and reconnect ourselves.
      source.close();
      this.source = null;
      if (this.openedAt && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.attempt = 0;
      this.openedAt = 0;
      this.scheduleRetry();
    });
    source.addEventListener("reset", () => {
      if (this.source !== source) return;
      this.onReset();
    });
    const handle = (message) => {
      if (this.source !== source) return;
      this.receive(message);
    };
    for (const type of ALERT_EVENT_TYPES) source.addEventListener(type, handle);
    // Events without an `event:` field arrive as "message"; take them too (unknown types are tolerated).
    source.addEventListener("message", handle);
  }

  receive(message) {
    const streamId = message.lastEventId && VALID_ID.test(message.lastEventId) ? message.lastEventId : null;
    if (streamId) {
      this.lastEventId = streamId;
      try {
        sessionStorage.setItem(LAST_EVENT_KEY, streamId);
      } catch {
        // storage disabled: the in-memory position still works for this page
      }
    }
    let envelope = null;
    try {
      const parsed = JSON.parse(message.data);
      if (parsed && typeof parsed === "object") envelope = parsed;
    } catch {
      envelope = null;
    }
    const type = message.type === "message" ? (envelope && envelope.type) || "message" : message.type;
    this.onEvent({ type, streamId, envelope });
  }
}
