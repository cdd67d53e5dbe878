// What makes the tablet usable by patients who read with difficulty or seldom use a tablet (RE'CONNECT: 55% of them
// under-used the app; large fonts were needed, and a person to call always one tap away): the text size (and, on a
// screen short for it, a compact question screen), the team's number, a questionnaire left for later without fear of
// losing it, and a reminder to charge the tablet.
//
// Kept apart from the screens' code (app.js): this module reads the page's state from the page itself (which screen
// shows, body[data-screen]) and the deployment's from /tablet/config.json.

import { screenFit } from "./sizing.js";

const STORE = "oncofollow.tablet."; // app.js's prefix: forgotten with everything else when a loan ends
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
}

function setUpTextSize() {
  applyTextSize(textSize());
  const change = (step) => {
    const size = Math.min(TEXT_SIZES - 1, Math.max(0, textSize() + step));
    save("textSize", size || null);
    applyTextSize(size);
  };
  $("#text-smaller").addEventListener("click", () => change(-1));
  $("#text-larger").addEventListener("click", () => change(+1));
  window.addEventListener("resize", fitScreen); // turned to landscape, or the browser's bars shown or hidden
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
    config = await (await fetch("config.json", { cache: "no-store" })).json();
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
setUpNotNow();
setUpTeamPhone();
setUpBattery();
