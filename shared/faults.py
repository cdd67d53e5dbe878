"""Named crash points for the fault tests: the process SIGKILLs itself at the named moment, once.

Active only when ``FAULT_POINT`` names the point and ``FAULT_MARKER`` names a file that does not exist
yet (it is created just before the kill, so the restarted process runs normally). Never in production.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def fault_point(name: str) -> None:
    if os.environ.get("FAULT_POINT") != name or os.environ.get("ENVIRONMENT") == "production":
        return
    marker = os.environ.get("FAULT_MARKER")
    if not marker or Path(marker).exists():
        return
    Path(marker).write_text(name)
    os.kill(os.getpid(), signal.SIGKILL)
