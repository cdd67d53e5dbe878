"""ES modules served as they are to more than one service's pages (mounted at ``/web/``): the logic those pages
would otherwise each carry a copy of."""

from pathlib import Path

WEB_MODULES = Path(__file__).parent
