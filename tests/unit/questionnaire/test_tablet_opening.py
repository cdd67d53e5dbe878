"""The tablet page that cannot start says so even when no module runs (tablet/opening.js, its #opening-notice): what
makes that hold is how the page loads the script, which a browser that runs every module cannot show. In a browser:
tests/browser/test_tablet_opening.py."""

from __future__ import annotations

import re

from services.questionnaire.main import TABLET_PAGES

SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


def test_opening_js_is_a_classic_script_loaded_in_order_before_the_page_s_modules() -> None:
    html = (TABLET_PAGES / "index.html").read_text(encoding="utf-8")
    scripts: list[tuple[str, str]] = SCRIPT.findall(html)
    assert all(not body.strip() for _, body in scripts), "an inline script: the page's policy refuses it"
    sources = [re.search(r'\bsrc="([^"]+)"', attributes) for attributes, _ in scripts]
    first = scripts[0][0]
    assert sources[0] is not None and sources[0].group(1) == "opening.js"
    # Classic (a module is what may not load or run), deferred: run after the notice is parsed, before the modules.
    assert "type=" not in first and re.search(r"\bdefer\b", first) and not re.search(r"\basync\b", first)
    assert all('type="module"' in attributes for attributes, _ in scripts[1:])
    # A classic script cannot import: one that did would not run at all.
    opening = (TABLET_PAGES / "opening.js").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|export)\b", opening, re.M)
    # « Réessayer » works with no script at all: a plain link to the page's start address.
    assert re.search(r'<a id="opening-retry"[^>]*\bhref="\./"', html)
