"""The one-time enrolment code: its format (short, unambiguous, ≥ 80 bits), how it is read back, its expiry and its
single use (with the one retry of the same tablet after a lost answer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.devices.enrolment import (
    ALPHABET,
    CODE_BITS,
    CODE_LENGTH,
    CODE_VALIDITY,
    RETRY_WINDOW,
    Exchange,
    StoredCode,
    canonical_code,
    code_hash,
    code_url,
    exchange,
    key_hash,
    new_code,
)

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_a_code_is_short_unambiguous_random_and_at_least_80_bits() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert 16 <= CODE_LENGTH <= 20 and CODE_BITS >= 80 and len(ALPHABET) == 32
    assert not set("ILOU") & set(ALPHABET)
    for code in codes:
        assert len(code) == CODE_LENGTH and set(code) <= set(ALPHABET)
    # Every symbol turns up: the alphabet is used whole, not a part of it.
    assert set("".join(codes)) == set(ALPHABET)


def test_a_code_typed_by_a_person_is_read_back_and_anything_else_is_none() -> None:
    code = new_code()
    assert canonical_code(code) == code
    assert canonical_code(f" {code[:6]}-{code[6:12]} {code[12:]} ".lower()) == code
    assert canonical_code("O" + code[1:]) == "0" + code[1:]
    assert canonical_code("l" + code[1:]) == "1" + code[1:]
    for wrong in ("", code[:-1], code + "0", "U" + code[1:], "é" * CODE_LENGTH):
        assert canonical_code(wrong) is None


def test_only_the_hash_is_kept_and_the_link_carries_the_code_in_its_fragment() -> None:
    code = new_code()
    assert len(code_hash(code)) == 32 and code.encode() not in code_hash(code)
    assert code_url("https://soins.example.org/q", code) == f"https://soins.example.org/q/tablet/#enrol={code}"
    assert len(code_url("https://soins.example.org/q", code)) < 80


def stored(*, used_at: datetime | None = None, key: str | None = None, loan_open: bool = True) -> StoredCode:
    return StoredCode(
        expires_at=NOW + CODE_VALIDITY,
        used_at=used_at,
        used_key_hash=key_hash(key) if key else None,
        loan_open=loan_open,
    )


def test_a_code_gives_the_token_once_until_it_expires() -> None:
    assert CODE_VALIDITY == timedelta(minutes=30)
    assert exchange(stored(), NOW, None) is Exchange.TOKEN
    assert exchange(stored(), NOW + CODE_VALIDITY - timedelta(seconds=1), "k" * 8) is Exchange.TOKEN
    assert exchange(stored(), NOW + CODE_VALIDITY, None) is Exchange.EXPIRED
    assert exchange(stored(used_at=NOW, key="tablet-1"), NOW, None) is Exchange.USED
    assert exchange(stored(used_at=NOW, key="tablet-1"), NOW, "tablet-2") is Exchange.USED


def test_the_same_tablet_retrying_soon_gets_it_again_and_nobody_after_the_window() -> None:
    spent = stored(used_at=NOW, key="tablet-1")
    assert exchange(spent, NOW + RETRY_WINDOW, "tablet-1") is Exchange.TOKEN_AGAIN
    assert exchange(spent, NOW + RETRY_WINDOW + timedelta(seconds=1), "tablet-1") is Exchange.USED


def test_a_loan_that_ended_enrols_nothing_whatever_the_code() -> None:
    assert exchange(stored(loan_open=False), NOW, None) is Exchange.LOAN_ENDED
    assert exchange(stored(used_at=NOW, key="tablet-1", loan_open=False), NOW, "tablet-1") is Exchange.LOAN_ENDED
