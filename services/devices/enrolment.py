"""A loan's enrolment: the link the tablet opens once to learn its device token, and that link as a QR code the
fleet manager shows to the tablet's camera (no 300-character token typed by hand)."""

from __future__ import annotations

import io

import segno

# Medium error correction: a QR code on a screen or a printed sheet is read again after a smudge or a glare; the
# link (some 400 characters) still fits a code a tablet's camera reads at arm's length.
QR_ERROR = "m"
QR_SCALE = 4
QR_BORDER = 4


def enrolment_url(questionnaire_url: str, device_token: str) -> str:
    """The tablet's page with the token in the fragment: a fragment is never sent to a server, so the token stays out
    of every request line, access log and Referer the opening produces."""
    return f"{questionnaire_url}/tablet/#device_token={device_token}"


def qr_svg(url: str) -> str:
    """The link as a standalone SVG document (black on white, for any camera), for an ``<img>``: markup the page
    never puts into its own document."""
    out = io.BytesIO()
    segno.make(url, error=QR_ERROR, micro=False).save(
        out, kind="svg", scale=QR_SCALE, border=QR_BORDER, dark="#000", light="#fff", xmldecl=False, title="QR code"
    )
    return out.getvalue().decode()
