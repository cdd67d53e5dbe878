"""A loan's enrolment: the link the tablet opens once to become the patient's, and that link as a QR code the fleet
manager shows to the tablet's camera.

The link carries a short one-time code (``#enrol=<code>``), not the device token: the tablet's page exchanges it once
at the devices service (``POST /v1/enrolments``) for the token. A photo of the fleet manager's screen or a link left
in a chat is then worth nothing once the tablet has enrolled, or after ``CODE_VALIDITY``; and a light QR code (some
70 characters instead of 400) is what a cheap tablet's camera reads. Where the tablet's page cannot reach the devices
service (``TABLET_ORIGINS`` unset), the link still carries the token itself (``#device_token=``)."""

from __future__ import annotations

import enum
import hashlib
import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import segno

# Medium error correction: a QR code on a screen or a printed sheet is read again after a smudge or a glare.
QR_ERROR = "m"
QR_SCALE = 4
QR_BORDER = 4

# Crockford's base 32: no I, L, O or U, so nothing to confuse when a code is read out or typed from the screen.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 18  # 90 bits: guessing one live code among thousands, at any rate a server answers, takes ages
CODE_BITS = CODE_LENGTH * 5
# How long a code may wait for its tablet: the time to hand the tablet over at the day hospital, not a loan's length.
CODE_VALIDITY = timedelta(minutes=30)
# A tablet whose exchange's answer was lost (the Wi-Fi dropped) asks again with the same Idempotency-Key: within this
# window it gets its token again; a different key, or later, is refused as a spent code.
RETRY_WINDOW = timedelta(minutes=2)

_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def canonical_code(typed: str) -> str | None:
    """The code as made, from what a person may have typed (lower case, dashes, spaces, O for 0, I or L for 1);
    None when it cannot be one of ours."""
    code = typed.strip().upper().replace("-", "").replace(" ", "").translate(_READ_AS)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def code_hash(code: str) -> bytes:
    """What is kept of a code. No salt: 90 random bits leave nothing to look up in a table."""
    return hashlib.sha256(code.encode()).digest()


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Exchange(enum.Enum):
    """What an exchange of a code gets (``exchange``)."""

    TOKEN = "token"  # the token, the code now spent
    TOKEN_AGAIN = "token-again"  # the same tablet retrying after a lost answer
    USED = "code-used"
    EXPIRED = "code-expired"
    LOAN_ENDED = "loan-ended"


@dataclass(frozen=True)
class StoredCode:
    expires_at: datetime
    used_at: datetime | None
    used_key_hash: bytes | None
    loan_open: bool


def exchange(code: StoredCode, now: datetime, key: str | None) -> Exchange:
    """One use per code: the first exchange spends it; only a retry of that exchange (same key, soon after) is
    answered again. A loan that ended meanwhile enrols nothing, whatever the code's state."""
    if not code.loan_open:
        return Exchange.LOAN_ENDED
    if code.used_at is not None:
        if key is not None and code.used_key_hash == key_hash(key) and now - code.used_at <= RETRY_WINDOW:
            return Exchange.TOKEN_AGAIN
        return Exchange.USED
    if now >= code.expires_at:
        return Exchange.EXPIRED
    return Exchange.TOKEN


def code_url(questionnaire_url: str, code: str) -> str:
    """The tablet's page with the code in the fragment: a fragment is never sent to a server, so the code stays out
    of every request line, access log and Referer the opening produces."""
    return f"{questionnaire_url}/tablet/#enrol={code}"


def enrolment_url(questionnaire_url: str, device_token: str) -> str:
    """The link with the token itself, where the tablet cannot exchange a code (``TABLET_ORIGINS`` unset)."""
    return f"{questionnaire_url}/tablet/#device_token={device_token}"


def qr_svg(url: str) -> str:
    """The link as a standalone SVG document (black on white, for any camera), for an ``<img>``: markup the page
    never puts into its own document."""
    out = io.BytesIO()
    segno.make(url, error=QR_ERROR, micro=False).save(
        out, kind="svg", scale=QR_SCALE, border=QR_BORDER, dark="#000", light="#fff", xmldecl=False, title="QR code"
    )
    return out.getvalue().decode()
