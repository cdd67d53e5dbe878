"""The questionnaire service's rules stay pure (ARCHITECTURE.md: domain.py and the modules it is made of, no I/O):
they import nothing that reaches a file, the network, a database or a clock of their own, and call nothing that
reads or writes a file. Reading the definition files at start-up is catalogue.py's, and only its."""

from __future__ import annotations

import ast

import pytest

from shared.devservers import ROOT

SERVICE = ROOT / "services/questionnaire"
PURE = ("fhir_questionnaire", "answers", "branching", "domain")
# The standard library's modules that only compute; anything else (os, pathlib, asyncio, socket...) is refused.
PURE_STDLIB = {
    "__future__",
    "collections",
    "collections.abc",
    "dataclasses",
    "datetime",
    "functools",
    "json",
    "math",
    "operator",
    "re",
    "types",
    "typing",
    "uuid",
}
# Of the project: the event contract, the service's own rules (the catalogue is used here, never loaded), and what a
# refusal may repeat of a client's values (shared with the HTTP layer; checked below to compute only).
SHARED_PURE = ("repeating",)
PURE_PROJECT = {f"services.questionnaire.{m}" for m in (*PURE, "catalogue")} | {f"shared.{m}" for m in SHARED_PURE}
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "glob", "iterdir", "is_dir"}


def imported(tree: ast.Module) -> list[str]:
    """The modules a module imports (``from services.questionnaire import branching`` imports ``branching``)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "services.questionnaire":
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_the_rules_import_only_what_computes(module: str) -> None:
    tree = ast.parse((SERVICE / f"{module}.py").read_text(encoding="utf-8"))
    for name in imported(tree):
        allowed = name in PURE_STDLIB or name in PURE_PROJECT or name.startswith("shared.events.")
        assert allowed, f"services/questionnaire/{module}.py imports {name}: the rules do no I/O"


@pytest.mark.parametrize("module", SHARED_PURE)
def test_the_shared_modules_the_rules_use_import_only_what_computes(module: str) -> None:
    tree = ast.parse((ROOT / "shared" / f"{module}.py").read_text(encoding="utf-8"))
    for name in imported(tree):
        assert name in PURE_STDLIB, (
            f"shared/{module}.py imports {name}: the questionnaire's rules use it, and do no I/O"
        )


@pytest.mark.parametrize("module", PURE)
def test_the_rules_read_and_write_no_file(module: str) -> None:
    tree = ast.parse((SERVICE / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            assert called not in FILE_CALLS, f"services/questionnaire/{module}.py:{node.lineno} calls {called}"
