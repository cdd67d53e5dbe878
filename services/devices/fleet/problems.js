// What the fleet manager reads when the devices service refuses something: a French sentence she can act on, chosen
// by the problem's `type` (RFC 9457), never the API's English `detail` (which goes to the message's title and the
// console, for whoever supports her). Every type the devices service can answer has its sentence here: a unit test
// (tests/unit/devices/test_fleet_page_french.py) collects them from the code and fails on one without.

import { SESSION_WORDS, UNEXPECTED } from "/web/staff.js";

const PAGE_FAULT =
  "La page a envoyé une demande que le serveur ne sait pas lire : rechargez-la et recommencez. Si cela continue, " +
  "prévenez le support informatique.";
const SIGNED_OUT = SESSION_WORDS.invalid;
const NOT_ALLOWED = "Votre compte n'a pas le rôle nécessaire à cette action (gestionnaire du parc de tablettes).";
const GONE_TABLET = "Cette tablette n'existe pas (ou plus) : actualisez la liste.";

/** Sentences for a form's field, when the service refuses a value it checks by its shape (422, with a pointer). */
const FIELDS = {
  "/proof": "Indiquez la preuve de l'effacement (n° de tâche MDM ou de fiche signée).",
  "/patient_id":
    "L'identifiant du patient doit être son identifiant pseudonyme complet (un UUID, tel qu'il figure au dossier).",
  "/agreement/witnessed_by": "Indiquez l'identifiant du soignant qui a recueilli la signature.",
  "/agreement/signed_at": "Indiquez la date et l'heure de signature de la convention.",
  "/serial_number": "Indiquez le numéro de série de la tablette, tel qu'il est inscrit au dos (lettres et chiffres).",
  "/model": "Indiquez le modèle de la tablette (80 caractères au plus).",
  "/expected_return_on": "La date de retour prévue n'est pas une date valide : choisissez-la dans le calendrier.",
  "/reason": "Les circonstances tiennent en 500 caractères au plus : raccourcissez-les.",
  "/checked": PAGE_FAULT,
  "/condition": "Choisissez l'état de la tablette au retour dans la liste : bon état, usée ou endommagée.",
  "/condition_note":
    "Les précisions sur l'état tiennent sur une ligne de 200 caractères au plus : raccourcissez-les, ou laissez le " +
    "champ vide.",
};

/** Where the service found the value it refused (RFC 9457 extension), validation problems included. */
function pointerOf(problem) {
  return typeof problem.pointer === "string" ? problem.pointer : "";
}

/** By type (the last segment of the problem's `type` URI): a sentence, or a function of the problem. */
export const PROBLEMS = {
  // The fleet's own refusals.
  "accessory-not-lent": "Un accessoire coché n'avait pas été remis avec ce prêt : ne cochez que ce qui a été prêté.",
  "agreement-too-old":
    "La convention a été signée il y a plus de 30 jours : vérifiez la date, ou faites signer une nouvelle convention.",
  "checked-without-make-ready":
    "La vérification d'une tablette revenue endommagée se confirme en la remettant en service : fermez ce " +
    "formulaire et utilisez « Remettre en service ».",
  "condition-note-without-condition":
    "Choisissez l'état de la tablette au retour (bon état, usée ou endommagée) pour accompagner les précisions " +
    "saisies.",
  "damage-not-checked":
    "Cette tablette est revenue endommagée de son dernier prêt et personne n'a encore indiqué l'avoir vérifiée : " +
    "cochez « Je confirme qu'elle a été vérifiée… » après l'avoir vérifiée (et fait réparer si besoin), ou " +
    "envoyez-la en réparation.",
  "duplicate-accessory": "Un accessoire figure deux fois : cochez chacun une seule fois.",
  "duplicate-serial":
    "Une tablette portant ce numéro de série est déjà enregistrée : vérifiez le numéro, ou retrouvez-la avec le " +
    "filtre « Numéro de série ».",
  "expected-return-out-of-range":
    "La date de retour prévue doit être après aujourd'hui et au plus dans un an (la durée la plus longue d'un " +
    "prêt) : corrigez-la.",
  "illegal-transition": (problem, stateLabel) =>
    problem.action === "loan" && problem.state === "loaned"
      ? "Cette tablette est déjà prêtée : enregistrez d'abord son retour, ou choisissez une autre tablette."
      : `Cette étape n'est pas possible pour une tablette ${
          problem.state ? `« ${stateLabel(problem.state)} »` : "dans cet état"
        } : actualisez la liste, elle a peut-être changé entre-temps.`,
  "in-the-future": "Une date saisie est dans le futur : vérifiez-la (et l'heure de cet ordinateur).",
  "loan-not-returned": (problem) =>
    problem.ended_as === "lost" || problem.ended_as === "stolen"
      ? `Cette tablette a été déclarée ${problem.ended_as === "lost" ? "perdue" : "volée"}, pas rendue : il n'y a pas de restitution à attester.`
      : "Cette tablette n'a pas été rendue : l'attestation de restitution s'imprime une fois son retour enregistré.",
  "loan-still-open":
    "Ce prêt est encore en cours : cochez les accessoires rapportés dans le formulaire de retour de la tablette.",
  "not-a-fleet-tablet": "Ce jeton de tablette ne correspond à aucune tablette du parc.",
  "return-before-loan": "La date de retour est antérieure au prêt : vérifiez-la.",
  "too-far-in-the-past": "Une date reçue a plus d'un an : vérifiez-la (et l'heure de l'appareil qui l'a envoyée).",
  "treatment-ends-before-loan": "La fin de traitement indiquée est antérieure au prêt : vérifiez les deux dates.",
  "unknown-accessory":
    "Un accessoire coché n'a pas été enregistré avec cette tablette : ne cochez que ceux qui lui sont fournis.",
  "unknown-loan": "Ce prêt n'existe pas (ou plus) : actualisez la liste.",
  // The tablet's exchange of its enrolment code: the fleet page never makes one, but shows the same words.
  "code-expired": "Ce code a expiré : créez-en un autre avec « Nouveau code ».",
  "code-used": "Ce code a déjà servi : créez-en un autre avec « Nouveau code ».",
  "enrolment-codes-off":
    "Les codes d'enrôlement ne sont pas activés sur ce service : enrôlez la tablette avec le lien de son prêt.",
  "loan-ended": "Ce prêt est terminé (tablette rendue, perdue ou volée) : prêtez de nouveau la tablette pour l'enrôler.",
  "unknown-code": "Ce code n'est pas reconnu : créez-en un autre avec « Nouveau code ».",
  "unknown-tablet": GONE_TABLET,
  "use-dedicated-endpoint": "Cette étape a son propre formulaire : fermez celui-ci et utilisez le bouton de la tablette.",
  "wipe-before-return":
    "L'effacement ne peut pas être daté d'avant le retour de la tablette : un effacement plus ancien n'efface pas ce " +
    "qu'elle a reçu depuis. Vérifiez la date, ou effacez-la de nouveau.",

  // Every service's: the database, the identity provider, the request itself.
  "database-busy":
    "Le service était trop occupé pour enregistrer cette demande, et rien n'a été enregistré. Renvoyez-la dans " +
    "quelques secondes.",
  "database-unavailable":
    "Le service ne joint pas sa base de données pour le moment, et rien n'a été enregistré. Réessayez dans quelques " +
    "secondes.",
  retry: "Une demande identique n'a pas abouti : renvoyez ce formulaire, il ne sera enregistré qu'une fois.",
  "service-unavailable":
    "Le service est momentanément surchargé, et rien n'a été enregistré. Réessayez dans quelques secondes.",
  "identity-provider-unavailable": SESSION_WORDS.providerUnreachable,
  "idempotency-key-reused": "Ce formulaire a déjà servi à une autre demande : fermez-le et rouvrez-le pour recommencer.",
  "invalid-idempotency-key": PAGE_FAULT,
  "missing-idempotency-key": PAGE_FAULT,
  "malformed-http": PAGE_FAULT,
  "malformed-json": PAGE_FAULT,
  "repeated-header": PAGE_FAULT,
  "repeated-parameter": PAGE_FAULT,
  "too-deeply-nested": PAGE_FAULT,
  "unsupported-content-encoding": PAGE_FAULT,
  "unsupported-media-type": PAGE_FAULT,
  "method-not-allowed": PAGE_FAULT,
  "bad-request": PAGE_FAULT,
  "precondition-failed": "Cet élément a changé entre-temps : actualisez la liste et recommencez.",
  "request-body-too-large": "Le formulaire envoyé est trop long : raccourcissez le texte saisi.",
  "nul-character": "Un champ contient un caractère invisible non accepté : retapez-le plutôt que de le coller.",
  "unstorable-value":
    "Une valeur saisie ne peut pas être enregistrée (date ou nombre hors limites, caractère non reconnu) : " +
    "corrigez-la.",
  "unprocessable-content": (problem) =>
    FIELDS[pointerOf(problem)] || "Une valeur du formulaire n'est pas acceptée : vérifiez les champs et réessayez.",
  "authentication-required": SIGNED_OUT,
  "missing-token": SIGNED_OUT,
  "invalid-token": SIGNED_OUT,
  "id-token": SESSION_WORDS.idToken,
  "wrong-token": "Ce jeton n'est pas celui d'un membre du personnel : collez le jeton de votre compte.",
  forbidden: NOT_ALLOWED,
  "missing-role": NOT_ALLOWED,
  "not-found": "Cet élément n'existe pas (ou plus) : actualisez la liste.",
  gone: "Cet élément n'est plus valable : actualisez la liste et recommencez.",
  conflict: "Cette action entre en conflit avec l'état actuel : actualisez la liste et réessayez.",
  "internal-error":
    "Le serveur a rencontré une erreur (500), et rien n'a été enregistré. Réessayez, ou prévenez le support " +
    "informatique si cela continue.",
};

/** When the answer names no type this page knows (a proxy's page, a newer service): still French, with the status. */
function byStatus(status) {
  if (status === 401) return SIGNED_OUT;
  if (status === 403) return NOT_ALLOWED;
  if (status === 404) return `Cet élément n'existe pas (ou plus) (erreur 404) : actualisez la liste.`;
  if (status === 429) return "Trop de demandes en peu de temps (erreur 429) : patientez un instant, puis réessayez.";
  if (status === 503 || status === 502 || status === 504) {
    return `Le service est momentanément indisponible (erreur ${status}) : réessayez dans quelques secondes.`;
  }
  if (status >= 500) {
    return `Le serveur a rencontré une erreur (${status}) : réessayez, ou prévenez le support informatique si cela continue.`;
  }
  return `La demande a été refusée (erreur ${status}) : vérifiez le formulaire, ou prévenez le support informatique si cela continue.`;
}

/**
 * The French sentence for a failed request (an ApiError of /web/staff.js: `status`, the problem as `body`; status 0
 * is the network, whose sentence is already French). `stateLabel` names a tablet's state in French.
 */
export function frenchProblem(error, stateLabel = (state) => state) {
  if (!error || typeof error.status !== "number") return UNEXPECTED;
  if (error.status === 0) return error.detail;
  const problem = error.body && typeof error.body === "object" ? error.body : {};
  const type = typeof problem.type === "string" ? problem.type.slice(problem.type.lastIndexOf("/") + 1) : "";
  const sentence = Object.hasOwn(PROBLEMS, type) ? PROBLEMS[type] : null;
  if (typeof sentence === "function") return sentence(problem, stateLabel);
  return sentence || byStatus(error.status);
}
