"""`make token` reads its settings as a service does: a misspelt setting is told, never passed over in silence."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dev_token(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "AUTH_SECRET", "NOT_SETTINGS")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dev_token.py"), *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_misspelt_secret_is_named_on_stderr_and_the_token_alone_is_on_stdout() -> None:
    done = dev_token("--patient", str(uuid.uuid4()), AUTH_SECRE="not-a-setting-value")
    assert done.returncode == 0, done.stderr
    assert "AUTH_SECRE is not a setting; did you mean AUTH_SECRET?" in done.stderr
    assert "not-a-setting-value" not in done.stderr  # the name only: a value may be a secret
    assert done.stdout.count(".") == 2 and "\n" not in done.stdout.strip()  # one JWT, nothing else


def test_no_warning_when_every_name_is_right() -> None:
    done = dev_token("--role", "nurse")
    assert done.returncode == 0, done.stderr
    assert "not a setting" not in done.stderr


def test_in_production_it_refuses_with_the_misspelling_named() -> None:
    done = dev_token("--role", "nurse", ENVIRONMENT="production", AUTH_SECRE="x")
    assert done.returncode == 2
    assert "AUTH_SECRE is not a setting" in done.stderr
    assert done.stdout == ""
