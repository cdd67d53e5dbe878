// The photos a patient sent with a message, shown to the nurse as thumbnails that open larger on a click.
//
// The photo lives in the questionnaire service and is read with the nurse's bearer token (each read audited there).
// An <img src> cannot send a token, and a token never goes in a URL: each photo is fetched, kept as a blob, and shown
// through an object URL (the page's Content-Security-Policy allows blob: images), released when the view goes. It is
// fetched by the staff pages' one client (api.js), as every other request: the token as it is now, a 401 ends the
// session (the sign-in screen says so), and any other failure is a French sentence in place of the photo.

import { request } from "./api.js";
import { h } from "./dom.js";
import { formatDateTime } from "./format.js";

// A photo is 300–700 kB: a little longer than a list's 15 s on a slow ward network.
const PHOTO_TIMEOUT_MS = 20_000;
// The questionnaire service re-encodes every photo as a JPEG: anything else is not the photo.
const PHOTO_TYPES = ["image/jpeg"];
// The photos on the page now, by id: a view drawn again (a live update) shows them again without asking the server
// (nor writing another audit row) for each one.
const shown = new Map();

/** The thumbnails of a message's photos (empty until `loadPhotos` fetches them). */
export function photoThumbnails(message) {
  const ids = Array.isArray(message.photo_ids) ? message.photo_ids : [];
  if (!ids.length) return null;
  const who = message.answered_by === "relative" ? "un proche" : "le patient";
  const alt = `Photo envoyée par ${who} le ${formatDateTime(message.sent_at)}`;
  return h(
    "div",
    { class: "message-photos" },
    ids.map((id, i) =>
      h(
        "button",
        {
          type: "button",
          class: "photo-thumb",
          dataset: { action: "open-photo", photoId: id },
          "aria-label": `${alt}${ids.length > 1 ? ` (${i + 1} sur ${ids.length})` : ""} : agrandir`,
          disabled: true,
        },
        h("img", { alt, dataset: { photoId: id } }),
        h("span", { class: "photo-status" }, "Chargement de la photo…"),
      ),
    ),
  );
}

/** Lets go of every photo shown (another patient opened, the end of a session). */
export function releasePhotos() {
  for (const url of shown.values()) URL.revokeObjectURL(url);
  shown.clear();
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
      let url = shown.get(id) || null;
      let failure = null;
      if (!url) {
        try {
          url = URL.createObjectURL(await fetchPhoto(baseUrl, id));
          shown.set(id, url);
        } catch (error) {
          // The session ended meanwhile: the view is going with it, nothing to say.
          if (error && error.cancelled) return;
          failure = photoFailureText(error);
        }
      }
      for (const img of imgs) {
        const button = img.closest("button");
        const status = button && button.querySelector(".photo-status");
        if (url) {
          img.src = url;
          if (status) status.remove();
          if (button) button.disabled = false;
        } else {
          if (status) {
            status.textContent = failure;
            status.classList.add("photo-failed");
          }
          // The button's label is what a screen reader says of it: the failure too, not "agrandir".
          if (button) button.setAttribute("aria-label", `${img.alt} : ${failure}`);
        }
      }
    }),
  );
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
