// Small DOM helpers. Every piece of data goes in through text nodes or attributes, never innerHTML.

// `h` and `append` are every page's (the tablet's and the fleet page's too).
import { append, h } from "../web/page.js";
import { UNEXPECTED } from "../web/staff.js";

export { append, h };

/** The page's element of that id (the dashboard's modules each look theirs up when they need it). */
export const $ = (id) => document.getElementById(id);

const SVG_NS = "http://www.w3.org/2000/svg";

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** The shape that goes with a level, so that the level is never told by colour alone. */
export function levelIcon(level) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "14");
  svg.setAttribute("height", "14");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "level-icon");
  let shape;
  if (level === "red") {
    // A warning triangle with an exclamation mark cut out.
    shape = document.createElementNS(SVG_NS, "path");
    shape.setAttribute("d", "M8 1 15.5 14.5H.5Z M7 5.5v4.5h2V5.5Z M7 11.2v1.8h2v-1.8Z");
    shape.setAttribute("fill-rule", "evenodd");
  } else if (level === "orange") {
    // A diamond.
    shape = document.createElementNS(SVG_NS, "path");
    shape.setAttribute("d", "M8 1.5 14.5 8 8 14.5 1.5 8Z");
  } else {
    shape = document.createElementNS(SVG_NS, "circle");
    shape.setAttribute("cx", "8");
    shape.setAttribute("cy", "8");
    shape.setAttribute("r", "3");
  }
  shape.setAttribute("fill", "currentColor");
  svg.append(shape);
  return svg;
}

/** A small clock, for "EN RETARD". */
export function clockIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("width", "13");
  svg.setAttribute("height", "13");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "clock-icon");
  const face = document.createElementNS(SVG_NS, "circle");
  face.setAttribute("cx", "8");
  face.setAttribute("cy", "8");
  face.setAttribute("r", "6.5");
  face.setAttribute("fill", "none");
  face.setAttribute("stroke", "currentColor");
  face.setAttribute("stroke-width", "1.8");
  const hands = document.createElementNS(SVG_NS, "path");
  hands.setAttribute("d", "M8 4v4.5l3 2");
  hands.setAttribute("fill", "none");
  hands.setAttribute("stroke", "currentColor");
  hands.setAttribute("stroke-width", "1.8");
  hands.setAttribute("stroke-linecap", "round");
  svg.append(face, hands);
  return svg;
}

// --- Toasts: non-blocking messages (errors show the server's problem `detail`) -------------------
// The #toasts container is itself a polite live region, so each message is read once.

const TOAST_MS = { info: 5000, success: 4000, error: 9000 };

export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  if (!region) return;
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Fermer le message" }, "×");
  const item = h("div", { class: `toast toast-${kind}` }, h("span", { class: "toast-text" }, message), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  region.append(item);
  // Keep at most four on screen.
  while (region.children.length > 4) region.firstElementChild.remove();
  setTimeout(remove, TOAST_MS[kind] ?? TOAST_MS.info);
}

/**
 * The sentence for a failure: a request's (ApiError: its French `detail`), or the page's own (an exception, whose
 * English text is for the support desk: the console has it, the screen says what the nurse can do).
 */
export function errorText(error) {
  if (error && typeof error.status === "number" && typeof error.detail === "string" && error.detail) return error.detail;
  console.error("dashboard:", error);
  return UNEXPECTED;
}

export function toastError(error) {
  if (error && error.cancelled) return; // a request of a session that has ended: not the next nurse's news
  toast(errorText(error), "error");
}

// --- Live region --------------------------------------------------------------------------------

let announceTimer = null;

/** Screen readers read the polite live region; it also shows as the "dernière activité" line. */
export function announce(text) {
  const region = document.getElementById("live-announcer");
  if (!region) return;
  // Clearing first makes a repeated identical text be announced again.
  region.textContent = "";
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 60);
}

/** Forgets what was announced and what was about to be: the next person at this screen starts clean. */
export function clearAnnouncements() {
  clearTimeout(announceTimer);
  const region = document.getElementById("live-announcer");
  if (region) region.textContent = "";
}
