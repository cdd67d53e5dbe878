// The return receipt handed to the patient (GET /v1/loans/{id}/receipt), in French: the tablet came back, what came
// with it, and that their data on it was erased — when, how, with what proof, by whom. It names the patient by the
// pseudonymous id only (identity lives in the inclusion service): the name is written by hand on the printed sheet.

import { h } from "/web/staff.js";

// On paper, the day as people write it ("24/11/2026"), at the day hospital's clock whatever the computer's.
const DAY = new Intl.DateTimeFormat("fr-FR", { timeZone: "Europe/Paris", dateStyle: "short" });

/** "24/11/2026" for an instant, or for a calendar date (YYYY-MM-DD: the day as written). */
export function receiptDay(value) {
  const moment = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T12:00:00Z`) : new Date(value);
  return Number.isNaN(moment.getTime()) ? "—" : DAY.format(moment);
}

const ACCESSORIES = { charger: "chargeur", cable: "câble", case: "housse", sim: "carte SIM", manual: "notice" };
const RETURNED_HOW = {
  day_hospital: "à l'hôpital de jour",
  post: "par la poste",
  collected: "récupérée au domicile du patient",
};
const WIPED_HOW = {
  factory_reset: "par réinitialisation d'usine",
  mdm_remote_wipe: "par effacement à distance (MDM)",
  reimaged: "par réinstallation complète du système",
};

/** The tablet's condition as it came back, as said on the receipt and on the fleet page. */
export const CONDITIONS = { good: "bon état", worn: "usée", damaged: "endommagée" };

/** "État au retour : endommagée (écran fissuré)." when the return recorded the condition; null when it did not. */
export function conditionSentence(loan) {
  if (!loan.return_condition) return null;
  const word = CONDITIONS[loan.return_condition] || loan.return_condition;
  const note = (loan.return_condition_note || "").replace(/[\s.]+$/, "");
  return `État au retour : ${word}${note ? ` (${note})` : ""}.`;
}

export const PENDING_WIPE =
  "L'effacement des données est prévu ; une nouvelle attestation peut être imprimée une fois fait.";

function accessories(kinds) {
  const words = kinds.map((kind) => ACCESSORIES[kind] || kind).join(", ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The proof as a patient reads it: a bare number is the sheet's (or the MDM job's) number; anything else as typed. */
function proofWords(wipe) {
  if (!/^\d[\d ./-]*$/.test(wipe.proof)) return wipe.proof;
  return wipe.method === "mdm_remote_wipe" ? `tâche MDM n° ${wipe.proof}` : `fiche n° ${wipe.proof}`;
}

/** "Les données de la tablette ont été effacées le … par …, par Sophie Leroy.", or that it is still to be done. */
export function wipeSentence(receipt) {
  const wipe = receipt.wipe;
  if (!wipe) return PENDING_WIPE;
  return (
    `Les données de la tablette ont été effacées le ${receiptDay(wipe.wiped_at)} ${WIPED_HOW[wipe.method] || wipe.method} ` +
    `(preuve : ${proofWords(wipe)}), par ${wipe.wiped_by_name || wipe.wiped_by}.`
  );
}

/** Until it is wiped, the receipt attests the return only: its title must not promise an erasure not yet done. */
export function receiptTitle(receipt) {
  return receipt.wipe
    ? "Attestation de restitution et d'effacement des données"
    : "Attestation de restitution de la tablette";
}

function accessoryLines(receipt) {
  const lent = receipt.accessories_handed_over;
  if (!lent.length) return [h("p", null, "Aucun accessoire n'avait été remis avec la tablette.")];
  const lines = [h("p", null, `Remis avec la tablette : ${accessories(lent)}.`)];
  if (!receipt.accessories_missing.length) {
    lines.push(h("p", null, "Tous les accessoires remis ont été rendus."));
    return lines;
  }
  if (receipt.accessories_back.length) lines.push(h("p", null, `Rendus : ${accessories(receipt.accessories_back)}.`));
  lines.push(h("p", { class: "missing" }, `Non rendus à ce jour : ${accessories(receipt.accessories_missing)}.`));
  return lines;
}

function section(title, ...content) {
  return h("section", null, h("h2", null, title), content);
}

/** The sheet's content (its elements, for the receipt's <article>). */
export function receiptSheet(receipt) {
  return [
    h("p", { class: "programme" }, "RE'CONNECT — prêt de tablettes aux patients suivis sous chimiothérapie"),
    h("h1", { id: "receipt-title" }, receiptTitle(receipt)),
    section(
      "Le patient",
      h("p", null, "Identifiant dans le programme : ", h("code", null, receipt.patient_id)),
      h("p", { class: "blank-line" }, "Nom et prénom : ", h("span", { class: "blank" })),
    ),
    section(
      "La tablette",
      h("p", null, `Modèle : ${receipt.tablet.model}`),
      h("p", null, `Numéro de série : ${receipt.tablet.serial_number}`),
    ),
    section(
      "Le prêt",
      h("p", null, `Prêtée le ${receiptDay(receipt.loaned_at)}, retour prévu le ${receiptDay(receipt.expected_return_on)}.`),
      h(
        "p",
        { id: "receipt-returned" },
        `Rendue le ${receiptDay(receipt.returned_at)}, ${RETURNED_HOW[receipt.return_channel] || receipt.return_channel}.`,
      ),
      conditionSentence(receipt) ? h("p", { id: "receipt-condition" }, conditionSentence(receipt)) : null,
    ),
    section("Les accessoires", accessoryLines(receipt)),
    section("L'effacement des données", h("p", { id: "receipt-wipe" }, wipeSentence(receipt))),
    h(
      "div",
      { class: "signatures" },
      h("div", null, h("p", null, "Le patient ou son représentant"), h("span", { class: "signature" })),
      h("div", null, h("p", null, "Pour l'équipe RE'CONNECT (nom et signature)"), h("span", { class: "signature" })),
    ),
    h("p", { class: "issued" }, `Attestation établie le ${receiptDay(receipt.issued_at)}.`),
  ];
}
