// "Écouter": the page reads a question and its answers aloud, or the notice after a send, for patients who read with
// difficulty (RE'CONNECT: voice is what helped those who under-used the app).
//
// Each button names what it reads (data-listen): the question screen's question and answers (and, for a question a
// refusal sent the patient back to, why it is asked again), the sent screen's sentences. Reading stops when the
// button is pressed again, when the patient answers, and when the screen or the question changes, whoever changes
// it: this module watches the page rather than being told, so the screens' code does not have to know about it.

const RATE = 0.85; // a little slower than the voice's default: older patients, on chemotherapy, follow it better
const LISTEN = "Écouter";
const STOP = "Arrêter la lecture";

let reading = null; // the button whose text is being read, or null

/** The sentences a button reads, as the screen shows them now. */
function sentences(kind) {
  const text = (selector) => {
    const element = document.querySelector(selector);
    // A sentence of the page's markup runs over several lines: one sentence said, not broken where the file is.
    return element && !element.hidden ? element.textContent.replace(/\s+/g, " ").trim() : "";
  };
  if (kind === "question") {
    const options = [...document.querySelectorAll("#question-answers .option")];
    const said = options.map((o) => o.textContent.trim());
    // Answers below the screen (comfort.js's cue shown): said where the screen says so, before the first of them.
    const cue = text("#more-answers");
    if (cue) {
      const limit = document.getElementById("more-answers").getBoundingClientRect().top;
      const below = options.findIndex((o) => o.getBoundingClientRect().bottom > limit);
      if (below >= 0) said.splice(below, 0, `${cue} :`);
    }
    return [
      text("#question-group"),
      text("#question-refused"), // why this question is asked again, before it, as the screen shows it
      text("#question-text"),
      options.length ? "Les réponses possibles :" : "",
      ...said,
    ].filter(Boolean);
  }
  // The sent screen: what happened, then what to do (the emergency number, the team's).
  const call = [...document.querySelectorAll("#screen-sent .team-phone")].filter((a) => !a.closest("[hidden]"));
  return [text("#sent-title"), text("#sent-status"), text("#sent-notice"), ...call.map((a) => a.textContent.trim())]
    .filter(Boolean);
}

/** A French voice when the browser has one; the browser's default otherwise (it still gets lang fr-FR). */
function frenchVoice() {
  const voices = speechSynthesis.getVoices();
  return voices.find((v) => v.lang === "fr-FR") || voices.find((v) => /^fr\b/i.test(v.lang)) || null;
}

function stop() {
  if (!reading) return;
  const button = reading;
  reading = null;
  button.textContent = LISTEN;
  delete button.dataset.reading;
  speechSynthesis.cancel();
}

function read(button) {
  stop();
  speechSynthesis.cancel(); // whatever an earlier page left queued
  const voice = frenchVoice();
  const said = sentences(button.dataset.listen);
  if (!said.length) return;
  reading = button;
  // The label says what a press does next (not aria-pressed, whose label must not change).
  button.textContent = STOP;
  button.dataset.reading = "true";
  // One utterance a sentence: a pause between the answers, and no long utterance for Chrome to cut short.
  said.forEach((sentence, index) => {
    const utterance = new SpeechSynthesisUtterance(sentence);
    utterance.lang = "fr-FR";
    utterance.rate = RATE;
    if (voice) utterance.voice = voice;
    if (index === said.length - 1)
      utterance.onend = () => {
        if (reading === button) stop();
      };
    utterance.onerror = () => {
      if (reading === button) stop();
    };
    speechSynthesis.speak(utterance);
  });
}

function setUpListening() {
  if (!window.speechSynthesis || typeof window.SpeechSynthesisUtterance !== "function") return;
  speechSynthesis.getVoices(); // Chrome loads its voices on the first ask: the French one is there by the first tap
  const buttons = document.querySelectorAll("[data-listen]");
  for (const button of buttons) {
    button.hidden = false;
    button.addEventListener("click", () => (reading === button ? stop() : read(button)));
  }
  // Any other button (an answer, "Suivant", "Accueil"…) and any typing stop the reading; not "Autres réponses plus
  // bas", which only shows the answers being read.
  document.addEventListener(
    "click",
    (event) => {
      const button = event.target.closest("button, a");
      if (button && !button.dataset.listen && button.id !== "more-answers") stop();
    },
    true,
  );
  document.addEventListener("input", stop, true);
  // So does the page moving on by itself (a refusal sent back to a question, a reload of the screen's content).
  const moved = new MutationObserver(stop);
  moved.observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  const form = document.getElementById("question-form");
  if (form) moved.observe(form, { attributes: true, attributeFilter: ["data-link-id"] });
  window.addEventListener("pagehide", stop);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") stop();
  });
}

setUpListening();
