"""Rules of the tablet fleet: the tablet lifecycle, loan dates, silent tablets, heartbeats (domains.md §1).

Pure functions and values: no I/O, no clock (``now`` and ``today`` are passed in), so the API, the handlers and
the scheduled jobs all decide the same way and every decision can be replayed from the stored history.

The lifecycle has one rule that matters more than the others: patient data must never reach the next patient,
so a tablet that has been out of the fleet manager's hands (loaned, lost, stolen, in repair) can only become
ready again through a recorded wipe. ``MAKE_READY`` is legal from ``WIPED`` only.
"""

from __future__ import annotations

import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Final, Literal, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from shared.datetimes import OffsetDatetime

__all__ = [
    "AWAITING_CHECK",
    "CONDITION_NOTE_MAX",
    "HEARTBEAT_CLOCK_TOLERANCE",
    "LOAN_LENGTH_DEFAULT",
    "RELEASING_ACTIONS",
    "SERIAL_PATTERN",
    "TRANSITIONS",
    "Accessory",
    "Action",
    "ConditionNote",
    "DamageCheck",
    "DamageNotChecked",
    "HeartbeatReading",
    "IllegalTransition",
    "ReturnChannel",
    "SerialNumber",
    "Silence",
    "SilencePolicy",
    "SilenceReason",
    "TabletCondition",
    "TabletState",
    "WipeMethod",
    "accessories_outside",
    "allowed_actions",
    "canonical_serial",
    "checked_refusal",
    "clock_skew_ok",
    "condition_note",
    "condition_refusal",
    "damage_check",
    "damage_check_due",
    "default_expected_return",
    "detect_silence",
    "ends_loan",
    "loan_status",
    "missing_accessories",
    "next_state",
    "repeated_accessories",
    "silence_since",
    "utilisation",
    "wipe_after_return",
]


# --- Lifecycle ---------------------------------------------------------------------------------------------


class TabletState(StrEnum):
    PENDING_PROVISIONING = "pending_provisioning"
    READY = "ready"
    LOANED = "loaned"
    RETURNED = "returned"
    WIPE_PENDING = "wipe_pending"
    WIPED = "wiped"
    LOST = "lost"
    STOLEN = "stolen"
    IN_REPAIR = "in_repair"
    RETIRED = "retired"


class Action(StrEnum):
    """What a fleet manager does to a tablet; each one is a transition of ``TRANSITIONS``."""

    PROVISION = "provision"
    LOAN = "loan"
    RETURN = "return"
    REQUEST_WIPE = "request_wipe"
    RECORD_WIPE = "record_wipe"
    MAKE_READY = "make_ready"
    REPORT_LOST = "report_lost"
    REPORT_STOLEN = "report_stolen"
    RECOVER = "recover"
    SEND_TO_REPAIR = "send_to_repair"
    BACK_FROM_REPAIR = "back_from_repair"
    RETIRE = "retire"


_S = TabletState
_A = Action

# A tablet can go missing from anywhere it is in circulation; it cannot go missing before it was provisioned
# (it is still in its box) nor once it is lost, stolen or retired.
_CAN_GO_MISSING: Final = (_S.LOANED, _S.READY, _S.RETURNED, _S.WIPE_PENDING, _S.WIPED, _S.IN_REPAIR)
# Repair is for tablets on the shelf; a loaned tablet is returned first (the patient gets another one).
_CAN_GO_TO_REPAIR: Final = (_S.READY, _S.RETURNED, _S.WIPE_PENDING, _S.WIPED)
# A loaned tablet is returned (or reported lost) before it is retired, so that its device token is revoked.
_CAN_BE_RETIRED: Final = tuple(state for state in TabletState if state not in (_S.LOANED, _S.RETIRED))

TRANSITIONS: Final[Mapping[tuple[TabletState, Action], TabletState]] = {
    (_S.PENDING_PROVISIONING, _A.PROVISION): _S.READY,
    (_S.READY, _A.LOAN): _S.LOANED,
    (_S.LOANED, _A.RETURN): _S.RETURNED,
    (_S.RETURNED, _A.REQUEST_WIPE): _S.WIPE_PENDING,
    (_S.WIPE_PENDING, _A.RECORD_WIPE): _S.WIPED,
    (_S.RETURNED, _A.RECORD_WIPE): _S.WIPED,  # wiped straight away at the desk
    (_S.WIPED, _A.MAKE_READY): _S.READY,  # the only way back to READY after a first loan
    **{(state, _A.REPORT_LOST): _S.LOST for state in _CAN_GO_MISSING},
    **{(state, _A.REPORT_STOLEN): _S.STOLEN for state in _CAN_GO_MISSING},
    # A found tablet may have been used by anyone: it is wiped before reuse.
    (_S.LOST, _A.RECOVER): _S.WIPE_PENDING,
    (_S.STOLEN, _A.RECOVER): _S.WIPE_PENDING,
    **{(state, _A.SEND_TO_REPAIR): _S.IN_REPAIR for state in _CAN_GO_TO_REPAIR},
    # The repairer had the tablet (and may have restored a backup): it is wiped before reuse.
    (_S.IN_REPAIR, _A.BACK_FROM_REPAIR): _S.WIPE_PENDING,
    **{(state, _A.RETIRE): _S.RETIRED for state in _CAN_BE_RETIRED},
}

RELEASING_ACTIONS: Final = frozenset({Action.RETURN, Action.REPORT_LOST, Action.REPORT_STOLEN})
"""Actions that end a loan: from ``LOANED`` they must revoke the tablet's device token."""


class IllegalTransition(Exception):
    """An action that the tablet's current state does not allow (HTTP 409).

    ``str()`` is a sentence for the fleet manager: what is wrong and, where possible, what to do first.
    """

    def __init__(self, current: TabletState, action: Action) -> None:
        self.current = current
        self.action = action
        super().__init__(_refusal_sentence(current, action))


def next_state(current: TabletState, action: Action) -> TabletState:
    """The state the tablet is in after ``action``; raises ``IllegalTransition`` when it is not allowed."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        raise IllegalTransition(current, action) from None


def allowed_actions(current: TabletState) -> tuple[Action, ...]:
    """The actions allowed from ``current``, in ``Action`` declaration order (the order a UI shows them in)."""
    return tuple(action for action in Action if (current, action) in TRANSITIONS)


def ends_loan(current: TabletState, action: Action) -> bool:
    """Whether this action ends a loan, so that the tablet's device token must be revoked with it."""
    return current is TabletState.LOANED and action in RELEASING_ACTIONS


# --- Refusal sentences -------------------------------------------------------------------------------------
#
# "A tablet that is <state> cannot be <action>: <hint>." The hint is, in this order: the tablet already is in
# the state asked for; another action does what was meant; the routine steps after which the action is
# allowed; why the action makes no sense here; otherwise the actions allowed now. Steps are looked up in
# TRANSITIONS, so the hints cannot drift from the state machine.

_STATE_WORDS: Final[Mapping[TabletState, str]] = {
    _S.PENDING_PROVISIONING: "waiting to be provisioned",
    _S.READY: "ready to loan",
    _S.LOANED: "on loan",
    _S.RETURNED: "returned",
    _S.WIPE_PENDING: "waiting for its wipe",
    _S.WIPED: "wiped",
    _S.LOST: "reported lost",
    _S.STOLEN: "reported stolen",
    _S.IN_REPAIR: "in repair",
    _S.RETIRED: "retired",
}

_ACTION_PARTICIPLES: Final[Mapping[Action, str]] = {
    _A.PROVISION: "provisioned",
    _A.LOAN: "loaned",
    _A.RETURN: "returned",
    _A.REQUEST_WIPE: "queued for a wipe",
    _A.RECORD_WIPE: "recorded as wiped",
    _A.MAKE_READY: "made ready",
    _A.REPORT_LOST: "reported lost",
    _A.REPORT_STOLEN: "reported stolen",
    _A.RECOVER: "recorded as recovered",
    _A.SEND_TO_REPAIR: "sent to repair",
    _A.BACK_FROM_REPAIR: "brought back from repair",
    _A.RETIRE: "retired",
}

_ACTION_STEPS: Final[Mapping[Action, str]] = {
    _A.PROVISION: "provision it",
    _A.LOAN: "loan it",
    _A.RETURN: "record its return",
    _A.REQUEST_WIPE: "request its wipe",
    _A.RECORD_WIPE: "record its wipe",
    _A.MAKE_READY: "make it ready",
    _A.REPORT_LOST: "report it lost",
    _A.REPORT_STOLEN: "report it stolen",
    _A.RECOVER: "record it as recovered",
    _A.SEND_TO_REPAIR: "send it to repair",
    _A.BACK_FROM_REPAIR: "record its return from repair",
    _A.RETIRE: "retire it",
}

# Actions that bring a tablet (back) into the normal flow. When one of them reaches the state the refused action
# aims at, it is what the manager meant: "make it ready" for a wiped tablet someone tried to provision.
_ENTRY_ACTIONS: Final = (_A.PROVISION, _A.MAKE_READY, _A.RECOVER, _A.BACK_FROM_REPAIR)

# Steps worth suggesting on the way to what was asked. Loaning, reporting a loss, sending to repair and retiring
# are decisions, never a means to an end.
_ROUTINE_STEPS: Final = (
    _A.PROVISION,
    _A.RETURN,
    _A.RECORD_WIPE,
    _A.REQUEST_WIPE,
    _A.MAKE_READY,
    _A.RECOVER,
    _A.BACK_FROM_REPAIR,
)

# Actions for which "do these steps first" is good advice. Not for reporting a loss or sending to repair: a
# tablet still in its box is not "provisioned first" so that it can be reported lost.
_STEP_HINTED_ACTIONS: Final = frozenset({_A.LOAN, _A.REQUEST_WIPE, _A.RECORD_WIPE, _A.MAKE_READY, _A.RETIRE})

# "It is already <state>" reads wrong for these: recovering a tablet that waits for its wipe is not a repeat.
_NOT_REPEATS: Final = frozenset({_A.RECOVER, _A.BACK_FROM_REPAIR})

_NOT_A_SOURCE_HINTS: Final[Mapping[Action, str]] = {
    _A.RETURN: "it is not on loan",
    _A.RECOVER: "it was not reported lost or stolen",
    _A.BACK_FROM_REPAIR: "it is not in repair",
}


def _refusal_sentence(current: TabletState, action: Action) -> str:
    opening = f"A tablet that is {_STATE_WORDS[current]} cannot be {_ACTION_PARTICIPLES[action]}"
    hint = _hint(current, action)
    if hint is not None:
        return f"{opening}: {hint}."
    return f"{opening}. Allowed now: {', '.join(allowed_actions(current))}."


def _hint(current: TabletState, action: Action) -> str | None:
    target = _target(action)
    if current is TabletState.LOANED and action is Action.LOAN:
        return "it is already on loan to a patient; pick a tablet that is ready to loan"
    if current is target and action not in _NOT_REPEATS:
        return f"it is already {_STATE_WORDS[current]}"
    if current is TabletState.RETIRED:
        return "a retired tablet has left the fleet for good"
    if action is Action.RETURN and current in (TabletState.LOST, TabletState.STOLEN):
        return "record it as recovered instead; it will then wait for its wipe"
    for alternative in _ENTRY_ACTIONS:
        if TRANSITIONS.get((current, alternative)) is target:
            return f"{_ACTION_STEPS[alternative]} instead"
    if action in _STEP_HINTED_ACTIONS:
        steps = _routine_steps_until_allowed(current, action)
        if steps:
            return f"{_join_steps(steps)} first"
    return _NOT_A_SOURCE_HINTS.get(action)


def _target(action: Action) -> TabletState:
    # Every action leads to one state, whatever state it starts from.
    return next(target for (_, a), target in TRANSITIONS.items() if a is action)


def _routine_steps_until_allowed(current: TabletState, action: Action) -> tuple[Action, ...]:
    """The shortest routine steps after which ``action`` is allowed; empty when there are none."""
    queue: deque[tuple[TabletState, tuple[Action, ...]]] = deque([(current, ())])
    seen = {current}
    while queue:
        state, steps = queue.popleft()
        if (state, action) in TRANSITIONS:
            return steps
        for step in _ROUTINE_STEPS:
            following = TRANSITIONS.get((state, step))
            if following is not None and following not in seen:
                seen.add(following)
                queue.append((following, (*steps, step)))
    return ()


def _join_steps(steps: tuple[Action, ...]) -> str:
    words = [_ACTION_STEPS[step] for step in steps]
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])}, then {words[-1]}"


# --- Serial numbers ----------------------------------------------------------------------------------------
#
# A manufacturer's serial number is not case-significant: ``r52w70abcde`` typed at the desk is the tablet
# registered as ``R52W70ABCDE``. It is kept, compared and shown in one form, upper case, so that a second
# registration in another case is the duplicate it is (the database refuses any other form: migration 003).

SERIAL_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
"""ASCII letters (either case), digits and ``. _ / -``, 64 at most, starting with a letter or a digit; no
whitespace (refused, not trimmed)."""


_SERIAL = re.compile(SERIAL_PATTERN)


def canonical_serial(serial: str) -> str:
    """The one form a serial number is kept in: upper case. The pattern is checked first, on the value as typed:
    it is ASCII, where upper-casing changes letters only (``"ß".upper()`` is ``"SS"``, so it is refused)."""
    if not _SERIAL.match(serial):
        raise PydanticCustomError(
            "serial_number",
            "A serial number is 1 to 64 letters (A-Z, either case), digits and . _ / -, starting with a letter "
            "or a digit, with no spaces, as printed on the device",
        )
    return serial.upper()


SerialNumber = Annotated[
    str,
    # The pattern is in the schema for client developers, and checked by canonical_serial with a sentence.
    Field(
        json_schema_extra={"pattern": SERIAL_PATTERN},
        description="Not case-significant: kept, compared and shown in upper case.",
    ),
    AfterValidator(canonical_serial),
]
"""A manufacturer's serial number (a tablet's, an accessory's) as typed, checked against ``SERIAL_PATTERN`` then
put in its canonical form: ``r52w-70ab`` is ``R52W-70AB``."""


# --- Kit and return ----------------------------------------------------------------------------------------


class Accessory(StrEnum):
    """What is handed over with the tablet; each piece is checked back in on return (chargers go missing)."""

    CHARGER = "charger"
    CABLE = "cable"
    CASE = "case"
    SIM = "sim"
    MANUAL = "manual"


def missing_accessories(handed_over: Iterable[Accessory], returned: Iterable[Accessory]) -> frozenset[Accessory]:
    """Accessories handed over with the loan but not brought back (extras brought back are not counted)."""
    return frozenset(handed_over) - frozenset(returned)


# A list of accessories (registered with a tablet, handed over with a loan, checked back in) names each piece
# once, and only pieces that are there to name: the API refuses the list otherwise (HTTP 422).


def repeated_accessories(listed: Iterable[Accessory]) -> tuple[Accessory, ...]:
    """The accessories listed more than once, in ``Accessory`` declaration order; empty when each is listed once."""
    seen: set[Accessory] = set()
    repeated: set[Accessory] = set()
    for accessory in listed:
        (repeated if accessory in seen else seen).add(accessory)
    return tuple(accessory for accessory in Accessory if accessory in repeated)


def accessories_outside(listed: Iterable[Accessory], kit: Iterable[str]) -> tuple[Accessory, ...]:
    """The accessories listed that are not in ``kit`` (a tablet's registered accessories, what a loan handed
    over), each once, in ``Accessory`` declaration order; empty when all of them are in it. ``kit`` may be the
    database's plain strings: an ``Accessory`` is equal to its value."""
    outside = frozenset(listed) - frozenset(kit)
    return tuple(accessory for accessory in Accessory if accessory in outside)


class ReturnChannel(StrEnum):
    DAY_HOSPITAL = "day_hospital"  # at a chemotherapy session: the natural point, the patient is there anyway
    POST = "post"
    COLLECTED = "collected"


class TabletCondition(StrEnum):
    """The tablet's condition as it comes back, checked at the desk: the next patient's loan depends on it (a damaged
    tablet goes to repair, or at least is not handed over as if new). A code from a short list, so that it can be
    counted and shown in any language; what exactly is damaged goes in ``ConditionNote``."""

    GOOD = "good"
    WORN = "worn"  # scratches, a tired case: still fine to loan
    DAMAGED = "damaged"  # cracked screen, bent, liquid: to look at before the next loan


CONDITION_NOTE_MAX: Final = 200
"""A note on the condition says what is damaged ("écran fissuré en bas à droite"), on one line of the receipt."""


def condition_note(note: str) -> str:
    """The note as kept: without the spaces around it; one line of printable characters, ``CONDITION_NOTE_MAX`` at
    most. Refused (not cut) otherwise: a note cut short could say something else."""
    kept = note.strip()
    if not kept:
        raise PydanticCustomError(
            "condition_note",
            "A note on the tablet's condition cannot be blank: say what is worn or damaged, or leave the note out",
        )
    if len(kept) > CONDITION_NOTE_MAX:
        raise PydanticCustomError(
            "condition_note",
            "A note on the tablet's condition is {max} characters at most (this one has {length}): shorten it",
            {"max": CONDITION_NOTE_MAX, "length": len(kept)},
        )
    if any(unicodedata.category(c).startswith("C") for c in kept):
        raise PydanticCustomError(
            "condition_note",
            "A note on the tablet's condition is one line of text, without line breaks or control characters",
        )
    return kept


ConditionNote = Annotated[
    str,
    Field(
        json_schema_extra={"minLength": 1, "maxLength": CONDITION_NOTE_MAX},
        description="What is worn or damaged, on one line (printed on the patient's receipt): never a name or "
        "anything about the patient.",
    ),
    AfterValidator(condition_note),
]


def condition_refusal(condition: TabletCondition | None, note: str | None) -> str | None:
    """Why a return's condition cannot be recorded as given, or ``None``: a note says what is worn or damaged, so it
    comes with the condition it details."""
    if note is not None and condition is None:
        return (
            "A note on the tablet's condition comes with the condition itself: add condition (good, worn or damaged), "
            "or leave the note out."
        )
    return None


# --- A tablet back damaged ---------------------------------------------------------------------------------
#
# A return recorded as damaged is a promise to look at the tablet before the next patient gets it: until someone
# records that it was looked at, the tablet waits on the fleet manager (its own count, a mark on its row) and cannot
# be made ready. Looking at it is either confirmed when it is made ready ("checked, and repaired if needed") or is
# sending it to repair (the repairer looks at it; it comes back through a wipe as any repaired tablet does).


class DamageCheck(StrEnum):
    """How a damaged return was looked at, as recorded on its loan with who and when."""

    CHECKED = "checked"  # confirmed at "make ready": checked, and repaired where needed
    SENT_TO_REPAIR = "sent_to_repair"


AWAITING_CHECK: Final = frozenset({_S.RETURNED, _S.WIPE_PENDING, _S.WIPED})
"""Where a tablet back damaged and not yet looked at waits: in hand, on its way to "ready" (which it cannot reach
unchecked). Lost or stolen it is out of reach (found again, it waits here again); in repair it is being looked at;
retired it will never be loaned."""


def damage_check_due(state: TabletState, last_return_damaged_unchecked: bool) -> bool:
    """Whether the tablet waits for someone to record that it was looked at: its last loan came back damaged, nobody
    has recorded a check of it, and the tablet is in hand on its way to its next loan (``AWAITING_CHECK``)."""
    return last_return_damaged_unchecked and state in AWAITING_CHECK


class DamageNotChecked(Exception):
    """ "Make ready" asked of a tablet back damaged that nobody confirmed was checked (HTTP 409)."""

    def __init__(self) -> None:
        super().__init__(
            "This tablet came back damaged from its last loan and nobody has recorded that it was checked: confirm "
            'that it was checked, and repaired if needed, by making it ready with {"checked": true}; or send it to '
            "repair."
        )


def damage_check(
    current: TabletState, action: Action, *, last_return_damaged_unchecked: bool, confirmed: bool
) -> DamageCheck | None:
    """What ``action`` (legal from ``current``) records about the tablet's damaged return: ``None`` when nothing
    (no check due, or a step that does not look at the tablet). Raises ``DamageNotChecked`` for a make-ready that
    does not confirm the check a tablet waits for; a confirmation where none is due records nothing."""
    if not damage_check_due(current, last_return_damaged_unchecked):
        return None
    if action is Action.SEND_TO_REPAIR:
        return DamageCheck.SENT_TO_REPAIR
    if action is Action.MAKE_READY:
        if not confirmed:
            raise DamageNotChecked()
        return DamageCheck.CHECKED
    return None


def checked_refusal(action: Action, confirmed: bool) -> str | None:
    """Why a step's ``checked`` cannot be taken, or ``None``: it confirms a check when the tablet is made ready, and
    says nothing of any other step (recorded there, it would claim a check nobody was asked for)."""
    if confirmed and action is not Action.MAKE_READY:
        return (
            '"checked" confirms that a tablet back damaged was checked when it is made ready: leave it out of '
            f"{action.value}."
        )
    return None


class WipeMethod(StrEnum):
    FACTORY_RESET = "factory_reset"
    MDM_REMOTE_WIPE = "mdm_remote_wipe"
    REIMAGED = "reimaged"


# --- The return receipt ------------------------------------------------------------------------------------
#
# The patient who brings a tablet back gets a receipt saying that their data on it was erased: by the first wipe
# recorded after their return and before the tablet's next loan. A later wipe (after the next patient used it) says
# nothing about their data; an earlier one (the previous patient's) even less.


class Wiped(Protocol):
    @property
    def wiped_at(self) -> datetime: ...


_Wipe = TypeVar("_Wipe", bound=Wiped)


def wipe_after_return(returned_at: datetime, next_loaned_at: datetime | None, wipes: Iterable[_Wipe]) -> _Wipe | None:
    """The wipe that erased what a loan left on the tablet: the first of ``wipes`` (the tablet's) dated at or after
    ``returned_at`` and before ``next_loaned_at`` (the tablet's next loan, if any); ``None`` while none is recorded.
    Of two wipes at the same instant, the first given."""
    _require_aware(returned_at=returned_at, next_loaned_at=next_loaned_at)
    chosen: _Wipe | None = None
    for wipe in wipes:
        _require_aware(wiped_at=wipe.wiped_at)
        if wipe.wiped_at < returned_at or (next_loaned_at is not None and wipe.wiped_at >= next_loaned_at):
            continue
        if chosen is None or wipe.wiped_at < chosen.wiped_at:
            chosen = wipe
    return chosen


# --- Loan dates --------------------------------------------------------------------------------------------

LOAN_LENGTH_DEFAULT: Final = 1
"""Default loan length, in calendar years: "one year, or the end of the treatment, whichever comes first".

Years, not a ``timedelta`` of 365 days, so that a tablet loaned on 3 March is due back on 3 March whatever the
leap years in between; a loan starting on 29 February is due on 28 February.
"""


def default_expected_return(loaned_on: date, treatment_ends_on: date | None = None) -> date:
    """The date the tablet is expected back: one year after the loan, or the end of treatment if earlier."""
    one_year_later = _add_years(loaned_on, LOAN_LENGTH_DEFAULT)
    if treatment_ends_on is None:
        return one_year_later
    if treatment_ends_on < loaned_on:
        raise ValueError(
            f"The treatment end date ({treatment_ends_on.isoformat()}) is before the loan date "
            f"({loaned_on.isoformat()}); check both dates."
        )
    return min(one_year_later, treatment_ends_on)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def loan_status(
    expected_return_on: date, today: date, soon: timedelta = timedelta(days=30)
) -> Literal["overdue", "due_soon", "on_time"]:
    """Where a loan stands: overdue from the day after the expected return, due soon within ``soon`` of it."""
    if soon < timedelta(0):
        raise ValueError(f"The due-soon window must not be negative, got {soon}.")
    if today > expected_return_on:
        return "overdue"
    if expected_return_on - today <= soon:
        return "due_soon"
    return "on_time"


# --- Silent tablets ----------------------------------------------------------------------------------------
#
# "Not switched on between two chemotherapy sessions" is the signal that matters (domains.md §1.3 point 6):
# a long silence is reported in any case, a shorter one only when a questionnaire is due soon, which is when
# the patient needs the tablet. Each silence is reported once; the next heartbeat starts a new one.


@dataclass(frozen=True)
class SilencePolicy:
    threshold: timedelta = timedelta(days=7)
    """A tablet silent this long is reported whatever the calendar."""
    due_window: timedelta = timedelta(days=2)
    """How far ahead we look for a questionnaire that falls due."""
    due_silence: timedelta = timedelta(days=2)
    """How long a tablet must have been silent to be reported when a questionnaire is due within ``due_window``."""

    def __post_init__(self) -> None:
        for name in ("threshold", "due_window", "due_silence"):
            value = getattr(self, name)
            if value <= timedelta(0):
                raise ValueError(f"SilencePolicy.{name} must be a positive duration, got {value}.")


class SilenceReason(StrEnum):
    LONG_SILENCE = "long_silence"
    QUESTIONNAIRE_DUE = "questionnaire_due"


@dataclass(frozen=True)
class Silence:
    since: datetime
    """Start of the silence: the last heartbeat after the loan, or the loan itself."""
    reason: SilenceReason
    silent_for: timedelta


def silence_since(loaned_at: datetime, last_seen_at: datetime | None) -> datetime:
    """When the current silence started: a heartbeat from before the loan (during provisioning) does not count."""
    _require_aware(loaned_at=loaned_at, last_seen_at=last_seen_at)
    if last_seen_at is None:
        return loaned_at
    return max(loaned_at, last_seen_at)


def detect_silence(
    now: datetime,
    *,
    loaned_at: datetime,
    last_seen_at: datetime | None,
    reported_since: datetime | None,
    next_questionnaire_due: datetime | None,
    policy: SilencePolicy = SilencePolicy(),  # frozen, so one shared default is safe
) -> Silence | None:
    """The silence to report for a loaned tablet now, or ``None``.

    ``reported_since`` is the ``since`` of the last silence reported for this loan: the same silence is not
    reported twice, however long it lasts.
    """
    _require_aware(
        now=now,
        loaned_at=loaned_at,
        last_seen_at=last_seen_at,
        reported_since=reported_since,
        next_questionnaire_due=next_questionnaire_due,
    )
    since = silence_since(loaned_at, last_seen_at)
    if reported_since == since:
        return None
    silent_for = now - since
    if silent_for >= policy.threshold:
        return Silence(since, SilenceReason.LONG_SILENCE, silent_for)
    if (
        next_questionnaire_due is not None
        and now <= next_questionnaire_due <= now + policy.due_window
        and silent_for >= policy.due_silence
    ):
        return Silence(since, SilenceReason.QUESTIONNAIRE_DUE, silent_for)
    return None


def _require_aware(**moments: datetime | None) -> None:
    # A naive datetime compared with an aware one raises TypeError deep inside; worse, two naive ones in
    # different zones compare silently wrong. Refuse them at the door with the argument's name.
    for name, moment in moments.items():
        if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
            raise ValueError(f"{name} must be a timezone-aware datetime, got the naive {moment.isoformat()}.")


# --- Heartbeats --------------------------------------------------------------------------------------------


class HeartbeatReading(BaseModel):
    """What the tablet's app sends every time it is switched on, then periodically while it is in use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    battery_percent: int = Field(ge=0, le=100, strict=True, description="Battery charge, in percent (0 to 100).")
    app_version: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[0-9A-Za-z.+_-]+$",
        description="Version of the tablet app, e.g. 1.4.2 or 1.5.0-rc.1+build.7.",
    )
    last_used_at: OffsetDatetime | None = Field(
        default=None, description="When the patient last used the app, by the tablet's clock; absent if never."
    )
    sent_at: OffsetDatetime = Field(
        description="When the tablet sent this reading, by its own clock (with its UTC offset); it may lag "
        "behind when the reading was queued while the tablet was offline."
    )


HEARTBEAT_CLOCK_TOLERANCE: Final = timedelta(days=1)


def clock_skew_ok(sent_at: datetime, received_at: datetime, tolerance: timedelta = HEARTBEAT_CLOCK_TOLERANCE) -> bool:
    """Whether a heartbeat's ``sent_at`` is believable: not more than ``tolerance`` after we received it.

    A ``sent_at`` in the past is always fine (readings queued while offline arrive late); one far in the future
    means a wrong tablet clock, and would make the tablet look alive for days, so the API refuses it.
    """
    _require_aware(sent_at=sent_at, received_at=received_at)
    if tolerance < timedelta(0):
        raise ValueError(f"The clock tolerance must not be negative, got {tolerance}.")
    return sent_at - received_at <= tolerance


# --- Fleet figures -----------------------------------------------------------------------------------------


def utilisation(loaned_days: float, available_days: float) -> float | None:
    """Share of the fleet's available time spent on loan (0 to 1); ``None`` when nothing was available.

    ``available_days`` is summed over tablets (tablet-days in service over the period), ``loaned_days`` likewise.
    """
    if loaned_days < 0 or available_days < 0:
        raise ValueError(f"Days cannot be negative (loaned {loaned_days}, available {available_days}).")
    if available_days == 0:
        return None
    if loaned_days > available_days:
        raise ValueError(
            f"The fleet cannot be on loan ({loaned_days} days) longer than it was available ({available_days} days)."
        )
    return loaned_days / available_days
