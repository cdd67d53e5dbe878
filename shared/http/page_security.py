"""The security headers of the platform's pages (the tablet's, the nurse dashboard, the fleet page), from one builder.

What no page may ever do is written here once, and no page can opt out of it: run a script or a style that is not
one of its own files (nothing inline, nothing from elsewhere: no ``'unsafe-inline'``, no ``*``, which a source
given here is refused for), load a plugin, point ``<base>`` elsewhere, be framed (``frame-ancestors 'none'``, and
``X-Frame-Options: DENY`` for browsers that predate it), or have a file's type sniffed. What differs from page to
page is data, a ``PageSecurity``: where its default goes, where its images come from, whether it has a web app
manifest or a service worker, which origins it calls, where its forms go, its referrer policy and the browser
features it uses. A page that calls one more origin says so in one line: ``PAGE.connecting_to(url)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal
from urllib.parse import urlsplit

SELF: Final = "'self'"
NONE: Final = "'none'"

# Sources a page's images may come from besides origins: data: (the enrolment QR codes, drawn as SVG), blob: (the
# patients' photos, fetched with a nurse's token and shown through object URLs).
_SCHEME_SOURCES = frozenset({"data:", "blob:"})
# An origin as a Content-Security-Policy source: nothing in it can end the source, the directive or the header.
_ORIGIN = re.compile(r"https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def origin_of(url: str | None) -> str | None:
    """The web origin (``scheme://host[:port]``, lower case) of an http(s) address; None for no address; a
    ValueError for anything else, rather than a source that would mean something else or nothing."""
    if url is None or not url.strip():
        return None
    parts = urlsplit(url.strip())
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if "@" in parts.netloc or not _ORIGIN.fullmatch(origin):
        raise ValueError(f"{url[:200]!r} is not an http(s) address whose origin a page may be allowed to reach")
    return origin


def _source(source: str) -> str:
    if source == SELF or source in _SCHEME_SOURCES or _ORIGIN.fullmatch(source):
        return source
    raise ValueError(f"{source!r} is not a source a page may be allowed: 'self', data:, blob: or an http(s) origin")


def _sources(current: tuple[str, ...], urls: Iterable[str | None]) -> tuple[str, ...]:
    added = (origin_of(url) for url in urls)
    return tuple(dict.fromkeys((*current, *(o for o in added if o is not None))))


@dataclass(frozen=True)
class PageSecurity:
    """What one page may load and reach; ``headers()`` the headers it is served with."""

    # Where whatever no other directive names may come from: nowhere, or this origin (the dashboard's fonts, say).
    default_src: Literal["'none'", "'self'"] = NONE
    img_src: tuple[str, ...] = (SELF,)
    # Where its web app manifest may come from: this origin (a page added to a home screen), or, None, wherever
    # default-src says (no manifest-src directive at all: nowhere, for a page whose default is 'none').
    manifest_src: Literal["'self'"] | None = None
    # Where its service worker may come from: this origin (a page that opens offline), or, None, no worker-src
    # directive (CSP3 falls back to script-src, which a page's policy never widens beyond its own files either).
    worker_src: Literal["'self'"] | None = None
    connect_src: tuple[str, ...] = (SELF,)
    # Where a form may be sent: nowhere (the pages send JSON with fetch), or this origin.
    form_action: Literal["'none'", "'self'"] = NONE
    # What a link followed or a request sent tells of the page's address: nothing, or only to this origin.
    referrer_policy: Literal["no-referrer", "same-origin"] = "no-referrer"
    # Permissions-Policy: features this origin may use, and features no one may (none named: no header).
    features_allowed: tuple[str, ...] = ()
    features_denied: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for source in (*self.img_src, *self.connect_src):
            _source(source)
        for feature in (*self.features_allowed, *self.features_denied):
            if not re.fullmatch(r"[a-z][a-z-]*", feature):
                raise ValueError(f"{feature!r} is not a browser feature's name")

    def connecting_to(self, *urls: str | None) -> PageSecurity:
        """This page, also allowed to call the origin of each of ``urls`` (None or empty: no address, nothing)."""
        return replace(self, connect_src=_sources(self.connect_src, urls))

    def showing_images_from(self, *urls: str | None) -> PageSecurity:
        """This page, also allowed to show images from the origin of each of ``urls``."""
        return replace(self, img_src=_sources(self.img_src, urls))

    def content_security_policy(self) -> str:
        directives = {
            "default-src": self.default_src,
            "script-src": SELF,
            "style-src": SELF,
            "img-src": " ".join(self.img_src) or NONE,
            **({"manifest-src": self.manifest_src} if self.manifest_src else {}),
            **({"worker-src": self.worker_src} if self.worker_src else {}),
            "connect-src": " ".join(self.connect_src) or NONE,
            "object-src": NONE,
            "base-uri": NONE,
            "form-action": self.form_action,
            "frame-ancestors": NONE,
        }
        return "; ".join(f"{name} {value}" for name, value in directives.items())

    def headers(self) -> dict[str, str]:
        headers = {
            "Content-Security-Policy": self.content_security_policy(),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": self.referrer_policy,
            "X-Frame-Options": "DENY",
        }
        features = [f"{f}=(self)" for f in self.features_allowed] + [f"{f}=()" for f in self.features_denied]
        if features:
            headers["Permissions-Policy"] = ", ".join(features)
        return headers
