"""The tablet page's version: one hash over the bytes of every file its service worker keeps (tablet/sw.js, FILES)
and of the worker itself, served in the worker's own bytes (``/tablet/sw.js``) and in a ``Tablet-Version`` header on
each of the page's files.

Any change of the page on the server changes the worker's bytes, so the browser installs a new worker, which keeps
the page anew under a cache named by the new version; and the worker, reading the header, knows which version a
file (or a page opened from the network) is. The version follows the files as they are on disk now, not as they
were at start-up: the static mount serves each file from disk at each request, so a version fixed at start-up would
go on naming the old page after the files were replaced in place (a volume updated without a restart), and the
tablets would again keep a mix. The hash is computed again only when a file's size or modification time changes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION_HEADER = "Tablet-Version"
# Where the served worker carries its version (sw.js: ``const VERSION = "unversioned";``). A worker served as it is
# on disk, with this placeholder, keeps nothing: no file it fetches carries it as its version.
PLACEHOLDER = "unversioned"
_VERSION_LINE = f'const VERSION = "{PLACEHOLDER}";'
_FILES = re.compile(r"const FILES = (\[.*?\]);", re.S)
CONFIG = "config.json"


def worker_files(worker: str) -> list[str]:
    """The worker's FILES, relative to its folder ("./", "app.js", "../web/page.js")."""
    listed = _FILES.search(worker)
    if listed is None:
        raise ValueError("sw.js has no FILES list")
    return list(json.loads(re.sub(r",\s*\]", "]", listed.group(1))))


def config_bytes(config: Mapping[str, Any]) -> bytes:
    """config.json as the version counts it: a new team number reaches the kept copy with a new version."""
    return json.dumps(config, sort_keys=True).encode()


@dataclass
class TabletFiles:
    """The page's files as the service serves them: ``pages`` at /tablet/, ``web`` at /web/."""

    pages: Path
    web: Path
    _seen: tuple[Any, ...] | None = field(default=None, repr=False)
    _version: str = field(default="", repr=False)
    _listed: tuple[Any, list[tuple[str, Path | None]]] | None = field(default=None, repr=False)

    def _path(self, name: str) -> Path | None:
        address = posixpath.normpath(posixpath.join("/tablet/", name))
        if name.endswith("/"):
            address = address.rstrip("/") + "/index.html"
        mount, _, rest = address.lstrip("/").partition("/")
        root = {"tablet": self.pages, "web": self.web}.get(mount)
        return root / rest if root is not None else None

    def version(self, config: Mapping[str, Any]) -> str:
        """The page's version now: at each request of one of its files, hence a few stat calls, the hash only again
        when one changed (sizes and modification times, and the worker's list, as they are now)."""
        worker = self.pages / "sw.js"
        worker_seen = _signature(worker)
        if self._listed is None or self._listed[0] != worker_seen:
            # The worker's list, read again only when the worker changed (a request must not parse it each time).
            names = worker_files(worker.read_text(encoding="utf-8"))
            self._listed = (worker_seen, [(name, self._path(name)) for name in names])
        paths = self._listed[1]
        config_body = config_bytes(config)
        seen = (worker_seen, config_body, tuple((name, _signature(path)) for name, path in paths))
        if seen == self._seen:
            return self._version
        digest = hashlib.sha256(worker.read_bytes())
        for name, path in paths:
            body = config_body if name == CONFIG else _read(path)
            # Each file's name and length before its bytes: two different pages never hash alike by a shifted cut.
            digest.update(f"\0{name}\0{-1 if body is None else len(body)}\0".encode())
            digest.update(body or b"")
        self._seen, self._version = seen, digest.hexdigest()[:16]
        return self._version

    def worker(self, version: str) -> bytes:
        """sw.js as the browser gets it: its version in its bytes, so a new page is a new worker."""
        text = (self.pages / "sw.js").read_text(encoding="utf-8")
        return text.replace(_VERSION_LINE, f'const VERSION = "{version}";', 1).encode()


def _signature(path: Path | None) -> tuple[int, int] | None:
    try:
        stat = path.stat() if path is not None else None
    except OSError:
        return None
    return None if stat is None else (stat.st_mtime_ns, stat.st_size)


def _read(path: Path | None) -> bytes | None:
    try:
        return path.read_bytes() if path is not None else None
    except OSError:
        return None  # missing: the worker's install fails on it (a 404), whatever the version says
