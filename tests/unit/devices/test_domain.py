"""The tablet fleet's rules (domains.md §1): lifecycle, kit, loan dates, silent tablets, heartbeats, figures."""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.devices.domain import (
    AWAITING_CHECK,
    CONDITION_NOTE_MAX,
    LOAN_LENGTH_DEFAULT,
    RELEASING_ACTIONS,
    TRANSITIONS,
    Accessory,
    Action,
    ConditionNote,
    DamageCheck,
    DamageNotChecked,
    HeartbeatReading,
    IllegalTransition,
    SerialNumber,
    Silence,
    SilencePolicy,
    SilenceReason,
    TabletCondition,
    TabletState,
    accessories_outside,
    allowed_actions,
    checked_refusal,
    clock_skew_ok,
    condition_refusal,
    damage_check,
    damage_check_due,
    default_expected_return,
    detect_silence,
    ends_loan,
    loan_status,
    missing_accessories,
    next_state,
    repeated_accessories,
    silence_since,
    utilisation,
    wipe_after_return,
)

S = TabletState
A = Action

# --- Lifecycle ---------------------------------------------------------------------------------------------

# Written out by hand from the specification, on purpose not derived from TRANSITIONS.
EXPECTED: dict[tuple[TabletState, Action], TabletState] = {
    (S.PENDING_PROVISIONING, A.PROVISION): S.READY,
    (S.PENDING_PROVISIONING, A.RETIRE): S.RETIRED,
    (S.READY, A.LOAN): S.LOANED,
    (S.READY, A.REPORT_LOST): S.LOST,
    (S.READY, A.REPORT_STOLEN): S.STOLEN,
    (S.READY, A.SEND_TO_REPAIR): S.IN_REPAIR,
    (S.READY, A.RETIRE): S.RETIRED,
    (S.LOANED, A.RETURN): S.RETURNED,
    (S.LOANED, A.REPORT_LOST): S.LOST,
    (S.LOANED, A.REPORT_STOLEN): S.STOLEN,
    (S.RETURNED, A.REQUEST_WIPE): S.WIPE_PENDING,
    (S.RETURNED, A.RECORD_WIPE): S.WIPED,
    (S.RETURNED, A.REPORT_LOST): S.LOST,
    (S.RETURNED, A.REPORT_STOLEN): S.STOLEN,
    (S.RETURNED, A.SEND_TO_REPAIR): S.IN_REPAIR,
    (S.RETURNED, A.RETIRE): S.RETIRED,
    (S.WIPE_PENDING, A.RECORD_WIPE): S.WIPED,
    (S.WIPE_PENDING, A.REPORT_LOST): S.LOST,
    (S.WIPE_PENDING, A.REPORT_STOLEN): S.STOLEN,
    (S.WIPE_PENDING, A.SEND_TO_REPAIR): S.IN_REPAIR,
    (S.WIPE_PENDING, A.RETIRE): S.RETIRED,
    (S.WIPED, A.MAKE_READY): S.READY,
    (S.WIPED, A.REPORT_LOST): S.LOST,
    (S.WIPED, A.REPORT_STOLEN): S.STOLEN,
    (S.WIPED, A.SEND_TO_REPAIR): S.IN_REPAIR,
    (S.WIPED, A.RETIRE): S.RETIRED,
    (S.LOST, A.RECOVER): S.WIPE_PENDING,
    (S.LOST, A.RETIRE): S.RETIRED,
    (S.STOLEN, A.RECOVER): S.WIPE_PENDING,
    (S.STOLEN, A.RETIRE): S.RETIRED,
    (S.IN_REPAIR, A.REPORT_LOST): S.LOST,
    (S.IN_REPAIR, A.REPORT_STOLEN): S.STOLEN,
    (S.IN_REPAIR, A.BACK_FROM_REPAIR): S.WIPE_PENDING,
    (S.IN_REPAIR, A.RETIRE): S.RETIRED,
}

ALL_PAIRS = list(itertools.product(TabletState, Action))


def test_the_expected_table_covers_the_whole_specification() -> None:
    assert len(ALL_PAIRS) == 120 and len(EXPECTED) == 34


@pytest.mark.parametrize(("current", "action"), ALL_PAIRS, ids=[f"{s}-{a}" for s, a in ALL_PAIRS])
def test_every_state_and_action(current: TabletState, action: Action) -> None:
    if (current, action) in EXPECTED:
        assert next_state(current, action) is EXPECTED[(current, action)]
    else:
        with pytest.raises(IllegalTransition) as refused:
            next_state(current, action)
        assert refused.value.current is current and refused.value.action is action
        sentence = str(refused.value)
        assert sentence.startswith("A tablet that is ") and sentence.endswith(".")


def test_transitions_holds_exactly_the_legal_pairs() -> None:
    assert dict(TRANSITIONS) == EXPECTED


def _paths(start: TabletState, max_length: int) -> list[list[TabletState]]:
    """Every sequence of states reachable from ``start`` in at most ``max_length`` actions (BFS)."""
    paths: list[list[TabletState]] = []
    queue: deque[list[TabletState]] = deque([[start]])
    while queue:
        path = queue.popleft()
        paths.append(path)
        if len(path) - 1 < max_length:
            queue.extend(
                [*path, following] for following in (next_state(path[-1], a) for a in allowed_actions(path[-1]))
            )
    return paths


@pytest.mark.parametrize("start", [S.RETURNED, S.LOST, S.STOLEN, S.IN_REPAIR, S.WIPE_PENDING])
def test_a_tablet_that_left_our_hands_is_never_loaned_again_without_a_wipe(start: TabletState) -> None:
    # After a return (or a loss, theft, repair) the next loan must be preceded by a wipe, on every path.
    left_our_hands = {S.RETURNED, S.LOST, S.STOLEN, S.IN_REPAIR}
    reaches_a_loan = 0
    for path in _paths(start, max_length=6):
        wiped_since = False
        for state in path:
            if state in left_our_hands:
                wiped_since = False
            elif state is S.WIPED:
                wiped_since = True
            elif state is S.LOANED:
                assert wiped_since, f"loaned without a wipe: {' -> '.join(path)}"
                reaches_a_loan += 1
    assert reaches_a_loan > 0  # the property is not vacuous


def test_the_returned_path_to_the_next_loan_goes_through_wiped() -> None:
    paths_to_loan = [path for path in _paths(S.RETURNED, max_length=6) if path[-1] is S.LOANED]
    assert paths_to_loan and all(S.WIPED in path[1:] for path in paths_to_loan)
    shortest = min(paths_to_loan, key=len)
    assert shortest == [S.RETURNED, S.WIPED, S.READY, S.LOANED]


def test_make_ready_is_legal_only_from_wiped() -> None:
    assert [s for s in TabletState if A.MAKE_READY in allowed_actions(s)] == [S.WIPED]


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (S.LOANED, (A.RETURN, A.REPORT_LOST, A.REPORT_STOLEN)),
        (S.RETURNED, (A.REQUEST_WIPE, A.RECORD_WIPE, A.REPORT_LOST, A.REPORT_STOLEN, A.SEND_TO_REPAIR, A.RETIRE)),
        (S.LOST, (A.RECOVER, A.RETIRE)),
        (S.RETIRED, ()),
    ],
)
def test_allowed_actions_in_declaration_order(current: TabletState, expected: tuple[Action, ...]) -> None:
    assert allowed_actions(current) == expected


@pytest.mark.parametrize(
    ("current", "action", "sentence"),
    [
        # loan when not ready
        (S.RETURNED, A.LOAN, "A tablet that is returned cannot be loaned: record its wipe, then make it ready first."),
        (
            S.PENDING_PROVISIONING,
            A.LOAN,
            "A tablet that is waiting to be provisioned cannot be loaned: provision it first.",
        ),
        (S.WIPED, A.LOAN, "A tablet that is wiped cannot be loaned: make it ready first."),
        (
            S.LOST,
            A.LOAN,
            "A tablet that is reported lost cannot be loaned: record it as recovered, record its wipe, "
            "then make it ready first.",
        ),
        (
            S.LOANED,
            A.LOAN,
            "A tablet that is on loan cannot be loaned: it is already on loan to a patient; "
            "pick a tablet that is ready to loan.",
        ),
        # return when not loaned
        (S.READY, A.RETURN, "A tablet that is ready to loan cannot be returned: it is not on loan."),
        (S.RETURNED, A.RETURN, "A tablet that is returned cannot be returned: it is already returned."),
        (
            S.STOLEN,
            A.RETURN,
            "A tablet that is reported stolen cannot be returned: record it as recovered instead; "
            "it will then wait for its wipe.",
        ),
        # wipe when loaned
        (S.LOANED, A.RECORD_WIPE, "A tablet that is on loan cannot be recorded as wiped: record its return first."),
        (S.LOANED, A.REQUEST_WIPE, "A tablet that is on loan cannot be queued for a wipe: record its return first."),
        # make ready when not wiped
        (S.RETURNED, A.MAKE_READY, "A tablet that is returned cannot be made ready: record its wipe first."),
        (
            S.LOANED,
            A.MAKE_READY,
            "A tablet that is on loan cannot be made ready: record its return, then record its wipe first.",
        ),
        (S.READY, A.MAKE_READY, "A tablet that is ready to loan cannot be made ready: it is already ready to loan."),
        # other cases
        (S.LOANED, A.RETIRE, "A tablet that is on loan cannot be retired: record its return first."),
        (
            S.IN_REPAIR,
            A.RECOVER,
            "A tablet that is in repair cannot be recorded as recovered: record its return from repair instead.",
        ),
        (
            S.RETIRED,
            A.LOAN,
            "A tablet that is retired cannot be loaned: a retired tablet has left the fleet for good.",
        ),
        (
            S.LOANED,
            A.SEND_TO_REPAIR,
            "A tablet that is on loan cannot be sent to repair. Allowed now: return, report_lost, report_stolen.",
        ),
    ],
)
def test_refusals_tell_the_fleet_manager_what_to_do(current: TabletState, action: Action, sentence: str) -> None:
    with pytest.raises(IllegalTransition) as refused:
        next_state(current, action)
    assert str(refused.value) == sentence


@pytest.mark.parametrize(("current", "action"), ALL_PAIRS, ids=[f"{s}-{a}" for s, a in ALL_PAIRS])
def test_only_releasing_actions_from_loaned_end_a_loan(current: TabletState, action: Action) -> None:
    expected = current is S.LOANED and action in {A.RETURN, A.REPORT_LOST, A.REPORT_STOLEN}
    assert ends_loan(current, action) is expected


def test_releasing_actions() -> None:
    assert frozenset({A.RETURN, A.REPORT_LOST, A.REPORT_STOLEN}) == RELEASING_ACTIONS


# --- Kit -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handed_over", "returned", "missing"),
    [
        (set(Accessory), set(Accessory), set()),
        (set(Accessory), {Accessory.CASE, Accessory.SIM, Accessory.MANUAL}, {Accessory.CHARGER, Accessory.CABLE}),
        ([Accessory.CHARGER], [], [Accessory.CHARGER]),
        ([], [Accessory.CHARGER], []),  # an extra brought back is not "negative missing"
        ([Accessory.CHARGER, Accessory.CHARGER], [Accessory.CHARGER], []),
    ],
)
def test_missing_accessories(handed_over: list[Accessory], returned: list[Accessory], missing: list[Accessory]) -> None:
    assert missing_accessories(handed_over, returned) == frozenset(missing)


def test_missing_accessories_takes_any_iterable() -> None:
    assert missing_accessories(iter([Accessory.SIM, Accessory.CASE]), (a for a in [Accessory.CASE])) == {Accessory.SIM}


CH, CA, CS, SIM, MAN = Accessory.CHARGER, Accessory.CABLE, Accessory.CASE, Accessory.SIM, Accessory.MANUAL


@pytest.mark.parametrize(
    ("listed", "repeated"),
    [
        ([], ()),
        (list(Accessory), ()),
        ([CH, CH], (CH,)),
        ([CH, CH, CH], (CH,)),  # named once however often it is repeated
        ([MAN, CA, MAN, SIM, CA], (CA, MAN)),  # in declaration order, as the detail sentence lists them
    ],
)
def test_repeated_accessories(listed: list[Accessory], repeated: tuple[Accessory, ...]) -> None:
    assert repeated_accessories(listed) == repeated
    assert repeated_accessories(iter(listed)) == repeated


@pytest.mark.parametrize(
    ("listed", "kit", "outside"),
    [
        ([], [], ()),
        ([], [CH], ()),
        ([CH, MAN], [CH, CA, MAN], ()),
        ([CH, SIM], [CH, CA, MAN], (SIM,)),
        ([SIM, CS, CH, SIM], [CH], (CS, SIM)),  # each once, in declaration order
        ([CH], [], (CH,)),
    ],
)
def test_accessories_outside_the_kit(
    listed: list[Accessory], kit: list[Accessory], outside: tuple[Accessory, ...]
) -> None:
    assert accessories_outside(listed, kit) == outside


def test_accessories_outside_a_kit_read_from_the_database() -> None:
    # A loan's accessories come back from PostgreSQL as plain strings (the service passes them as they are), not
    # the Accessory the signature names: on purpose here.
    assert accessories_outside([CH, SIM], ["cable", "charger", "manual"]) == (SIM,)


# --- Loan dates ----------------------------------------------------------------------------------------------


def test_the_default_loan_is_one_year() -> None:
    assert LOAN_LENGTH_DEFAULT == 1
    assert default_expected_return(date(2026, 3, 3)) == date(2027, 3, 3)
    assert default_expected_return(date(2027, 3, 3)) == date(2028, 3, 3)  # across a leap day: still the same date


def test_a_loan_on_29_february_is_due_on_28_february() -> None:
    assert default_expected_return(date(2028, 2, 29)) == date(2029, 2, 28)


@pytest.mark.parametrize(
    ("treatment_ends_on", "expected"),
    [
        (date(2026, 9, 1), date(2026, 9, 1)),  # earlier: the end of treatment
        (date(2026, 3, 3), date(2026, 3, 3)),  # the loan day itself is allowed
        (date(2027, 3, 3), date(2027, 3, 3)),  # same day as the one-year date
        (date(2028, 1, 1), date(2027, 3, 3)),  # later: one year
        (None, date(2027, 3, 3)),
    ],
)
def test_the_end_of_treatment_brings_the_return_forward(treatment_ends_on: date | None, expected: date) -> None:
    assert default_expected_return(date(2026, 3, 3), treatment_ends_on) == expected


def test_a_treatment_ending_before_the_loan_is_refused() -> None:
    with pytest.raises(ValueError, match=r"treatment end date \(2026-03-02\) is before the loan date \(2026-03-03\)"):
        default_expected_return(date(2026, 3, 3), date(2026, 3, 2))


@pytest.mark.parametrize(
    ("today", "status"),
    [
        (date(2026, 5, 1), "on_time"),
        (date(2026, 5, 31), "on_time"),  # 31 days before
        (date(2026, 6, 1), "due_soon"),  # exactly 30 days before
        (date(2026, 7, 1), "due_soon"),  # the expected day itself
        (date(2026, 7, 2), "overdue"),  # the day after
    ],
)
def test_loan_status_boundaries(today: date, status: str) -> None:
    assert loan_status(date(2026, 7, 1), today) == status


def test_loan_status_with_another_window() -> None:
    assert loan_status(date(2026, 7, 1), date(2026, 6, 24), soon=timedelta(days=7)) == "due_soon"
    assert loan_status(date(2026, 7, 1), date(2026, 6, 23), soon=timedelta(days=7)) == "on_time"
    with pytest.raises(ValueError, match="must not be negative"):
        loan_status(date(2026, 7, 1), date(2026, 6, 23), soon=timedelta(days=-1))


# --- Silent tablets ----------------------------------------------------------------------------------------

LOANED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)
FAR_AWAY = NOW + timedelta(days=30)


def _detect(
    *,
    last_seen_at: datetime | None,
    reported_since: datetime | None = None,
    next_questionnaire_due: datetime | None = None,
    now: datetime = NOW,
    loaned_at: datetime = LOANED_AT,
) -> Silence | None:
    return detect_silence(
        now,
        loaned_at=loaned_at,
        last_seen_at=last_seen_at,
        reported_since=reported_since,
        next_questionnaire_due=next_questionnaire_due,
    )


def test_silence_starts_at_the_later_of_loan_and_last_heartbeat() -> None:
    assert silence_since(LOANED_AT, None) == LOANED_AT
    assert silence_since(LOANED_AT, LOANED_AT + timedelta(hours=1)) == LOANED_AT + timedelta(hours=1)
    assert silence_since(LOANED_AT, LOANED_AT - timedelta(days=3)) == LOANED_AT  # provisioning heartbeat


def test_below_the_threshold_nothing_is_reported() -> None:
    assert _detect(last_seen_at=NOW - timedelta(days=7) + timedelta(seconds=1)) is None


def test_at_the_threshold_a_long_silence_is_reported() -> None:
    last_seen = NOW - timedelta(days=7)
    assert _detect(last_seen_at=last_seen) == Silence(last_seen, SilenceReason.LONG_SILENCE, timedelta(days=7))


def test_a_silence_is_reported_once() -> None:
    last_seen = NOW - timedelta(days=9)
    assert _detect(last_seen_at=last_seen, reported_since=last_seen) is None
    # Even later, and with a questionnaire due, it is the same silence.
    later = NOW + timedelta(days=20)
    assert _detect(last_seen_at=last_seen, reported_since=last_seen, now=later, next_questionnaire_due=later) is None


def test_a_new_heartbeat_makes_a_new_silence_reportable() -> None:
    first = NOW - timedelta(days=20)
    second = NOW - timedelta(days=8)  # the tablet came back to life after the first report, then fell silent again
    silence = _detect(last_seen_at=second, reported_since=first)
    assert silence is not None and silence.since == second and silence.reason is SilenceReason.LONG_SILENCE


def test_a_heartbeat_before_the_loan_is_ignored() -> None:
    # Seen during provisioning 10 days ago, loaned 3 days ago, never switched on since: not yet a long silence.
    loaned_at = NOW - timedelta(days=3)
    assert _detect(last_seen_at=NOW - timedelta(days=10), loaned_at=loaned_at) is None
    # Never seen at all since a loan 7 days ago: the loan is the start of the silence.
    loaned_at = NOW - timedelta(days=7)
    silence = _detect(last_seen_at=NOW - timedelta(days=10), loaned_at=loaned_at)
    assert silence == Silence(loaned_at, SilenceReason.LONG_SILENCE, timedelta(days=7))


@pytest.mark.parametrize(
    ("due_in", "reported"),
    [
        (timedelta(0), True),  # due right now
        (timedelta(days=1), True),
        (timedelta(days=2), True),  # edge of the window
        (timedelta(days=2, seconds=1), False),  # just outside
        (timedelta(days=5), False),
        (-timedelta(seconds=1), False),  # already past due: the questionnaire is no longer ahead of us
        (-timedelta(days=1), False),
    ],
)
def test_a_questionnaire_due_within_the_window(due_in: timedelta, reported: bool) -> None:
    last_seen = NOW - timedelta(days=3)
    silence = _detect(last_seen_at=last_seen, next_questionnaire_due=NOW + due_in)
    if reported:
        assert silence == Silence(last_seen, SilenceReason.QUESTIONNAIRE_DUE, timedelta(days=3))
    else:
        assert silence is None


@pytest.mark.parametrize(
    ("silent_for", "reported"),
    [(timedelta(days=2) - timedelta(seconds=1), False), (timedelta(days=2), True)],
)
def test_a_questionnaire_due_needs_a_short_silence_too(silent_for: timedelta, reported: bool) -> None:
    silence = _detect(last_seen_at=NOW - silent_for, next_questionnaire_due=NOW + timedelta(days=1))
    assert (silence is not None) is reported


def test_a_long_silence_takes_precedence_over_a_questionnaire_due() -> None:
    silence = _detect(last_seen_at=NOW - timedelta(days=8), next_questionnaire_due=NOW + timedelta(days=1))
    assert silence is not None and silence.reason is SilenceReason.LONG_SILENCE


def test_a_custom_policy() -> None:
    policy = SilencePolicy(threshold=timedelta(days=3), due_window=timedelta(days=1), due_silence=timedelta(hours=12))
    last_seen = NOW - timedelta(hours=13)
    silence = detect_silence(
        NOW,
        loaned_at=LOANED_AT,
        last_seen_at=last_seen,
        reported_since=None,
        next_questionnaire_due=NOW + timedelta(hours=20),
        policy=policy,
    )
    assert silence == Silence(last_seen, SilenceReason.QUESTIONNAIRE_DUE, timedelta(hours=13))


def test_datetimes_in_other_zones_are_compared_as_instants() -> None:
    paris = timezone(timedelta(hours=1))
    last_seen = (NOW - timedelta(days=7)).astimezone(paris)
    silence = _detect(last_seen_at=last_seen, reported_since=NOW - timedelta(days=7))
    assert silence is None  # same instant as the reported silence, written in another zone


@pytest.mark.parametrize("field", ["threshold", "due_window", "due_silence"])
@pytest.mark.parametrize("value", [timedelta(0), timedelta(days=-1)])
def test_a_policy_needs_positive_durations(field: str, value: timedelta) -> None:
    with pytest.raises(ValueError, match=f"SilencePolicy.{field} must be a positive duration"):
        SilencePolicy(**{field: value})


@pytest.mark.parametrize("naive", ["now", "loaned_at", "last_seen_at", "reported_since", "next_questionnaire_due"])
def test_naive_datetimes_are_refused(naive: str) -> None:
    moments: dict[str, Any] = {
        "now": NOW,
        "loaned_at": LOANED_AT,
        "last_seen_at": NOW - timedelta(days=1),
        "reported_since": NOW - timedelta(days=30),
        "next_questionnaire_due": NOW + timedelta(days=1),
    }
    moments[naive] = moments[naive].replace(tzinfo=None)
    now = moments.pop("now")
    with pytest.raises(ValueError, match=f"{naive} must be a timezone-aware datetime"):
        detect_silence(now, **moments)


def test_silence_since_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="loaned_at must be a timezone-aware datetime"):
        silence_since(LOANED_AT.replace(tzinfo=None), None)


# --- Heartbeats ----------------------------------------------------------------------------------------------

READING = {"battery_percent": 87, "app_version": "1.4.2", "sent_at": "2026-03-20T09:58:00+01:00"}


def test_a_heartbeat_reading() -> None:
    reading = HeartbeatReading.model_validate({**READING, "last_used_at": "2026-03-20T09:00:00+01:00"})
    assert reading.battery_percent == 87 and reading.app_version == "1.4.2"
    assert reading.sent_at == datetime(2026, 3, 20, 8, 58, tzinfo=UTC)
    assert reading.last_used_at == datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
    assert HeartbeatReading.model_validate(READING).last_used_at is None


@pytest.mark.parametrize("version", ["1", "1.5.0-rc.1+build.7", "2026_03", "x" * 40])
def test_good_app_versions(version: str) -> None:
    assert HeartbeatReading.model_validate({**READING, "app_version": version}).app_version == version


@pytest.mark.parametrize(
    "change",
    [
        {"battery_percent": 101},
        {"battery_percent": -1},
        {"app_version": ""},
        {"app_version": "1.4 beta"},
        {"app_version": "1.4/../2"},
        {"app_version": "x" * 41},
        {"sent_at": "2026-03-20T09:58:00"},  # no UTC offset: we could not tell when it was
        {"last_used_at": "2026-03-20T09:00:00"},
        {"imei": "356938035643809"},  # extra fields are refused, not silently stored
    ],
    ids=str,
)
def test_bad_heartbeat_readings(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        HeartbeatReading.model_validate({**READING, **change})


@pytest.mark.parametrize("field", ["sent_at", "last_used_at"])
@pytest.mark.parametrize(
    "unix_time",
    [b"1773997080", b"1773997080.5", b"-1", b"0", b'"1773997080"', b'"1773997080.5"', b'"+1773997080"', b'".5"'],
    ids=bytes.decode,
)
def test_a_unix_time_is_not_a_heartbeat_date(field: str, unix_time: bytes) -> None:
    # Lax pydantic read these as 20 March 2026 at 09:58 in Paris (or 1970): the tablet sends RFC 3339 date-times.
    fields = {"battery_percent": b"87", "app_version": b'"1.4.2"', "sent_at": b'"2026-03-20T09:58:00+01:00"'}
    fields[field] = unix_time
    body = b"{%s}" % b", ".join(b'"%s": %s' % (name.encode(), value) for name, value in fields.items())
    with pytest.raises(ValidationError) as refused:
        HeartbeatReading.model_validate_json(body)
    [error] = refused.value.errors()
    assert error["loc"] == (field,) and error["type"] == "datetime_type"
    assert "RFC 3339" in error["msg"] and "Unix time" in error["msg"]


@pytest.mark.parametrize(
    ("sent_at", "instant"),
    [
        ("2026-03-20T09:58:00+01:00", datetime(2026, 3, 20, 8, 58, tzinfo=UTC)),
        ("2026-03-20T08:58:00Z", datetime(2026, 3, 20, 8, 58, tzinfo=UTC)),
        ("2026-03-20t08:58:00.250z", datetime(2026, 3, 20, 8, 58, 0, 250000, tzinfo=UTC)),
        ("2026-03-20 09:58:00+01:00", datetime(2026, 3, 20, 8, 58, tzinfo=UTC)),
    ],
)
def test_heartbeat_dates_with_an_offset_are_read_as_before(sent_at: str, instant: datetime) -> None:
    body = b'{"battery_percent": 87, "app_version": "1.4.2", "sent_at": "%s"}' % sent_at.encode()
    assert HeartbeatReading.model_validate_json(body).sent_at == instant
    # From Python too, as a string or as an aware datetime.
    assert HeartbeatReading.model_validate({**READING, "sent_at": sent_at}).sent_at == instant
    assert HeartbeatReading.model_validate({**READING, "sent_at": instant}).sent_at == instant


def test_a_heartbeat_needs_sent_at() -> None:
    with pytest.raises(ValidationError):
        HeartbeatReading.model_validate({"battery_percent": 50, "app_version": "1.0"})


def test_a_heartbeat_reading_is_frozen() -> None:
    reading = HeartbeatReading.model_validate(READING)
    with pytest.raises(ValidationError):
        reading.battery_percent = 10  # type: ignore[misc]  # frozen, on purpose: the refusal is tested


@pytest.mark.parametrize(
    ("sent_after_receipt", "ok"),
    [
        (-timedelta(days=10), True),  # queued while offline
        (timedelta(0), True),
        (timedelta(hours=23), True),
        (timedelta(days=1), True),
        (timedelta(days=1, seconds=1), False),
    ],
)
def test_clock_skew(sent_after_receipt: timedelta, ok: bool) -> None:
    assert clock_skew_ok(NOW + sent_after_receipt, NOW) is ok


def test_clock_skew_with_another_tolerance_and_naive_datetimes() -> None:
    assert clock_skew_ok(NOW + timedelta(minutes=5), NOW, tolerance=timedelta(minutes=5))
    assert not clock_skew_ok(NOW + timedelta(minutes=6), NOW, tolerance=timedelta(minutes=5))
    with pytest.raises(ValueError, match="sent_at must be a timezone-aware datetime"):
        clock_skew_ok(NOW.replace(tzinfo=None), NOW)


# --- Fleet figures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loaned_days", "available_days", "expected"),
    [(0, 0, None), (0, 100, 0.0), (25, 100, 0.25), (100, 100, 1.0), (7.5, 30, 0.25)],
)
def test_utilisation(loaned_days: float, available_days: float, expected: float | None) -> None:
    assert utilisation(loaned_days, available_days) == expected


@pytest.mark.parametrize(("loaned_days", "available_days"), [(-1, 10), (1, -10), (11, 10)])
def test_utilisation_refuses_impossible_figures(loaned_days: float, available_days: float) -> None:
    with pytest.raises(ValueError):
        utilisation(loaned_days, available_days)


# --- Serial numbers ----------------------------------------------------------------------------------------

SERIAL = TypeAdapter(SerialNumber)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("R52W70ABCDE", "R52W70ABCDE"),
        ("r52w70abcde", "R52W70ABCDE"),
        ("r52W-70.ab/c_d", "R52W-70.AB/C_D"),
        ("0123456789", "0123456789"),
    ],
)
def test_a_serial_number_is_kept_in_upper_case_whatever_case_it_is_typed_in(typed: str, kept: str) -> None:
    assert SERIAL.validate_python(typed) == kept


@pytest.mark.parametrize(
    "typed",
    [
        "",
        " R52W70ABCDE",  # whitespace is refused, not trimmed: the pattern has never allowed it
        "R52W70ABCDE ",
        "R52W 70",
        "-R52W",  # starts with a letter or a digit
        "a" * 65,
        # Letters outside ASCII are refused before the upper-casing could turn them into ASCII ones ("SS", "FI").
        "stra\u00dfe",
        "\ufb01x1",
        "R52W\u0130",
    ],
)
def test_a_serial_number_outside_the_pattern_is_refused_in_any_case(typed: str) -> None:
    with pytest.raises(ValidationError):
        SERIAL.validate_python(typed)


# --- The wipe a return receipt states ----------------------------------------------------------------------------


@dataclass(frozen=True)
class W:
    proof: str
    wiped_at: datetime


RETURNED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NEXT_LOAN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_receipt_states_the_first_wipe_after_the_return_and_before_the_next_loan() -> None:
    before = W("previous patient", RETURNED - timedelta(days=30))
    at_return = W("at the desk", RETURNED)
    later = W("again after repair", RETURNED + timedelta(days=3))
    after_next = W("next patient", NEXT_LOAN + timedelta(days=40))
    assert wipe_after_return(RETURNED, NEXT_LOAN, [after_next, later, before, at_return]) is at_return
    assert wipe_after_return(RETURNED, None, [after_next, later, before]) is later
    # Only wipes from before this return, or from after the next loan: none erased this patient's data.
    assert wipe_after_return(RETURNED, NEXT_LOAN, [before, after_next]) is None
    assert wipe_after_return(RETURNED, NEXT_LOAN, [W("at the next loan", NEXT_LOAN)]) is None
    assert wipe_after_return(RETURNED, None, []) is None
    # Two at the same instant: the first given (the repository gives them in the order they were recorded).
    one, two = W("one", RETURNED + timedelta(hours=1)), W("two", RETURNED + timedelta(hours=1))
    assert wipe_after_return(RETURNED, None, [one, two]) is one


def test_the_wipe_of_a_receipt_is_chosen_on_aware_times_only() -> None:
    with pytest.raises(ValueError, match="returned_at"):
        wipe_after_return(datetime(2026, 11, 20, 10, 0), None, [])
    with pytest.raises(ValueError, match="wiped_at"):
        wipe_after_return(RETURNED, None, [W("naive", datetime(2026, 11, 21))])
    # The same instant in another zone is the same instant.
    paris = timezone(timedelta(hours=1))
    assert wipe_after_return(RETURNED, None, [W("paris", datetime(2026, 11, 20, 11, 0, tzinfo=paris))]) is not None


# --- The tablet's condition at return ----------------------------------------------------------------------------

NOTE = TypeAdapter(ConditionNote)


@pytest.mark.parametrize(
    ("typed", "kept"),
    [(" écran fissuré ", "écran fissuré"), ("x" * CONDITION_NOTE_MAX, "x" * CONDITION_NOTE_MAX)],
)
def test_a_condition_note_is_kept_without_the_spaces_around_it(typed: str, kept: str) -> None:
    assert NOTE.validate_python(typed) == kept


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("", "cannot be blank"),
        (" \t ", "cannot be blank"),
        ("x" * (CONDITION_NOTE_MAX + 1), "200 characters at most (this one has 201)"),
        ("coque rayée\nécran fissuré", "one line"),
        ("coque\u200brayée", "control characters"),  # a zero-width space pasted in: invisible on the receipt
    ],
)
def test_a_condition_note_that_is_blank_too_long_or_not_one_line_is_refused_not_cut(typed: str, words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        NOTE.validate_python(typed)


def test_a_condition_note_comes_with_its_condition() -> None:
    assert condition_refusal(None, None) is None
    assert condition_refusal(TabletCondition.DAMAGED, None) is None
    assert condition_refusal(TabletCondition.WORN, "coque rayée") is None
    assert "add condition (good, worn or damaged)" in (condition_refusal(None, "coque rayée") or "")


# --- A tablet back damaged -----------------------------------------------------------------------------------


def test_a_damaged_return_waits_for_a_check_while_the_tablet_is_in_hand_on_its_way_to_its_next_loan() -> None:
    assert AWAITING_CHECK == {S.RETURNED, S.WIPE_PENDING, S.WIPED}
    assert [s for s in TabletState if damage_check_due(s, True)] == [S.RETURNED, S.WIPE_PENDING, S.WIPED]
    assert not any(damage_check_due(s, False) for s in TabletState)
    # Every way out of it towards a loan goes through "make ready", which is where the check is asked for.
    assert {TRANSITIONS[(s, a)] for s in AWAITING_CHECK for a in allowed_actions(s)} - AWAITING_CHECK == {
        S.READY,
        S.LOST,
        S.STOLEN,
        S.IN_REPAIR,
        S.RETIRED,
    }
    assert [(s, a) for s in AWAITING_CHECK for a in allowed_actions(s) if TRANSITIONS[(s, a)] is S.READY] == [
        (S.WIPED, A.MAKE_READY)
    ]


def test_making_a_damaged_tablet_ready_needs_the_check_confirmed_and_records_it() -> None:
    with pytest.raises(DamageNotChecked, match=r"came back damaged.*\{\"checked\": true\}.*send it to repair"):
        damage_check(S.WIPED, A.MAKE_READY, last_return_damaged_unchecked=True, confirmed=False)
    checked = damage_check(S.WIPED, A.MAKE_READY, last_return_damaged_unchecked=True, confirmed=True)
    assert checked is DamageCheck.CHECKED


@pytest.mark.parametrize("state", sorted(AWAITING_CHECK))
def test_sending_a_damaged_tablet_to_repair_is_its_check(state: TabletState) -> None:
    for confirmed in (False, True):
        got = damage_check(state, A.SEND_TO_REPAIR, last_return_damaged_unchecked=True, confirmed=confirmed)
        assert got is DamageCheck.SENT_TO_REPAIR


def test_other_steps_and_tablets_with_nothing_to_check_record_nothing() -> None:
    for (state, action), _ in TRANSITIONS.items():
        # Nothing due: a confirmation given anyway records nothing (no check was asked for), nor is anything refused.
        for confirmed in (False, True):
            assert damage_check(state, action, last_return_damaged_unchecked=False, confirmed=confirmed) is None
        if action not in (A.MAKE_READY, A.SEND_TO_REPAIR) or state not in AWAITING_CHECK:
            assert damage_check(state, action, last_return_damaged_unchecked=True, confirmed=False) is None


def test_checked_goes_with_make_ready_only() -> None:
    assert checked_refusal(A.MAKE_READY, True) is None
    assert all(checked_refusal(a, False) is None for a in Action)
    refused = checked_refusal(A.RETIRE, True) or ""
    assert "when it is made ready" in refused and "leave it out of retire" in refused
