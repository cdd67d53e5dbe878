// The photos a patient sent with a message, shown to the nurse as thumbnails that open larger on a click.
//
// The photo lives in the questionnaire service and is read with the nurse's bearer token (each read audited there).
// An <img src> cannot send a token, and a token never goes in a URL: each photo is fetched, kept as a blob, and shown
// through an object URL (the page's Content-Security-Policy allows blob: images), released when the view goes. It is
// fetched by the staff pages' one client (api.js), as every other request: the token as it is now, a 401 ends the
// session (the sign-in screen says so), and any other failure is a French sentence in place of the photo, which is
// not asked for again on each redraw of the view (a purged one while the view lasts, another for 30 s), and which the
// nurse may try again at once ("Réessayer") unless it was purged.

import { request } from "./api.js";
import { h } from "./dom.js";
import { formatDateTime } from "./format.js";

// A photo is 300–700 kB: a little longer than a list's 15 s on a slow ward network.
const PHOTO_TIMEOUT_MS = 20_000;
// The questionnaire service re-encodes every photo as a JPEG: anything else is not the photo.
const PHOTO_TYPES = ["image/jpeg"];
// A photo that could not be fetched for another reason than its purge (the network, a refusal, a busy server) is not
// asked for again before this long, however often the view is drawn; after that, a redraw tries again, so that a
// passing fault heals. "Réessayer" on the photo tries at once.
const FAILURE_KEPT_MS = 30_000;
// The photos on the page now, by id: a view drawn again (a live update) shows them again without asking the server
// (nor writing another audit row) for each one.
const shown = new Map();
// The photos that could not be fetched, by id: why, whether purged, and until when that stands. A purged one (404,
// or 410) stands for the view's life: it will not come back.
const failed = new Map();
// The photos on their way, by id: a view drawn again meanwhile waits for the same answer rather than ask again.
const pending = new Map();
// Counts the views let go of: an answer that comes after its view went is not kept for the next one.
let generation = 0;

/** The thumbnails of a message's photos (empty until `loadPhotos` fetches them). */
export function photoThumbnails(message) {
  const ids = Array.isArray(message.photo_ids) ? message.photo_ids : [];
  if (!ids.length) return null;
  const who = message.answered_by === "relative" ? "un proche" : "le patient";
  const alt = `Photo envoyée par ${who} le ${formatDateTime(message.sent_at)}`;
  return h(
    "div",
    { class: "message-photos" },
    ids.map((id, i) => {
      // What a screen reader says of the thumbnail, before what it does ("agrandir") or why it cannot.
      const label = `${alt}${ids.length > 1 ? ` (${i + 1} sur ${ids.length})` : ""}`;
      return h(
        "button",
        {
          type: "button",
          class: "photo-thumb",
          dataset: { action: "open-photo", photoId: id, label },
          "aria-label": `${label} : agrandir`,
          disabled: true,
        },
        h("img", { alt, dataset: { photoId: id } }),
        h("span", { class: "photo-status" }, "Chargement de la photo…"),
      );
    }),
  );
}

/** Lets go of every photo shown (another patient opened, the end of a session), and of what failed. */
export function releasePhotos() {
  for (const url of shown.values()) URL.revokeObjectURL(url);
  shown.clear();
  failed.clear();
  pending.clear();
  generation += 1;
}

/** Fetches each photo `container` shows a thumbnail for, from the questionnaire service at `baseUrl`. */
export async function loadPhotos(container, baseUrl) {
  const byId = new Map();
  for (const img of container.querySelectorAll("img[data-photo-id]")) {
    byId.set(img.dataset.photoId, [...(byId.get(img.dataset.photoId) || []), img]);
  }
  for (const [id, url] of [...shown]) {
    if (!byId.has(id)) {
      URL.revokeObjectURL(url);
      shown.delete(id);
    }
  }
  await Promise.all(
    [...byId].map(async ([id, imgs]) => {
      const outcome = await photoOutcome(id, baseUrl);
      // The session ended, or the view went, meanwhile: nothing to say.
      if (!outcome) return;
      for (const img of imgs) showOutcome(img, outcome);
    }),
  );
}

/**
 * Tries a photo that could not be fetched again at once (the nurse's "Réessayer"), wherever `container` shows it.
 */
export function retryPhoto(container, baseUrl, id) {
  const outcome = failed.get(id);
  if (!outcome || outcome.purged) return Promise.resolve();
  failed.delete(id);
  for (const img of container.querySelectorAll("img[data-photo-id]")) {
    if (img.dataset.photoId === id) showOutcome(img, null);
  }
  return loadPhotos(container, baseUrl);
}

/** The photo `id` as the view shows it: `{url}`, `{failure, purged}`, or null when its view went meanwhile. */
function photoOutcome(id, baseUrl) {
  const url = shown.get(id);
  if (url) return Promise.resolve({ url });
  const known = failed.get(id);
  if (known && (known.purged || Date.now() < known.until)) return Promise.resolve(known);
  failed.delete(id);
  if (!pending.has(id)) pending.set(id, fetchOutcome(id, baseUrl));
  return pending.get(id);
}

async function fetchOutcome(id, baseUrl) {
  const at = generation;
  try {
    const blob = await fetchPhoto(baseUrl, id);
    if (at !== generation) return null;
    const url = URL.createObjectURL(blob);
    shown.set(id, url);
    return { url };
  } catch (error) {
    // The session ended meanwhile: the view is going with it.
    if (at !== generation || (error && error.cancelled)) return null;
    const status = error && error.status;
    const outcome = {
      failure: photoFailureText(error),
      purged: status === 404 || status === 410,
      until: Date.now() + FAILURE_KEPT_MS,
    };
    failed.set(id, outcome);
    return outcome;
  } finally {
    if (at === generation) pending.delete(id);
  }
}

/** A thumbnail as `outcome` has it: the photo, why it is not shown (and "Réessayer" unless purged), or loading. */
function showOutcome(img, outcome) {
  const button = img.closest("button");
  if (!button) return;
  const label = button.dataset.label || img.alt;
  button.querySelector(".photo-retry")?.remove();
  button.classList.toggle("photo-unavailable", Boolean(outcome && !outcome.url));
  let status = button.querySelector(".photo-status");
  if (outcome && outcome.url) {
    img.src = outcome.url;
    if (status) status.remove();
    button.dataset.action = "open-photo";
    button.setAttribute("aria-label", `${label} : agrandir`);
    button.disabled = false;
    return;
  }
  if (!status) {
    status = h("span", { class: "photo-status" });
    button.append(status);
  }
  if (!outcome) {
    status.textContent = "Chargement de la photo…";
    status.classList.remove("photo-failed");
    button.disabled = true;
    return;
  }
  status.textContent = outcome.failure;
  status.classList.add("photo-failed");
  if (outcome.purged) {
    button.disabled = true;
    // The button's label is what a screen reader says of it: the failure too, not "agrandir".
    button.setAttribute("aria-label", `${label} : ${outcome.failure}`);
    return;
  }
  // Perhaps a passing fault: the thumbnail becomes the way to try again.
  button.append(h("span", { class: "photo-retry" }, "Réessayer"));
  button.dataset.action = "retry-photo";
  button.setAttribute("aria-label", `${label} : ${outcome.failure} Réessayer`);
  button.disabled = false;
}

/**
 * What shows in place of a photo that could not be fetched: a purged one says so (404, or 410 from a server that
 * tells it apart); anything else is the client's sentence (the network, a refusal, a proxy's page, a session ended).
 */
export function photoFailureText(error) {
  const status = error && error.status;
  if (status === 404 || status === 410) return "Photo supprimée : elle n'est plus disponible.";
  const detail = error && typeof error.detail === "string" && error.detail ? ` ${error.detail}` : "";
  return `Photo non affichée.${detail}`;
}

function fetchPhoto(baseUrl, id) {
  const base = String(baseUrl || "").replace(/\/+$/, "");
  return request("GET", `${base}/v1/photos/${encodeURIComponent(id)}`, {
    binary: PHOTO_TYPES,
    timeout: PHOTO_TIMEOUT_MS,
  });
}

/** Opens the photo of a thumbnail larger, in the photo dialog. */
export function openPhoto(button) {
  const img = button.querySelector("img");
  const dialog = document.getElementById("photo-dialog");
  if (!img || !img.src || !dialog) return;
  const large = document.getElementById("photo-large");
  large.src = img.src;
  large.alt = img.alt;
  document.getElementById("photo-caption").textContent = img.alt;
  dialog.showModal();
}
