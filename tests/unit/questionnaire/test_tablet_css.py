"""Every rule of the tablet's style sheet styles something its page or scripts make: a class, a data attribute or a
state that nothing sets is a rule left behind by a change (`.link-button` was), which the next reader takes for a
live one. Read from the files themselves, as the browser gets them (services/questionnaire/tablet/)."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser

from shared.devservers import ROOT

TABLET = ROOT / "services/questionnaire/tablet"


def selectors() -> list[str]:
    """Each selector of tablet.css (comments and url(…) values, whose SVG has dots of its own, left out)."""
    text = re.sub(r"/\*.*?\*/", "", (TABLET / "tablet.css").read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r'url\("[^"]*"\)', "", text)
    assert "@media" not in text and "@supports" not in text, "nested rules: teach selectors() to read them"
    return [s.strip() for block in re.findall(r"([^{}]+)\{[^{}]*\}", text) for s in block.split(",")]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({name: value or "" for name, value in attrs})


def markup() -> list[dict[str, str]]:
    parser = _Elements()
    parser.feed((TABLET / "index.html").read_text(encoding="utf-8"))
    return parser.elements


def scripts() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(TABLET.glob("*.js")))


def script_words() -> set[str]:
    """Every word in the scripts' string literals: a class set with h(…, {class: "…"}), className, a selector…"""
    literals = re.findall(r'"([^"\n]*)"|\'([^\'\n]*)\'|`([^`]*)`', scripts())
    return {word for groups in literals for text in groups for word in re.findall(r"[A-Za-z][\w-]*", text)}


def camel(name: str) -> str:
    return re.sub(r"-([a-z])", lambda m: m.group(1).upper(), name)


def unused() -> list[str]:
    elements = markup()
    classes = {c for e in elements for c in e.get("class", "").split()}
    attributes = {name for e in elements for name in e}
    words = script_words()
    js = scripts()
    # What the scripts disable: `$("#id").disabled = …`.
    disabled_ids = set(re.findall(r'\$\("#([\w-]+)"\)\.disabled\s*=', js))
    found = []
    for selector in selectors():
        for name in re.findall(r"\.([A-Za-z][\w-]*)", selector):
            if name not in classes and name not in words:
                found.append(f"{selector}: no element has the class {name}")
        for name in re.findall(r"\[(data-[\w-]+)", selector):
            if name not in attributes and name not in words and f"dataset.{camel(name[5:])}" not in js:
                found.append(f"{selector}: nothing sets {name}")
        for name in re.findall(r"\.([A-Za-z][\w-]*):disabled", selector):
            ids = {e.get("id") for e in elements if name in e.get("class", "").split()}
            if not ids & disabled_ids:
                found.append(f"{selector}: no script disables an element with the class {name}")
    return found


def test_the_reader_sees_the_tablet_s_rules() -> None:
    # What unused() reads, so that an empty answer means something.
    assert {'.option[aria-checked="true"]::before', ".text-size-button:disabled"} <= set(selectors())
    assert ':root[data-text-size="1"]' in selectors()
    assert {"review-answer", "status-photo", "team-phone-number"} <= script_words()


def test_every_rule_of_the_tablet_s_style_sheet_styles_something() -> None:
    assert unused() == []


def test_no_selector_is_declared_twice() -> None:
    # A second rule for the same selector, far down the file, is the one a reader misses: `.nav-button`'s min-width
    # was set in one and overridden in the other. One rule per selector says everything about it in one place.
    twice = sorted(selector for selector, count in Counter(selectors()).items() if count > 1)
    assert twice == [], f"declared more than once in tablet.css (merge each into one rule): {twice}"
