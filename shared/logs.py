"""How every service's log lines look: the time, the service's name, the level, the logger."""

from __future__ import annotations

import logging
import os


def configure_logging(service: str) -> None:
    """Once per process, before anything logs: a service's first lines (a misspelt setting's warning, while its
    settings are read) carry its name and the time like every later one. Whatever handlers uvicorn or the tests
    installed stay."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO").upper(),
            format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
        )
