// What a refreshed list tells the nurse, decided from the lists alone (no DOM, no clock): which alerts need her
// (announced; a red one also rings the banner and the beep), the words for them, and how her own step's answer
// joins the list until the next load.

import { levelLabel, parseDate, patientShortId, reasonText, staffName } from "./format.js";

const isActive = (alert) => alert.status === "open" || alert.status === "acknowledged";

/**
 * The alert a step of hers answered with, in the list in place (merged into the row it had), added at the end when
 * it has just become active, dropped once no longer active. The next load puts it in triage order.
 */
export function mergeAlert(alerts, updated) {
  if (!updated || !updated.id) return;
  const index = alerts.findIndex((alert) => alert.id === updated.id);
  const active = isActive(updated);
  if (index === -1) {
    if (active) alerts.push(updated);
  } else if (active) {
    alerts[index] = { ...alerts[index], ...updated };
  } else {
    alerts.splice(index, 1);
  }
}

/**
 * What the refreshed list brings that needs a nurse, compared with the list before (`before`: id → alert): a new
 * open alert, one whose level rose to red, one a new finding sent back to open after a nurse had taken it. All are
 * announced (`announcements`); the first red one, the most urgent in triage order, gets the banner and the beep
 * (`red`). An alert no longer active is never cued, even if its events were replayed after a reconnection; one
 * raised while the page was cut off always is. `me`: her staff id (the words for an alert she had, cueText).
 */
export function cues(before, items, me = null) {
  const announcements = [];
  let red = null;
  for (const alert of items) {
    const previous = before.get(alert.id) || null;
    const cause = changeCause(previous, alert);
    if (!cause) continue;
    announcements.push({ cause, alertId: alert.id, previous });
    if (alert.level === "red" && !red) {
      const parts = cueParts(cause, alert, previous, 3, me);
      red = { alertId: alert.id, text: Object.values(parts).join(""), parts };
    }
  }
  return { announcements, red };
}

export function changeCause(previous, alert) {
  if (alert.status !== "open") return null;
  if (!previous) return "raised";
  if (alert.level === "red" && previous.level !== "red") return "level-rose";
  if (previous.status !== "open" && reopenedSince(alert, previous)) return "reopened";
  if (previous.status === "open" && reopenedAgain(alert, previous)) return "reopened";
  return null;
}

/** Sent back to open after the taking we knew of: not a list read just before our own "Je prends" came back. */
function reopenedSince(alert, previous) {
  const reopened = parseDate(alert.reopened_by_finding_at);
  const taken = parseDate(previous.acknowledged_at);
  return Boolean(reopened && (!taken || reopened > taken));
}

/**
 * Open when we last saw it and open now, but sent back to open since: a colleague took it and a new answer reopened
 * it while the page was cut off. Only a later reopening than the one we knew of tells it; the statuses cannot.
 */
function reopenedAgain(alert, previous) {
  const reopened = parseDate(alert.reopened_by_finding_at);
  const known = parseDate(previous.reopened_by_finding_at);
  return Boolean(reopened && (!known || reopened > known));
}

/**
 * Sent back to open by a new answer since the version `previous` (taken then, or open and reopened again since): the
 * alert's previously_acknowledged_by is who had it in between, not a taking older than what the page knew.
 */
function reopenedBetween(previous, alert) {
  return Boolean(previous) && reopenedSince(alert, previous) && reopenedAgain(alert, previous);
}

/**
 * The words follow the cause: "Nouvelle alerte ROUGE", "Alerte passée en ROUGE (était prise par ide-claire)" (its
 * level rose; who had it, if someone did), "Alerte ROUGE rouverte : nouvelle réponse (était prise par ide-claire)"
 * (red all along, back to open), then the patient. When she had it herself (`me`, her staff id), "(vous l'aviez
 * prise)": her own name would read as a colleague's, and the alert she had is hers to look at again.
 */
export function cueText(cause, alert, previous, reasonsShown, me = null) {
  return Object.values(cueParts(cause, alert, previous, reasonsShown, me)).join("");
}

/**
 * cueText in its parts, which joined are its words: what happened, who had it, the patient, the reasons. The red
 * banner holds them on one line, cutting who had it and then the reasons before the patient (style.css).
 */
export function cueParts(cause, alert, previous, reasonsShown, me = null) {
  const level = levelLabel(alert.level);
  const ownerId = alert.previously_acknowledged_by || (previous && previous.acknowledged_by) || null;
  const owner = staffName(alert, "previously_acknowledged_by") || staffName(previous, "acknowledged_by");
  // A reopening always follows a taking, even one this page never saw (previously_acknowledged_by names it): a
  // level that rose with a reopening the page missed (open when last seen, taken and reopened while cut off) too.
  const wasTaken =
    cause === "reopened" || (previous && previous.status !== "open") || reopenedBetween(previous, alert);
  const mine = Boolean(me) && ownerId === me;
  const taken = wasTaken && owner ? (mine ? " (vous l'aviez prise)" : ` (était prise par ${owner})`) : "";
  const head =
    cause === "raised"
      ? `Nouvelle alerte ${level}`
      : cause === "level-rose"
        ? `Alerte passée en ${level}`
        : `Alerte ${level} rouverte : nouvelle réponse`;
  const reasons = (alert.reasons || []).slice(0, reasonsShown).map(reasonText).join(", ");
  return {
    head,
    taken: cause === "raised" ? "" : taken,
    patient: ` — ${patientShortId(alert.patient_id)}`,
    reasons: reasons ? ` : ${reasons}` : "",
  };
}

/**
 * The live region's words for what is pending (the cues, and "escalated" events with their payload), against the
 * list as it is now: an alert handled meanwhile (or a replayed event of the past) says nothing. Null: nothing to say.
 */
export function announcementText(pending, alerts, me = null) {
  const parts = [];
  for (const { cause, alertId, payload, previous } of pending) {
    const alert = alerts.find((item) => item.id === alertId);
    if (!alert || alert.status !== "open") continue;
    if (cause === "escalated") {
      const level = alert.escalation_level || (payload && payload.escalation_level);
      parts.push(`Alerte en retard${level ? ` (niveau ${level})` : ""} : ${patientShortId(alert.patient_id)}`);
    } else {
      parts.push(cueText(cause, alert, previous, 2, me));
    }
  }
  if (!parts.length) return null;
  return parts.length > 3 ? `${parts.length} changements : ${parts.slice(0, 3).join(" ; ")} ; …` : parts.join(" ; ");
}

/** The red banner stays while the alert it names is still open in the list. */
export function bannerStillDue(alertId, items) {
  return !alertId || items.some((alert) => alert.id === alertId && alert.status === "open");
}

/**
 * The toast for her "Je prends" refused because the alert was taken meanwhile (409), from the alert as the list
 * reloaded just after gives it: taken by her on another screen or tab ("Quelqu'un de l'équipe…" would be wrong: `mine`), by a
 * named colleague, or null when the list does not show it taken (the API's own sentence then).
 */
export function alreadyTaken(alert, me = null) {
  if (!alert || alert.status !== "acknowledged" || !alert.acknowledged_by) return null;
  if (me && alert.acknowledged_by === me)
    return { mine: true, text: "Vous avez déjà pris cette alerte depuis un autre écran." };
  return { mine: false, text: `${staffName(alert, "acknowledged_by")} a déjà pris cette alerte.` };
}

/**
 * The closing dialog's sentence when the alert changed under it, from the version shown to the current one. A new
 * answer that reopened it (seen from the statuses, or from a later reopening when the page was cut off meanwhile: a
 * colleague may even have taken it again since) says who had it, as the banner does, unless it was `me` (her staff
 * id): she knows, and most closings are of an alert she took. Taken meanwhile: by whom, or, when by her (from another
 * screen or tab), that it was she.
 */
export function whatChanged(before, now, me = null) {
  const reopened = reopenedBetween(before, now) || (now.status === "open" && (!before || before.status !== "open"));
  // Who had it when it was sent back to open: the alert view names her, else the version shown did.
  const [holder, field] = now.previously_acknowledged_by
    ? [now, "previously_acknowledged_by"]
    : [before, "acknowledged_by"];
  const hadId = reopened && holder ? holder[field] : null;
  const was = hadId && hadId !== me ? ` (elle était prise par ${staffName(holder, field)})` : "";
  const ownerBefore = before ? before.acknowledged_by : null;
  const owner = now.status === "acknowledged" ? now.acknowledged_by : null;
  const takenSince = Boolean(owner) && (reopened || owner !== ownerBefore);
  const then = takenSince ? `, puis prise par ${owner === me ? "vous" : staffName(now, "acknowledged_by")}` : "";
  if (now.level === "red" && (!before || before.level !== "red"))
    return `Nouvelle réponse : l'alerte est passée en ${levelLabel("red")}${was}${then}.`;
  if (reopened) return `Nouvelle réponse : l'alerte a été rouverte${was}${then}.`;
  // Taken by her: from another screen or tab (this dialog is modal); her own name would read as a colleague's.
  if (takenSince && owner === me) return "Vous avez pris cette alerte depuis un autre écran.";
  if (takenSince) return `L'alerte a été prise entre-temps par ${staffName(now, "acknowledged_by")}.`;
  return "L'alerte a changé depuis que vous l'avez ouverte (nouvelle réponse).";
}
