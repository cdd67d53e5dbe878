"""Every problem type the devices service can answer has a French sentence on the fleet page (fleet/problems.js):
the types are collected from the code that raises them (the devices service's and the shared HTTP layer's
``kind=`` arguments, and the types named after a status), so a new refusal without its sentence fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from shared.devservers import ROOT
from shared.http.problems import _TITLES

PROBLEMS_JS = ROOT / "services/devices/fleet/problems.js"
# What builds a problem with a type of its own (``kind``), in the service and in what every service shares.
PROBLEM_MAKERS = {"Problem", "problem_response", "problem_document", "_passing_on"}


def sources() -> list[Path]:
    shared = [path for path in (ROOT / "shared").rglob("*.py") if "testing" not in path.parts]
    return sorted((ROOT / "services/devices").glob("*.py")) + sorted(shared)


def passed_on(value: ast.expr) -> bool:
    """``kind=kind``, ``kind=exc.kind``: a type made elsewhere, passed on (where it is made, it is a literal)."""
    return (isinstance(value, ast.Name) and value.id == "kind") or (
        isinstance(value, ast.Attribute) and value.attr == "kind"
    )


def raised_types() -> dict[str, str]:
    """Each problem type the code can answer, with where it comes from."""
    found = {title.lower().replace(" ", "-"): "shared/http/problems.py (by status)" for title in _TITLES.values()}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in PROBLEM_MAKERS:
                continue
            for keyword in node.keywords:
                if keyword.arg == "kind" and isinstance(keyword.value, ast.Constant):
                    found.setdefault(str(keyword.value.value), f"{path.relative_to(ROOT)}:{node.lineno}")
                elif keyword.arg == "kind" and not passed_on(keyword.value):
                    raise AssertionError(
                        f"{path}:{node.lineno}: a problem type that is not a literal cannot be checked"
                    )
    return found


def french_types() -> set[str]:
    text = PROBLEMS_JS.read_text(encoding="utf-8")
    table = text[text.index("export const PROBLEMS = {") : text.index("\n};", text.index("export const PROBLEMS"))]
    return set(re.findall(r'^\s+"?([a-z][a-z-]*)"?:', table, flags=re.MULTILINE))


def test_every_problem_type_of_the_devices_service_has_a_french_sentence() -> None:
    raised = raised_types()
    assert {"illegal-transition", "duplicate-serial", "agreement-too-old", "database-busy"} <= raised.keys()
    missing = {kind: where for kind, where in raised.items() if kind not in french_types()}
    assert not missing, f"no French sentence in fleet/problems.js for {missing}"


def test_the_devices_service_refuses_a_dated_value_with_a_type_the_page_can_tell_apart() -> None:
    # Each of these had the generic unprocessable-content before: the page could only show the English detail.
    raised = raised_types()
    for kind in ("agreement-too-old", "in-the-future", "expected-return-out-of-range", "wipe-before-return"):
        assert raised.get(kind, "").startswith("services/devices/api.py"), kind
