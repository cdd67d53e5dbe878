// What makes the tablet usable by patients who read with difficulty or seldom use a tablet (RE'CONNECT: 55% of them
// under-used the app; large fonts were needed, and a person to call always one tap away): the text size (and, on a
// screen short for it, a compact question screen), the team's number, a questionnaire left for later without fear of
// losing it, and a reminder to charge the tablet.
//
// Kept apart from the screens' code (app.js): this module reads the page's state from the page itself (which screen
// shows, body[data-screen]) and the deployment's from /tablet/config.json.

import { REQUEST_TIMEOUT_MS, giveUpAfter } from "./sending.js";
import { screenFit } from "./sizing.js";

const STORE = "oncofollow.tablet."; // app.js's prefix: forgotten with the loan (app.js's forgetEverything says what stays)
// The root font size steps (tablet.css): 100%, then about 130%, 160% and 200%.
const TEXT_SIZES = 4;
const LOW_BATTERY = 0.2;
// The screens of a questionnaire being answered: leaving them keeps the draft ("Pas maintenant", "Accueil").
const QUESTIONNAIRE_SCREENS = ["screen-who", "screen-question", "screen-review"];

const $ = (selector) => document.querySelector(selector);

function load(name) {
  try {
    return JSON.parse(localStorage.getItem(STORE + name));
  } catch {
    return null;
  }
}

function save(name, value) {
  try {
    if (value === null) localStorage.removeItem(STORE + name);
    else localStorage.setItem(STORE + name, JSON.stringify(value));
  } catch {
    // a full storage keeps the patient's answers, not a preference
  }
}

// --- text size -----------------------------------------------------------------------------------

function textSize() {
  const size = load("textSize");
  return Number.isInteger(size) && size >= 0 && size < TEXT_SIZES ? size : 0;
}

function applyTextSize(size) {
  document.documentElement.dataset.textSize = String(size);
  $("#text-smaller").disabled = size === 0;
  $("#text-larger").disabled = size === TEXT_SIZES - 1;
  fitScreen();
}

/** A screen short for the text chosen gets the compact question screen (tablet.css): its answers in sight. */
function fitScreen() {
  const root = document.documentElement;
  root.dataset.screenFit = screenFit(window.innerHeight, parseFloat(getComputedStyle(root).fontSize));
  fitAnswers();
}

function setUpTextSize() {
  applyTextSize(textSize());
  const change = (step) => {
    const size = Math.min(TEXT_SIZES - 1, Math.max(0, textSize() + step));
    save("textSize", size || null);
    applyTextSize(size);
  };
  // A new loan starts (app.js forgot everything of the patient's): the default size, for the next patient. The loan
  // ended: the size kept (app.js), for the patient who reads that it did.
  document.addEventListener("tablet-forgotten", () => applyTextSize(textSize()));
  $("#text-smaller").addEventListener("click", () => change(-1));
  $("#text-larger").addEventListener("click", () => change(+1));
  window.addEventListener("resize", fitScreen); // turned to landscape, or the browser's bars shown or hidden
}

// --- every answer in sight, or a cue that more are below -----------------------------------------------------------

// At 200 % on a tablet in landscape, a question's answers ran on below the screen (one or two of the ECOG question's
// five in sight, three of a frequency question's): a patient who does not think of scrolling answered from those she
// saw. Such answers get less room around them, and short ones go side by side in landscape (tablet.css), so that all
// are seen where they can be; where they still cannot, "Autres réponses plus bas" at the screen's foot says so and
// scrolls to them.

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

function answerOptions() {
  return [...document.querySelectorAll("#question-answers .option")];
}

/** How many lines an answer's words take (its label only: the tick drawn before a chosen answer is not a line). */
function lines(option) {
  const range = document.createRange();
  range.selectNodeContents(option);
  return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
}

/**
 * Whether every answer takes as many lines chosen (its tick shown, tablet.css) as not: measured on all at once in
 * each style (#question-answers[data-measure], never painted: set and removed before the browser draws), so that a
 * tap never makes the answer touched wrap onto a line it did not take, and the answers below it move. tablet.css keeps
 * the tick's room in every answer and draws no bold, so they agree; this keeps two columns honest should that change.
 */
function sameLinesChosen(answers, options) {
  answers.dataset.measure = "plain";
  const plain = options.map(lines);
  answers.dataset.measure = "chosen";
  const chosen = options.map(lines);
  delete answers.dataset.measure;
  return chosen.every((count, i) => count === plain[i]);
}

/** How far down the page the lowest answer ends, in CSS pixels from the page's top (wherever it is scrolled). */
function answersEnd(options) {
  return Math.max(...options.map((option) => option.getBoundingClientRect().bottom)) + window.scrollY;
}

/**
 * Where the answers as they always were do not all show on arrival (scrolled to the top): first less room inside
 * and between them (tight); then, on a compact screen in landscape, two columns, kept only if they end higher, no
 * answer takes more than two lines in half the width (short answers: a long sentence cut into a narrow column is
 * harder to read, and grows taller by as much as the columns save), and none takes a line more once chosen (a tap
 * that pushes the answers below down is one a patient reads as a fault). Elsewhere nothing changes.
 */
function arrangeAnswers() {
  const answers = $("#question-answers");
  const options = answerOptions();
  delete answers.dataset.columns;
  delete answers.dataset.fit;
  if (!options.length || answersEnd(options) <= window.innerHeight) return;
  answers.dataset.fit = "tight";
  const root = document.documentElement;
  if (options.length < 3 || root.dataset.screenFit !== "short" || window.innerWidth <= window.innerHeight) return;
  const oneColumn = answersEnd(options);
  if (oneColumn <= window.innerHeight) return;
  answers.style.setProperty("--answer-rows", String(Math.ceil(options.length / 2)));
  answers.dataset.columns = "2";
  const narrow = answersEnd(options) >= oneColumn || options.some((option) => lines(option) > 2);
  if (narrow || !sameLinesChosen(answers, options)) delete answers.dataset.columns;
}

/** The cue shown while an answer is below the screen (or under the cue itself), gone once the last is in sight. */
function showCue() {
  const cue = $("#more-answers");
  const options = answerOptions();
  if (document.body.dataset.screen !== "screen-question" || !options.length) {
    cue.hidden = true;
    return;
  }
  const limit = cue.hidden ? window.innerHeight : cue.getBoundingClientRect().top;
  cue.hidden = Math.max(...options.map((option) => option.getBoundingClientRect().bottom)) <= limit;
}

function fitAnswers() {
  arrangeAnswers();
  showCue();
}

/**
 * The cue touched: the answers left below come into sight, all at once where they fit (the cue then goes), or else
 * from the first not wholly seen, brought to the top of the screen.
 */
function scrollToMoreAnswers() {
  const cue = $("#more-answers");
  const limit = cue.getBoundingClientRect().top;
  const boxes = answerOptions().map((option) => option.getBoundingClientRect());
  const next = boxes.find((box) => box.bottom > limit);
  if (!next) return;
  const margin = parseFloat(getComputedStyle(document.documentElement).fontSize) / 2;
  const lowest = Math.max(...boxes.map((box) => box.bottom));
  const by = Math.min(lowest + margin - limit, next.top - margin);
  window.scrollBy({ top: by, behavior: reducedMotion.matches ? "instant" : "smooth" });
}

function setUpAnswersInSight() {
  let pending = false;
  const later = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      showCue();
    });
  };
  window.addEventListener("scroll", later, { passive: true });
  // Before the browser scrolls an answer reached with the keyboard into view: the room the cue takes (tablet.css's
  // scroll-padding) is then known, even for a key pressed before the last scrolling's frame.
  $("#question-answers").addEventListener("focusin", showCue);
  $("#more-answers").addEventListener("click", scrollToMoreAnswers);
  // A new question, a screen change, the note above a question a refusal sent the patient back to, an answer chosen:
  // laid out anew.
  const changed = new MutationObserver(fitAnswers);
  changed.observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
  changed.observe($("#question-answers"), {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["aria-checked"],
  });
  changed.observe($("#question-refused"), { attributes: true, attributeFilter: ["hidden"] });
  fitAnswers();
}

// --- the team's number ---------------------------------------------------------------------------

function showTeamPhone(phone) {
  for (const link of document.querySelectorAll(".team-phone")) {
    if (phone) {
      link.href = `tel:${phone.replace(/[^0-9+]/g, "")}`;
      const number = document.createElement("span");
      number.className = "team-phone-number"; // kept on one line: a number split in two is misread
      number.textContent = phone;
      const label = document.createElement("span");
      label.append("Appeler l'équipe soignante : ", number);
      link.replaceChildren(label);
    }
    link.parentElement.hidden = !phone;
  }
  // The sentence above the button: whom to call where there is no button, not the button's words again where there is.
  for (const sentence of document.querySelectorAll("[data-team-phone]"))
    sentence.hidden = (sentence.dataset.teamPhone === "shown") !== Boolean(phone);
}

/** The number from the deployment (TEAM_PHONE); the last one known while the tablet is offline. */
async function setUpTeamPhone() {
  showTeamPhone(load("teamPhone"));
  let config;
  try {
    // Given up like every request of the page (giveUpAfter): a captive Wi-Fi held it for minutes.
    config = await giveUpAfter(REQUEST_TIMEOUT_MS, async (signal) =>
      (await fetch("config.json", { cache: "no-store", signal })).json(),
    );
  } catch {
    return;
  }
  const phone = typeof config.team_phone === "string" && config.team_phone ? config.team_phone : null;
  save("teamPhone", phone);
  showTeamPhone(phone);
}

// --- "Pas maintenant" ----------------------------------------------------------------------------

/**
 * Leaving a questionnaire for later (app.js keeps the draft and goes home): home says it is kept. A number typed
 * but not yet confirmed with "Suivant" is kept too, as typed, and put back when that question shows again (app.js
 * checks it then, as always): "Vos réponses sont gardées" holds for it as well.
 */
function setUpNotNow() {
  const note = $("#paused-note");
  const form = $("#question-form");
  document.addEventListener(
    "click",
    (event) => {
      const button = event.target.closest("button[data-action='home']");
      const screen = button && button.closest(".screen");
      if (!screen || !QUESTIONNAIRE_SCREENS.includes(screen.id)) return;
      note.hidden = false;
      const input = $("#question-input");
      if (screen.id === "screen-question" && input)
        save("typed", { linkId: form.dataset.linkId, text: input.value });
    },
    true, // before app.js's handler takes the page home
  );
  const observer = new MutationObserver(() => {
    const screen = document.body.dataset.screen;
    if (screen !== "screen-home") note.hidden = true;
    const typed = load("typed");
    if (!typed || !QUESTIONNAIRE_SCREENS.includes(screen)) return; // kept through home, a message, a reload
    if (screen === "screen-question" && form.dataset.linkId === typed.linkId && $("#question-input"))
      $("#question-input").value = typed.text;
    save("typed", null);
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-screen"] });
}

// --- battery -------------------------------------------------------------------------------------

/** A calm reminder on home while the tablet is low and not charging: a flat tablet is a patient who cannot answer. */
async function setUpBattery() {
  if (typeof navigator.getBattery !== "function") return;
  let battery;
  try {
    battery = await navigator.getBattery();
  } catch {
    return;
  }
  const banner = $("#battery-banner");
  const render = () => {
    banner.hidden = !(battery.level < LOW_BATTERY && !battery.charging);
  };
  battery.addEventListener("chargingchange", render);
  battery.addEventListener("levelchange", render);
  render();
}

setUpTextSize();
setUpAnswersInSight();
setUpNotNow();
setUpTeamPhone();
setUpBattery();
