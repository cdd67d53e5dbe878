"""Every browser test waits on a function, never on a bare expression.

Playwright evaluates a bare expression again at each poll with `eval`, from the page's own frames, where our pages'
Content Security Policy (`script-src 'self'`) refuses it. The first check runs from DevTools and is allowed, so such
a wait passes whenever its condition already holds and fails whenever it has to wait: a test that fails on a slow
machine only (it cost a CI run). A function is evaluated once and then called, which the policy allows.
"""

import ast
from pathlib import Path

BROWSER_TESTS = Path(__file__).resolve().parents[1] / "browser"


def _literal_text(node: ast.expr) -> str | None:
    """The text of a string or f-string literal (its fixed parts), or None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value for part in node.values if isinstance(part, ast.Constant) and isinstance(part.value, str)
        )
    return None


def _is_function(text: str) -> bool:
    head = text.strip()
    if head.startswith(("function", "async function", "async (")):
        return True
    # An arrow function: parameters, then "=>" before any call or comparison.
    arrow = head.find("=>")
    return arrow > 0 and all(mark not in head[:arrow] for mark in (".", "!", "=", "<", ">"))


def bare_expression_waits(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "wait_for_function"
            and node.args
        ):
            text = _literal_text(node.args[0])
            if text is not None and not _is_function(text):
                lines.append(node.lineno)
    return lines


def test_the_check_tells_a_function_from_a_bare_expression() -> None:
    assert bare_expression_waits("page.wait_for_function(\"localStorage.getItem('k') !== null\")") == [1]
    assert bare_expression_waits('page.wait_for_function(f"Number(x) >= {n}", timeout=5)') == [1]
    assert bare_expression_waits('page.wait_for_function(f"({CHECK})() !== null")') == [1]
    assert bare_expression_waits('page.wait_for_function("ready.enabled")') == [1]
    assert bare_expression_waits("page.wait_for_function(\"() => localStorage.getItem('k') !== null\")") == []
    assert bare_expression_waits('page.wait_for_function("seq => Number(x) >= seq", arg=3)') == []
    assert bare_expression_waits('page.wait_for_function("(id) => a.b !== id", arg=i)') == []
    assert bare_expression_waits('page.wait_for_function(f"() => ({CHECK})() !== null")') == []
    assert bare_expression_waits('page.wait_for_function("function () { return true; }")') == []


def test_no_browser_test_waits_on_a_bare_expression() -> None:
    found = {
        f"{path.name}:{line}"
        for path in sorted(BROWSER_TESTS.glob("*.py"))
        for line in bare_expression_waits(path.read_text(encoding="utf-8"))
    }
    assert not found, f"wait_for_function on a bare expression (write it as '() => …'): {sorted(found)}"
