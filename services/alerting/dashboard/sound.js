// A short beep for new red alerts, made with the Web Audio API (no sound file to fetch).
// Browsers refuse to start audio before the user has interacted with the page, so the AudioContext is
// created on the first click or key press.

const PREF_KEY = "oncofollow.sound";
const MIN_GAP_MS = 3000;

export class Sound {
  constructor() {
    let stored = null;
    try {
      stored = localStorage.getItem(PREF_KEY);
    } catch {
      stored = null;
    }
    this.enabled = stored !== "off";
    this.context = null;
    this.lastBeep = 0;
    // Called once the browser lets the page play (after the first click or key press).
    this.onReady = null;
    this.unlock = this.unlock.bind(this);
    document.addEventListener("pointerdown", this.unlock, true);
    document.addEventListener("keydown", this.unlock, true);
  }

  /** True once the browser lets us play sound. */
  get ready() {
    return Boolean(this.context && this.context.state === "running");
  }

  unlock() {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass) return;
    try {
      if (!this.context) this.context = new AudioContextClass();
      if (this.context.state === "suspended")
        this.context
          .resume()
          .then(() => this.ready && this.onReady?.())
          .catch(() => {});
      else if (this.ready) this.onReady?.();
    } catch {
      this.context = null;
      return;
    }
    if (this.context) {
      document.removeEventListener("pointerdown", this.unlock, true);
      document.removeEventListener("keydown", this.unlock, true);
    }
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    try {
      localStorage.setItem(PREF_KEY, enabled ? "on" : "off");
    } catch {
      // preference not kept: fine
    }
  }

  /** Two short tones; returns false when the sound is off or still blocked by the browser. */
  beep({ force = false } = {}) {
    if (!this.enabled || !this.ready) return false;
    const now = Date.now();
    if (!force && now - this.lastBeep < MIN_GAP_MS) return true;
    this.lastBeep = now;
    const context = this.context;
    const start = context.currentTime + 0.01;
    for (const [offset, frequency] of [
      [0, 880],
      [0.22, 660],
    ]) {
      const oscillator = context.createOscillator();
      const gain = context.createGain();
      oscillator.type = "sine";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.18);
      oscillator.connect(gain).connect(context.destination);
      oscillator.start(start + offset);
      oscillator.stop(start + offset + 0.2);
    }
    return true;
  }
}
