"""The tablet's service worker (services/questionnaire/tablet/sw.js) keeps every file the page loads, and only those:
a file missing from its list would leave the page opened offline without it; and the page imports its modules
only statically, which is what lets a new worker take over at once (skipWaiting) without an old page loading a new
module. Opening offline in a browser is tests/browser/test_tablet_offline.py."""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path, PurePosixPath

from services.questionnaire.main import TABLET_PAGES
from shared.http.app import WEB_MODULES

WORKER = TABLET_PAGES / "sw.js"
STATIC_IMPORT = re.compile(r'^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|^\s*import\s+"([^"]+)"', re.M | re.S)


def worker_files() -> list[str]:
    listed = re.search(r"const FILES = (\[.*?\]);", WORKER.read_text(encoding="utf-8"), re.S)
    assert listed, "sw.js has no FILES list"
    return list(json.loads(re.sub(r",\s*\]", "]", listed.group(1))))


def on_disk(address: str) -> Path:
    """The file the service serves at an address (/tablet/… from the tablet's folder, /web/… from shared/web)."""
    mount, _, rest = address.lstrip("/").partition("/")
    return {"tablet": TABLET_PAGES, "web": WEB_MODULES}[mount] / rest


def modules_loaded() -> set[str]:
    """The address of every module the page loads: those index.html names, what they import, and so on."""
    html = (TABLET_PAGES / "index.html").read_text(encoding="utf-8")
    todo = [f"/tablet/{src}" for src in re.findall(r'<script type="module" src="([^"]+)"', html)]
    seen: set[str] = set()
    while todo:
        address = posixpath.normpath(todo.pop())
        if address in seen:
            continue
        seen.add(address)
        for found in STATIC_IMPORT.finditer(on_disk(address).read_text(encoding="utf-8")):
            todo.append(posixpath.join(posixpath.dirname(address), found.group(1) or found.group(2)))
    return seen


def relative(address: str) -> str:
    """An address as the worker's list names it, relative to /tablet/."""
    return posixpath.relpath(address, "/tablet")


def test_the_worker_keeps_every_file_of_the_page_and_the_shared_modules_it_imports_all_static() -> None:
    page_files = {
        f.relative_to(TABLET_PAGES).as_posix()
        for f in TABLET_PAGES.rglob("*")
        if f.is_file() and f.name not in ("index.html", "sw.js", ".gitignore")
    }
    imported = {relative(module) for module in modules_loaded()}
    assert {"app.js", "../web/questionnaire_form.js", "../web/page.js"} <= imported
    # The page itself at its start address (the manifest's start_url), and config.json, served by the API's router.
    expected = {"./", "config.json"} | page_files | imported
    files = worker_files()
    assert len(files) == len(set(files))
    assert set(files) == expected
    assert not [f for f in files if PurePosixPath(f).parts[:1] == ("..",) and not f.startswith("../web/")]

    # The page imports its modules only statically, when it loads: what lets a new worker take over at once.
    for module in modules_loaded():
        text = on_disk(module).read_text(encoding="utf-8")
        assert not re.search(r"\bimport\s*\(", text), f"{module} imports a module dynamically"


def test_the_page_says_it_has_loaded_in_the_words_the_worker_waits_for() -> None:
    """The worker that answered an opening keeps it under way until the page says every file has loaded, so that no new
    worker takes over in the middle of it (a page left half loaded): said in other words, the page would not be heard,
    and each opening would hold a new worker back for the worker's whole LOADING_MS."""
    said = re.search(r'const PAGE_LOADED = "([^"]+)";', WORKER.read_text(encoding="utf-8"))
    assert said, "sw.js waits for no word from the page"
    # opening.js, the classic script that runs when no module does: a page whose module failed says it too.
    opening = (TABLET_PAGES / "opening.js").read_text(encoding="utf-8")
    assert 'window.addEventListener("load", function () {' in opening
    assert f'worker.postMessage("{said.group(1)}")' in opening
