// The fleet manager's page: sign in with the hospital's account (shared/web/oidc.js, as the nurse dashboard does) or
// a pasted staff token (role "fleet"), the fleet at a glance, the tablets, and each step of a tablet's life through
// the fleet API. Every command carries an Idempotency-Key made when its
// form is opened: a double click, or a retry after the network failed, records it once.

import {
  client,
  formatDateTime,
  formatDay,
  formatNumber,
  formatTime,
  h,
  isIdTokenRefusal,
  newKey,
  parisDay,
  SESSION_WORDS,
  sessionEndsAt,
  sessionRefusal,
  shortId,
  tokenStore,
} from "/web/staff.js";
import { pageSignIn, signInOnEnter, SignInError } from "/web/oidc.js";
import { frenchProblem } from "./problems.js";
import { CONDITIONS, conditionSentence, receiptSheet } from "./receipt.js";

const STATES = {
  pending_provisioning: "À préparer",
  ready: "Prête",
  loaned: "Prêtée",
  returned: "Rendue",
  wipe_pending: "À effacer",
  wiped: "Effacée",
  lost: "Perdue",
  stolen: "Volée",
  in_repair: "En réparation",
  retired: "Réformée",
};
// The counts "En un coup d'œil" shows: French agrees in number from 2 on ("1 Prête", "3 Prêtes", "0 Prêt en cours").
const STATE_COUNTS = {
  pending_provisioning: ["À préparer", "À préparer"],
  ready: ["Prête", "Prêtes"],
  loaned: ["Prêtée", "Prêtées"],
  returned: ["Rendue", "Rendues"],
  wipe_pending: ["À effacer", "À effacer"],
  wiped: ["Effacée", "Effacées"],
  lost: ["Perdue", "Perdues"],
  stolen: ["Volée", "Volées"],
  in_repair: ["En réparation", "En réparation"],
  retired: ["Réformée", "Réformées"],
};
const counted = (count, [one, many]) => (count >= 2 ? many : one);
const ACTIONS = {
  provision: "Marquer préparée",
  loan: "Prêter",
  return: "Enregistrer le retour",
  request_wipe: "Demander l'effacement",
  record_wipe: "Enregistrer l'effacement",
  make_ready: "Remettre en service",
  report_lost: "Déclarer perdue ou volée",
  recover: "Retrouvée",
  send_to_repair: "Envoyer en réparation",
  back_from_repair: "Revenue de réparation",
  retire: "Réformer",
};
const ACCESSORIES = { charger: "Chargeur", cable: "Câble", case: "Housse", sim: "Carte SIM", manual: "Notice" };
const CHANNELS = { day_hospital: "À l'hôpital de jour", post: "Par la poste", collected: "Récupérée chez le patient" };
const WIPES = {
  factory_reset: "Réinitialisation d'usine",
  mdm_remote_wipe: "Effacement à distance (MDM)",
  reimaged: "Réinstallation complète",
};
/** The French sentence for a refusal; the API's own (English) detail only for whoever supports the fleet manager. */
function explain(error) {
  if (error && error.status) console.info("devices service:", error.status, error.detail);
  else if (!error || typeof error.status !== "number") console.error("fleet page:", error); // the page's own fault
  return frenchProblem(error, (state) => STATES[state] || state);
}

/** The sentence in `element`, the API's detail as its title (on hover, for the support desk). */
function tell(element, text, error) {
  element.textContent = text;
  if (error && error.status && typeof error.detail === "string") element.title = error.detail;
  else element.removeAttribute("title");
}

const SILENCES = {
  long_silence: "silencieuse depuis longtemps",
  questionnaire_due: "silencieuse avant la prochaine cure",
};

const $ = (id) => document.getElementById(id);
const ROLE = "fleet";
const store = tokenStore("oncofollow.fleet.staffToken");
// The client's defaults are this page's: the API's own detail (explain() makes it French), a 403 signs out too.
const api = client(store, { onUnauthorized: (error) => signOut(refusal(error)) });
const { request } = api;

/** Whether a request failed because the session is over (refused, so signOut has run; or cut short by it). */
function sessionOver(error) {
  return Boolean(error && (error.cancelled || error.status === 401 || error.status === 403));
}

// Its own keys: the dashboard, served from another service, may share this page's origin behind a proxy.
const signIn = pageSignIn({
  configUrl: "/fleet/config.json",
  storagePrefix: "oncofollow.fleet",
  role: ROLE,
  report: (message) => showSignIn(message),
});

// How the token being tried came: "provider" (just given by the hospital's sign-in), "pasted", or null (kept in
// the tab from before, or the session under way): the sign-in screen's sentence depends on it, as on the dashboard.
let arrival = null;

/** The sign-in screen's sentence for a token refused (401 or 403), in every staff page's words. */
function refusal(error) {
  return sessionRefusal(error.status, {
    role: "« fleet »",
    provider: arrival === "provider" || signIn.signedInWithProvider(),
    fresh: arrival === "provider",
    pasted: arrival === "pasted",
    idToken: isIdTokenRefusal(error),
  });
}

// --- Sign-in ---------------------------------------------------------------------------------------------------------

function showSignIn(message = "") {
  $("app").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message;
  $("token").value = "";
  signIn.showButton({ section: $("provider-login"), button: $("provider-sign-in"), unavailable: $("provider-unavailable") });
  ($("provider-sign-in").disabled || $("provider-login").hidden ? $("token") : $("provider-sign-in")).focus();
}

/** The session ends here (refused, expired, or left): nothing of it stays in the tab. */
function signOut(message = "") {
  store.clear();
  signIn.forget();
  api.endSession(); // an answer still on its way is nobody's now
  hideSessionWarning();
  forgetFleet();
  showSignIn(message);
}

/** What the page showed of the fleet (loans, patients' pseudonyms, an enrolment QR code) leaves it with the session. */
function forgetFleet() {
  closeReceipt();
  $("panel").hidden = true;
  $("panel-body").replaceChildren();
  $("panel-title").textContent = "";
  $("counts").replaceChildren();
  $("attention").replaceChildren();
  $("tablets").tBodies[0].replaceChildren();
  say("");
}

/** The fleet manager chose to leave: her session at the provider ends too, when it has an end-session endpoint. */
function signOutByChoice() {
  const endSession = signIn.endSession();
  signOut(SESSION_WORDS.signedOut);
  if (endSession) location.assign(endSession);
}

async function enter(how = null) {
  arrival = how;
  try {
    const me = await request("GET", "/v1/me");
    if (!signIn.hasRole(me)) return signOut(refusal({ status: 403 }));
    arrival = null;
    $("sign-in").hidden = true;
    $("app").hidden = false;
    $("who").hidden = false;
    // As her colleagues know her; the id (what the audit trail records) on hover.
    $("who").textContent = `Connecté·e : ${me.name || me.staff_id}`; // as the dashboard says it
    $("who").title = me.staff_id;
    $("sign-out").hidden = false;
    watchSession(me);
    await refresh();
  } catch (error) {
    if (sessionOver(error)) return; // signOut has run
    showSignIn(explain(error));
  } finally {
    arrival = null;
  }
}

/** The code the provider sent back to this page: exchanged for a token, then signed in with it (or a message). */
async function enterFromProvider(callback) {
  try {
    const body = await signIn.complete(callback);
    store.set(body.access_token);
  } catch (error) {
    if (!(error instanceof SignInError)) console.error("sign-in with the hospital's account:", error);
    signOut(error instanceof SignInError ? error.message : SESSION_WORDS.providerFailed);
    return;
  }
  await enter("provider");
}

/** Renewed silently before it expires when the provider gave a refresh token; a banner a few minutes before otherwise. */
function watchSession(me) {
  hideSessionWarning();
  signIn.watch(me.session_expires_in, {
    renewed: async (body) => {
      store.set(body.access_token);
      try {
        const renewed = await request("GET", "/v1/me");
        return typeof renewed.session_expires_in === "number" ? renewed.session_expires_in : null;
      } catch (error) {
        return sessionOver(error) ? undefined : null;
      }
    },
    warn: (endsAt) => {
      if ($("app").hidden) return;
      $("session-banner-text").textContent = sessionEndsAt(formatTime(endsAt));
      $("session-banner").hidden = false;
    },
  });
}

function hideSessionWarning() {
  $("session-banner").hidden = true;
  $("session-banner-text").textContent = "";
}

signInOnEnter($("token"));
$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
  if (!token) return;
  signIn.forget(); // a pasted token is not the provider's: its expiry says to paste another
  store.set(token);
  enter("pasted");
});
$("provider-sign-in").addEventListener("click", async () => {
  $("provider-sign-in").disabled = true;
  await signIn.begin(); // the page is left, or the sign-in screen says why not
});
$("sign-out").addEventListener("click", signOutByChoice);
$("session-renew").addEventListener("click", () => signOut(SESSION_WORDS.signInAgain));

// --- At a glance -----------------------------------------------------------------------------------------------------

function attentionRank(loan) {
  if (loan.silent_since) return 0;
  if (loan.return_status === "overdue") return 1;
  if (loan.return_status === "due_soon") return 2;
  return 3;
}

function attentionItem(loan) {
  const reasons = [];
  let kind = "";
  if (loan.silent_since) {
    kind = "silent";
    reasons.push(
      h("span", { class: "tag" }, "Silencieuse"),
      `${SILENCES[loan.silence_reason] || "sans signe de vie"}, depuis le ${formatDateTime(loan.silent_since)}. `,
    );
  }
  if (loan.return_status === "overdue") {
    kind ||= "overdue";
    reasons.push(h("span", { class: "tag" }, "Retour en retard"), `prévu le ${formatDay(loan.expected_return_on)}. `);
  } else if (loan.return_status === "due_soon") {
    reasons.push(h("span", { class: "tag" }, "Retour bientôt"), `prévu le ${formatDay(loan.expected_return_on)}. `);
  }
  const back = loan.ended_at && loan.missing_accessories.length > 0;
  if (loan.missing_accessories.length > 0) {
    reasons.push(h("span", { class: "missing" }, `Manquant : ${names(loan.missing_accessories)}. `));
  }
  return h(
    "li",
    { class: kind, dataset: { loan: loan.id, tablet: loan.tablet_id } },
    reasons,
    "Patient ",
    patientId(loan.patient_id),
    back
      ? [" ", h("button", { type: "button", class: "secondary", "data-back": loan.id }, "Accessoires rapportés")]
      : null,
  );
}

// The fifteen counts, in rows that never change: a count keeps its place from one day to the next (the fleet manager
// learns where to look), whatever it reads. What waits for the fleet manager's own step comes first, and stands out
// when it is not zero; a zero anywhere is drawn quieter. `urgent`: a patient is concerned (silent, or overdue).
const COUNT_ROWS = [
  {
    id: "act",
    title: "À traiter",
    counts: [
      ["silent_tablets", ["Silencieuse", "Silencieuses"], "urgent"],
      ["loans_overdue", ["Retour en retard", "Retours en retard"], "urgent"],
      ["missing_accessories", ["Accessoire manquant", "Accessoires manquants"]],
      ["damaged_to_check", ["Endommagée à vérifier", "Endommagées à vérifier"]],
      ["state:returned", STATE_COUNTS.returned],
      ["state:wipe_pending", STATE_COUNTS.wipe_pending],
      ["state:wiped", STATE_COUNTS.wiped],
      ["state:pending_provisioning", STATE_COUNTS.pending_provisioning],
    ],
  },
  {
    id: "watch",
    title: "À suivre",
    counts: [
      ["loans_due_soon", ["Retour à venir", "Retours à venir"]],
      ["state:in_repair", STATE_COUNTS.in_repair],
      ["state:lost", STATE_COUNTS.lost],
      ["state:stolen", STATE_COUNTS.stolen],
    ],
  },
  {
    id: "fleet",
    title: "Le parc",
    counts: [
      // « Prêtées » only: an open loan is a tablet in the state « Prêtée », each step that ends one leaving that
      // state in the same transaction (api.py), so the API's open_loans always reads the same number.
      ["state:loaned", STATE_COUNTS.loaned],
      ["state:ready", STATE_COUNTS.ready],
      ["state:retired", STATE_COUNTS.retired],
    ],
  },
];

function countOf(fleet, key) {
  const value = key.startsWith("state:") ? (fleet.by_state || {})[key.slice(6)] : fleet[key];
  return typeof value === "number" ? value : 0;
}

function countRow(fleet, row) {
  const title = `counts-${row.id}-title`;
  return h(
    "div",
    { class: `count-row ${row.id}`, role: "group", "aria-labelledby": title },
    h("h3", { id: title }, row.title),
    h(
      "ul",
      { class: "counts" },
      row.counts.map(([key, forms, urgent]) => {
        const count = countOf(fleet, key);
        const look = count === 0 ? "zero" : row.id === "act" ? `act${urgent ? " urgent" : ""}` : "";
        return h("li", { class: `count ${look}`.trim(), dataset: { count: key } }, h("strong", null, formatNumber(count)), counted(count, forms));
      }),
    ),
  );
}

// Each list is drawn from the answer to its latest request only. Answers can come back out of order (a slow one,
// asked at sign-in, after the one asked once a tablet was registered): drawn last, the older one took the new tablet
// and its buttons off the page.
const asked = { glance: 0, tablets: 0 };

/** Whether the answer to request number `number` of the `list` is still the one to draw. */
function latest(list, number) {
  return asked[list] === number;
}

async function loadGlance() {
  const number = ++asked.glance;
  const fleet = await request("GET", "/v1/fleet");
  if (!latest("glance", number)) return;
  $("counts").replaceChildren(...COUNT_ROWS.map((row) => countRow(fleet, row)));
  const loans = [...fleet.attention].sort((a, b) => attentionRank(a) - attentionRank(b));
  $("attention").replaceChildren(
    ...(loans.length ? loans.map(attentionItem) : [h("li", null, "Rien à signaler.")]),
  );
  for (const button of $("attention").querySelectorAll("[data-back]")) {
    const loan = fleet.attention.find((l) => l.id === button.dataset.back);
    button.addEventListener("click", () => openAccessoriesBack(loan));
  }
}

// --- The tablets ---------------------------------------------------------------------------------------------------

function names(accessories) {
  return accessories.map((a) => ACCESSORIES[a] || a).join(", ");
}

/** A pseudonymous id, shortened; the whole id on hover and copied with a click or Enter. */
function patientId(id) {
  const code = h("code", { class: "id", title: id, tabindex: "0", role: "button", "aria-label": `Copier l'identifiant ${id}` }, shortId(id));
  const copy = () => copyText(id, "Identifiant du patient copié.");
  code.addEventListener("click", copy);
  code.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      copy();
    }
  });
  return code;
}

async function copyText(text, done) {
  try {
    await navigator.clipboard.writeText(text);
    say(done);
  } catch {
    say("La copie n'est pas permise ici : sélectionnez le texte et copiez-le.");
  }
}

function say(message, ok = true, error = null) {
  tell($("status"), message, error);
  $("status").classList.toggle("ok", ok);
}

// Whether the service makes one-time enrolment codes (/fleet/config.json): a new code can then be made for a loan.
let enrolmentCodes = false;

function tabletRow(tablet) {
  const loan = tablet.loan;
  const actions = tablet.allowed_actions
    .filter((action) => action !== "report_stolen")
    .map((action) =>
      h("button", { type: "button", class: "secondary", dataset: { action, tablet: tablet.id } }, ACTIONS[action] || action),
    );
  // The QR code is shown once: a tablet not enrolled by then (panel closed, code expired) needs a new one.
  if (loan && enrolmentCodes)
    actions.push(
      h("button", { type: "button", class: "secondary", dataset: { action: "enrolment_code", tablet: tablet.id } }, "Nouveau code d'enrôlement"),
    );
  return h(
    "tr",
    { dataset: { tablet: tablet.id, serial: tablet.serial_number } },
    h("td", null, h("span", { class: "serial" }, tablet.serial_number), h("br"), h("small", null, tablet.model)),
    h(
      "td",
      { class: "state" },
      STATES[tablet.state] || tablet.state,
      loan && loan.silent_since ? [h("br"), h("span", { class: "missing" }, "Silencieuse")] : null,
      tablet.damage_check_due ? [h("br"), h("span", { class: "missing damage" }, DAMAGE_DUE)] : null,
    ),
    h("td", null, formatDateTime(tablet.last_seen_at)),
    h("td", null, tablet.battery_percent === null ? "—" : `${formatNumber(tablet.battery_percent)} %`),
    h("td", null, loan ? patientId(loan.patient_id) : "—"),
    h("td", null, loan ? formatDay(loan.expected_return_on) : "—", loan && loan.return_status === "overdue" ? [h("br"), h("span", { class: "missing" }, "En retard")] : null),
    h(
      "td",
      null,
      h(
        "div",
        { class: "actions" },
        actions,
        h("button", { type: "button", class: "secondary", dataset: { history: tablet.id } }, "Historique des prêts"),
      ),
    ),
  );
}

let tablets = [];

async function loadTablets() {
  const params = new URLSearchParams();
  const state = $("state-filter").value;
  if (state) params.append("state", state);
  const serial = $("serial-filter").value.trim();
  if (serial) params.append("serial", serial);
  const query = params.toString();
  const number = ++asked.tablets;
  let found;
  try {
    found = (await request("GET", `/v1/tablets${query ? `?${query}` : ""}`)).items;
  } catch (error) {
    if (!latest("tablets", number)) return;
    if (error.status === 422) return say(`Filtre refusé. ${explain(error)}`, false, error);
    throw error;
  }
  if (!latest("tablets", number)) return;
  tablets = found;
  const body = $("tablets").tBodies[0];
  body.replaceChildren(...(tablets.length ? tablets.map(tabletRow) : [h("tr", null, h("td", { colspan: "7" }, "Aucune tablette."))]));
}

async function refresh() {
  try {
    await Promise.all([loadGlance(), loadTablets()]);
  } catch (error) {
    if (sessionOver(error)) return;
    say(explain(error), false, error);
  }
}

$("state-filter").append(
  h("option", { value: "" }, "Tous"),
  ...Object.entries(STATES).map(([value, label]) => h("option", { value }, label)),
);
$("state-filter").addEventListener("change", loadTablets);
$("serial-filter").addEventListener("change", loadTablets);
$("refresh").addEventListener("click", refresh);
$("tablets").addEventListener("click", (event) => {
  const history = event.target.closest("button[data-history]");
  if (history) {
    const tablet = tablets.find((t) => t.id === history.dataset.history);
    if (tablet) openHistory(tablet);
    return;
  }
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const tablet = tablets.find((t) => t.id === button.dataset.tablet);
  if (tablet) openAction(tablet, button.dataset.action);
});
$("register-open").addEventListener("click", openRegister);

// --- Panels: one form at a time, each with its own Idempotency-Key -------------------------------------------------

function openPanel(title, ...content) {
  if ($("panel").hidden) opener = document.activeElement;
  $("panel-title").textContent = title;
  // What a panel leaves out (null) is left out, not written as "null" (replaceChildren would).
  $("panel-body").replaceChildren(...content.filter((part) => part !== null && part !== undefined));
  $("panel").hidden = false;
  const first = $("panel-body").querySelector("input, select, textarea, button");
  (first || $("panel")).focus();
}

let opener = null;

function closePanel() {
  $("panel").hidden = true;
  // The QR code (the tablet's key) leaves the page with its panel.
  $("panel-body").replaceChildren();
  // The tablets' rows are drawn again after each command: the same tablet's first step then, or the toolbar.
  const tablet = opener && opener.dataset ? opener.dataset.tablet : null;
  const again = tablet ? $("tablets").querySelector(`tr[data-tablet="${CSS.escape(tablet)}"] button`) : null;
  const target = opener && opener.isConnected ? opener : again || $("refresh");
  if (!$("app").hidden) target.focus();
  opener = null;
}

// Escape closes the open form, as a dialog would, and gives the focus back to what opened it.
$("panel").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closePanel();
});

function field(label, input) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return h("div", null, h("label", { for: id }, label), h("br"), input);
}

function checklist(legend, name, kinds, checked = true) {
  return h(
    "fieldset",
    null,
    h("legend", null, legend),
    kinds.map((kind) =>
      h("label", null, h("input", { type: "checkbox", name, value: kind, checked }), " ", ACCESSORIES[kind] || kind),
    ),
  );
}

const checkedIn = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);

/**
 * A form whose submission sends one command: the key is made when the form opens and kept while the command may have
 * been recorded (network failure, server error), so a retry is the same command; a refusal (4xx) is shown as the
 * API's own detail and the next submission, corrected, is a new command.
 */
function commandForm(submitLabel, build, done) {
  // Focusable, so that the refusal takes the focus (and Escape still closes the form) once it is said.
  const message = h("p", { class: "message", role: "alert", tabindex: "-1" });
  const submit = h("button", { type: "submit" }, submitLabel);
  const cancel = h("button", { type: "button", class: "secondary" }, "Annuler");
  cancel.addEventListener("click", closePanel);
  const form = h("form", { class: "step", novalidate: true }, message, h("div", { class: "actions" }, submit, " ", cancel));
  let key = newKey();
  let busy = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const command = build(form);
    if (!command) return;
    busy = true;
    submit.disabled = true;
    message.textContent = "";
    try {
      const answer = await request("POST", command.path, { body: command.body, headers: { "Idempotency-Key": key } });
      await done(answer);
      refresh();
    } catch (error) {
      if (sessionOver(error)) return;
      if (error.status >= 400 && error.status < 500) key = newKey();
      tell(message, `Ce n'est pas enregistré. ${explain(error)}`, error);
      message.focus();
    } finally {
      busy = false;
      submit.disabled = false;
    }
  });
  return form;
}

function withFields(form, ...fields) {
  form.prepend(...fields.filter((part) => part !== null && part !== undefined));
  return form;
}

function openRegister() {
  const serial = h("input", { name: "serial", required: true, autocomplete: "off" });
  const model = h("input", { name: "model", required: true, value: "Galaxy Tab A9" });
  const form = commandForm(
    "Enregistrer",
    () => ({
      path: "/v1/tablets",
      body: {
        serial_number: serial.value.trim(),
        model: model.value.trim(),
        accessories: checkedIn(form, "accessory").map((kind) => ({ kind })),
      },
    }),
    (tablet) => {
      closePanel();
      say(`Tablette ${tablet.serial_number} enregistrée (${STATES[tablet.state] || tablet.state}).`);
    },
  );
  openPanel(
    "Enregistrer une tablette",
    withFields(form, field("Numéro de série", serial), field("Modèle", model), checklist("Accessoires fournis", "accessory", Object.keys(ACCESSORIES))),
  );
}

async function detail(tablet) {
  return request("GET", `/v1/tablets/${encodeURIComponent(tablet.id)}`);
}

function localNow() {
  const now = new Date();
  now.setSeconds(0, 0);
  return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

async function openLoan(tablet) {
  const full = await detail(tablet);
  const patient = h("input", { name: "patient", autocomplete: "off", size: "40", placeholder: "identifiant pseudonyme (UUID)" });
  const signed = h("input", { type: "datetime-local", name: "signed_at", value: localNow() });
  const witness = h("input", { name: "witnessed_by", autocomplete: "off" });
  const due = h("input", { type: "date", name: "expected_return_on", min: parisDay() });
  const form = commandForm(
    "Prêter",
    () => {
      const body = {
        patient_id: patient.value.trim(),
        agreement: { signed_at: signed.value ? new Date(signed.value).toISOString() : "", witnessed_by: witness.value.trim() },
        accessories: checkedIn(form, "accessory"),
      };
      if (due.value) body.expected_return_on = due.value;
      return { path: `/v1/tablets/${encodeURIComponent(tablet.id)}/loan`, body };
    },
    (granted) => showEnrolment(tablet, granted),
  );
  // Worn or damaged when its last loan came back (the newest first): said before it is handed over again.
  const last = full.loans[0];
  // Once someone recorded the check of a damaged return, who and when is said instead of asking for it again.
  const checkedLast = last ? checkSentence(last) : null;
  const lastState =
    last && last.end_kind === "returned" && last.return_condition && last.return_condition !== "good"
      ? `Au dernier retour, cette tablette était ${CONDITIONS[last.return_condition] || last.return_condition}` +
        `${last.return_condition_note ? ` (${last.return_condition_note.replace(/[\s.]+$/, "")})` : ""}` +
        (checkedLast
          ? ` ; ${checkedLast.charAt(0).toLowerCase()}${checkedLast.slice(1)}`
          : " : vérifiez-la avant de la remettre au patient.")
      : null;
  openPanel(
    `Prêter la tablette ${tablet.serial_number}`,
    withFields(
      form,
      lastState ? h("p", { id: "last-condition", class: "message" }, lastState) : null,
      field("Patient (identifiant pseudonyme)", patient),
      field("Convention signée le", signed),
      field("Signature recueillie par (identifiant du soignant)", witness),
      checklist("Remis avec la tablette", "accessory", full.accessories.map((a) => a.kind)),
      field("Retour prévu le (par défaut : dans un an ou à la fin du traitement)", due),
    ),
  );
}

/** A new one-time code for the open loan (the last one stops working), shown as after the loan. */
async function newEnrolmentCode(tablet, loanId) {
  const made = await request("POST", `/v1/loans/${encodeURIComponent(loanId)}/enrolment-code`, {
    headers: { "Idempotency-Key": newKey() },
  });
  showEnrolment(tablet, { ...made, loan_id: loanId }, false);
}

function validity(expiresAt) {
  const minutes = Math.max(1, Math.round((new Date(expiresAt).getTime() - Date.now()) / 60000));
  const until = new Date(expiresAt).toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit", timeZone: "Europe/Paris" });
  return `Code valable ${minutes} minutes, une seule fois (jusqu'à ${until}).`;
}

/** The enrolment QR code: an SVG document drawn by the server, shown as an image (its markup never joins the page). */
function showEnrolment(tablet, granted, afterLoan = true) {
  // The line above the page said what the last step did ("… : Prête."): left as it was, it would contradict the list.
  say(afterLoan ? `Tablette ${tablet.serial_number} prêtée.` : `Nouveau code d'enrôlement pour la tablette ${tablet.serial_number}.`);
  const loanId = granted.loan ? granted.loan.id : granted.loan_id;
  const image = h("img", {
    id: "enrolment-qr",
    alt: "QR code d'enrôlement de la tablette",
    src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(granted.enrolment_qr_svg)}`,
  });
  const copy = h("button", { type: "button", id: "copy-link" }, "Copier le lien");
  copy.addEventListener("click", () => copyText(granted.enrolment_url, "Lien d'enrôlement copié : collez-le dans le navigateur de la tablette."));
  const close = h("button", { type: "button", class: "secondary" }, "Terminé");
  close.addEventListener("click", closePanel);
  // A code (not the token itself, where the service has codes off) lives a short while, once, and can be made again.
  const coded = Boolean(granted.enrolment_expires_at);
  const again = coded ? h("button", { type: "button", class: "secondary", id: "new-code" }, "Nouveau code") : null;
  const message = h("p", { class: "message", role: "alert", tabindex: "-1" });
  if (again)
    again.addEventListener("click", async () => {
      again.disabled = true;
      try {
        await newEnrolmentCode(tablet, loanId);
      } catch (error) {
        if (sessionOver(error)) return;
        again.disabled = false;
        tell(message, `Pas de nouveau code. ${explain(error)}`, error);
        message.focus();
      }
    });
  openPanel(
    afterLoan ? `Tablette ${tablet.serial_number} prêtée` : `Enrôler la tablette ${tablet.serial_number}`,
    h(
      "div",
      { class: "enrolment" },
      h("p", null, granted.loan ? `Retour prévu le ${formatDay(granted.loan.expected_return_on)}. ` : "",
        "Ouvrez l'appareil photo de la tablette et visez ce QR code : la tablette ouvre le questionnaire du patient et s'en souvient."),
      image,
      coded
        ? h("p", { class: "hint", id: "code-validity" }, `${validity(granted.enrolment_expires_at)} Une fois la tablette enrôlée, ce code ne sert plus ; « Nouveau code » en crée un autre, et celui-ci n'est alors plus valable.`)
        : h("p", { class: "hint" }, "Ce code vaut la clé de la tablette : ne le photographiez pas, ne l'envoyez pas. Il n'est plus affiché une fois ce panneau fermé."),
      message,
      h("div", { class: "actions" }, copy, " ", again, again ? " " : null, close),
    ),
  );
  // Focus alone scrolls the button to the middle of a short screen (150 % zoom), the code's top cut off: the code is
  // what must be whole, for the tablet's camera; sized to leave the button in view below it (fleet.css).
  copy.focus({ preventScroll: true });
  image.scrollIntoView({ block: "center" });
}

async function openReturn(tablet) {
  const full = await detail(tablet);
  const lent = full.loan ? full.loan.accessories : [];
  const channel = h("select", { name: "channel" }, Object.entries(CHANNELS).map(([value, label]) => h("option", { value }, label)));
  // Not checked is said as such, never taken for « bon état »: the next loan relies on what is recorded here.
  const condition = h(
    "select",
    { name: "condition" },
    h("option", { value: "" }, "Non relevé"),
    Object.entries(CONDITIONS).map(([value, label]) => h("option", { value }, label.charAt(0).toUpperCase() + label.slice(1))),
  );
  const note = h("input", { name: "condition_note", maxlength: "200", size: "50", autocomplete: "off" });
  const form = commandForm(
    "Enregistrer le retour",
    () => {
      const body = { channel: channel.value, accessories_returned: checkedIn(form, "returned") };
      if (condition.value) body.condition = condition.value;
      if (note.value.trim()) body.condition_note = note.value.trim();
      return { path: `/v1/tablets/${encodeURIComponent(tablet.id)}/return`, body };
    },
    (loan) => {
      const missing = loan.missing_accessories;
      const state = conditionSentence(loan);
      say(`Tablette ${tablet.serial_number} rendue.`);
      openPanel(
        `Tablette ${tablet.serial_number} rendue`,
        h("p", { id: "return-result" }, missing.length
          ? h("span", { class: "missing" }, `Manquant : ${names(missing)}.`)
          : "Tout ce qui avait été remis est revenu."),
        state ? h("p", { id: "return-condition", class: loan.return_condition === "damaged" ? "missing" : null }, state) : null,
        h("p", null, "Le jeton de la tablette est révoqué : elle doit maintenant être effacée."),
        receiptButton(loan),
        missing.length ? accessoriesBackForm(loan) : null,
      );
    },
  );
  openPanel(
    `Retour de la tablette ${tablet.serial_number}`,
    withFields(
      form,
      field("Rendue", channel),
      checklist("Revenu avec la tablette (décochez ce qui manque)", "returned", lent),
      field("État de la tablette", condition),
      field("Précisions sur l'état (facultatif : écran fissuré, coque abîmée… sans rien sur le patient)", note),
    ),
  );
}

function accessoriesBackForm(loan) {
  const form = commandForm(
    "Enregistrer les accessoires rapportés",
    () => {
      const back = checkedIn(form, "back");
      return back.length ? { path: `/v1/loans/${encodeURIComponent(loan.id)}/accessories`, body: { accessories: back } } : null;
    },
    (after) => {
      closePanel();
      say(after.missing_accessories.length ? `Toujours manquant : ${names(after.missing_accessories)}.` : "Tous les accessoires sont revenus.");
    },
  );
  return withFields(form, checklist("Rapportés depuis le retour", "back", loan.missing_accessories, false));
}

function openAccessoriesBack(loan) {
  openPanel("Accessoires rapportés", accessoriesBackForm(loan));
}

function openLost(tablet) {
  const stolen = h("input", { type: "checkbox", name: "stolen" });
  const reason = h("input", { name: "reason", maxlength: "500", size: "50" });
  const form = commandForm(
    "Déclarer",
    () => ({
      path: `/v1/tablets/${encodeURIComponent(tablet.id)}/lost`,
      body: reason.value.trim() ? { stolen: stolen.checked, reason: reason.value.trim() } : { stolen: stolen.checked },
    }),
    (after) => {
      closePanel();
      say(`Tablette ${after.serial_number} : ${STATES[after.state] || after.state}. Son jeton est révoqué.`);
    },
  );
  openPanel(
    `Tablette ${tablet.serial_number} perdue ou volée`,
    withFields(form, h("label", null, stolen, " Volée (sinon : perdue)"), field("Circonstances (sans nom ni détail sur le patient)", reason)),
  );
}

function openWipe(tablet) {
  const method = h("select", { name: "method" }, Object.entries(WIPES).map(([value, label]) => h("option", { value }, label)));
  const proof = h("input", { name: "proof", maxlength: "200", autocomplete: "off" });
  const form = commandForm(
    "Enregistrer l'effacement",
    () => ({ path: `/v1/tablets/${encodeURIComponent(tablet.id)}/wipe`, body: { method: method.value, proof: proof.value.trim() } }),
    (after) => {
      closePanel();
      say(`Tablette ${after.serial_number} effacée.`);
    },
  );
  openPanel(`Effacement de la tablette ${tablet.serial_number}`, withFields(form, field("Méthode", method), field("Preuve (n° de tâche MDM ou de fiche signée)", proof)));
}

const DAMAGE_DUE = "Endommagée : à vérifier";
const CHECKS = { checked: "vérifiée", sent_to_repair: "envoyée en réparation" };

/** « Vérifiée le 24/11/2026 par parc-sophie. »: how a damaged return was looked at, or null. */
function checkSentence(loan) {
  if (!loan.damage_check) return null;
  const how = CHECKS[loan.damage_check] || loan.damage_check;
  return `${how.charAt(0).toUpperCase()}${how.slice(1)} le ${formatDay(loan.damage_checked_at)} par ${loan.damage_checked_by}.`;
}

/**
 * "Make ready" for a tablet back damaged that nobody has checked: the damage said again, and the fleet manager confirms
 * she checked it (and had it repaired if needed), or sends it to repair instead. Unticked, the service refuses it
 * (damage-not-checked) and the form says why in French.
 */
async function openMakeReadyDamaged(tablet) {
  const full = await detail(tablet);
  const last = full.loans[0];
  const note = last && last.return_condition_note ? ` (${last.return_condition_note.replace(/[\s.]+$/, "")})` : "";
  const checked = h("input", { type: "checkbox", name: "checked", id: "damage-checked" });
  const form = commandForm(
    ACTIONS.make_ready,
    () => ({
      path: `/v1/tablets/${encodeURIComponent(tablet.id)}/actions/make_ready`,
      body: checked.checked ? { checked: true } : {},
    }),
    (after) => {
      closePanel();
      say(`Tablette ${after.serial_number} vérifiée : ${STATES[after.state] || after.state}.`);
    },
  );
  const repair = h("button", { type: "button", class: "secondary", id: "damage-repair" }, ACTIONS.send_to_repair);
  repair.addEventListener("click", () => openStep(tablet, "send_to_repair"));
  openPanel(
    `${ACTIONS.make_ready} : tablette ${tablet.serial_number}`,
    withFields(
      form,
      h(
        "p",
        { id: "damage-warning", class: "missing" },
        `Cette tablette est revenue endommagée de son dernier prêt${note}${
          last && last.ended_at ? `, le ${formatDay(last.ended_at)}` : ""
        }. Vérifiez-la, et faites-la réparer si besoin, avant de la remettre en service ; sinon, envoyez-la en réparation.`,
      ),
      h("label", null, checked, " Je confirme qu'elle a été vérifiée et, si besoin, réparée : elle peut être prêtée."),
      h("p", null, repair),
    ),
  );
}

function openStep(tablet, action) {
  const form = commandForm(
    ACTIONS[action],
    () => ({ path: `/v1/tablets/${encodeURIComponent(tablet.id)}/actions/${encodeURIComponent(action)}`, body: {} }),
    (after) => {
      closePanel();
      say(`Tablette ${after.serial_number} : ${STATES[after.state] || after.state}.`);
    },
  );
  openPanel(`${ACTIONS[action]} : tablette ${tablet.serial_number}`, form);
}

async function openAction(tablet, action) {
  try {
    if (action === "loan") return await openLoan(tablet);
    if (action === "enrolment_code") return await newEnrolmentCode(tablet, tablet.loan.id);
    if (action === "return") return await openReturn(tablet);
    if (action === "report_lost") return openLost(tablet);
    if (action === "record_wipe") return openWipe(tablet);
    if (action === "make_ready" && tablet.damage_check_due) return await openMakeReadyDamaged(tablet);
    return openStep(tablet, action);
  } catch (error) {
    if (!sessionOver(error)) say(explain(error), false, error);
  }
}

// --- A tablet's loans, and the return receipt handed to the patient ------------------------------------------------

const ENDS = { returned: "rendue", lost: "déclarée perdue", stolen: "déclarée volée" };

async function openHistory(tablet) {
  try {
    const full = await detail(tablet);
    const items = full.loans.map((loan) =>
      h(
        "li",
        { dataset: { loan: loan.id } },
        `Prêtée le ${formatDay(loan.loaned_at)} au patient `,
        patientId(loan.patient_id),
        loan.ended_at
          ? `, ${ENDS[loan.end_kind] || loan.end_kind} le ${formatDay(loan.ended_at)}${
              loan.return_channel ? ` (${CHANNELS[loan.return_channel].toLowerCase()})` : ""
            }. `
          : `, en cours (retour prévu le ${formatDay(loan.expected_return_on)}). `,
        conditionSentence(loan) ? [h("span", { class: "condition" }, conditionSentence(loan)), " "] : null,
        checkSentence(loan) ? [h("span", { class: "damage-check" }, checkSentence(loan)), " "] : null,
        loan.end_kind === "returned" ? receiptButton(loan) : null,
      ),
    );
    const close = h("button", { type: "button", class: "secondary" }, "Fermer");
    close.addEventListener("click", closePanel);
    openPanel(
      `Historique des prêts de la tablette ${tablet.serial_number}`,
      items.length ? h("ul", { class: "loans" }, items) : h("p", null, "Cette tablette n'a encore jamais été prêtée."),
      h("div", { class: "actions" }, close),
    );
  } catch (error) {
    if (!sessionOver(error)) say(explain(error), false, error);
  }
}

function receiptButton(loan) {
  const button = h("button", { type: "button", class: "secondary", dataset: { receipt: loan.id } }, "Imprimer l'attestation de restitution");
  button.addEventListener("click", () => openReceipt(loan.id, button));
  return button;
}

let receiptOpener = null;

/** The receipt, on screen above the fleet and alone on paper (fleet.css), then the browser's print dialog. */
async function openReceipt(loanId, opener) {
  let receipt;
  try {
    receipt = await request("GET", `/v1/loans/${encodeURIComponent(loanId)}/receipt`);
  } catch (error) {
    if (!sessionOver(error)) say(`L'attestation ne peut pas être imprimée. ${explain(error)}`, false, error);
    return;
  }
  receiptOpener = opener;
  $("receipt-sheet").replaceChildren(...receiptSheet(receipt));
  $("receipt").hidden = false;
  document.body.classList.add("receipt-open");
  $("receipt").scrollIntoView();
  $("receipt-print").focus();
  window.print();
}

/** The patient's id leaves the page with the receipt (and with the session). */
function closeReceipt() {
  const wasOpen = !$("receipt").hidden;
  $("receipt").hidden = true;
  document.body.classList.remove("receipt-open");
  $("receipt-sheet").replaceChildren();
  if (wasOpen && receiptOpener && receiptOpener.isConnected && !$("app").hidden) receiptOpener.focus();
  receiptOpener = null;
}

$("receipt-print").addEventListener("click", () => window.print());
$("receipt-close").addEventListener("click", closeReceipt);
$("receipt").addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeReceipt();
});

// --- Start ---------------------------------------------------------------------------------------------------------

async function start() {
  // Before anything else: the provider's answer leaves the address bar (a code is good once, and never belongs in
  // the history), then the config names the endpoint to exchange it at.
  const callback = signIn.takeCallback();
  const config = await signIn.loadConfig();
  $("dev-hint").hidden = !(config && config.development);
  enrolmentCodes = Boolean(config && config.enrolment_codes);
  if (callback) await enterFromProvider(callback);
  else if (store.get()) await enter();
  else showSignIn();
}

start();
