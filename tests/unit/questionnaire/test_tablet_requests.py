"""No request of the tablet's page can hang: every fetch of its modules passes a signal (sending.js's giveUpAfter, the
one time-out of them all), so that a captive Wi-Fi, which answers nothing and fails nothing for minutes, neither
leaves the fleet manager before a blank enrolment nor piles up heartbeats. The worker (sw.js) has its own rules: it
answers the page, which gives up its requests. In a browser: tests/browser/test_tablet.py, test_enrolment_code.py."""

from __future__ import annotations

import re

from services.questionnaire.main import TABLET_PAGES

FETCH = re.compile(r"\bfetch\(")


def fetch_calls(source: str) -> list[str]:
    """Each `fetch(…)` call of a module, its arguments up to the closing parenthesis."""
    calls = []
    for match in FETCH.finditer(source):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(source[end], 0)
            end += 1
        calls.append(source[match.start() : end])
    return calls


def test_fetch_calls_are_found_whole() -> None:
    assert fetch_calls("await fetch(path, { signal, body: JSON.stringify(x) }).then((r) => r.json());") == [
        "fetch(path, { signal, body: JSON.stringify(x) })"
    ]


def test_every_request_of_the_page_is_given_up_in_time() -> None:
    modules = [path for path in sorted(TABLET_PAGES.glob("*.js")) if path.name not in {"sw.js", "opening.js"}]
    without = {
        f"{path.name}: {call}"
        for path in modules
        for call in fetch_calls(path.read_text(encoding="utf-8"))
        if not re.search(r"\bsignal\b", call)
    }
    assert not without, f"a request with no time-out (giveUpAfter's signal): {sorted(without)}"
    assert fetch_calls((TABLET_PAGES / "app.js").read_text(encoding="utf-8")), "no fetch found: the scan is broken"
