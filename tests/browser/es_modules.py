"""The runner of the pages' ES modules' unit tests, shared by test_web_modules.py and test_dashboard_modules.py: one
page of a made-up origin whose requests Playwright answers from the repository's files, so a module is ``import()``ed
exactly as the pages import it (relative imports included), with no server and no port; each case is one
``page.evaluate`` of a JavaScript expression, with the module as ``m`` and the case's data as ``arg``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, Route

from shared.devservers import ROOT

ORIGIN = "https://modules.test"
# The same paths as the services serve them (/web/ on each service), so relative imports resolve as in the pages.
SERVED = {
    "/web/": ROOT / "shared" / "web",
    "/tablet/": ROOT / "services" / "questionnaire" / "tablet",
    "/dashboard/": ROOT / "services" / "alerting" / "dashboard",
    "/fleet/": ROOT / "services" / "devices" / "fleet",
}

RUN = """async ({ module, expression, arg }) => {
  const m = await import(module);
  return await new Function("m", "arg", `return (${expression});`)(m, arg);
}"""


def _file(path: str) -> Path | None:
    for prefix, folder in SERVED.items():
        if path.startswith(prefix):
            file = (folder / path[len(prefix) :]).resolve()
            if file.is_relative_to(folder) and file.is_file():
                return file
    return None


@asynccontextmanager
async def modules_page(browser: Browser, **context_options: Any) -> AsyncIterator[Page]:
    """One page for a whole test file: a module is fetched once, then every case reuses it. ``context_options`` go
    to ``new_context`` (a locale, a time zone)."""
    context = await browser.new_context(**context_options)

    async def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path == "/":
            await route.fulfill(content_type="text/html", body="<!doctype html><meta charset='utf-8'><title>m</title>")
            return
        file = _file(path)
        if file is None:
            await route.fulfill(status=404, body="")
        else:
            await route.fulfill(content_type="text/javascript; charset=utf-8", body=file.read_bytes())

    await context.route(f"{ORIGIN}/**", serve)
    try:
        page = await context.new_page()
        await page.goto(f"{ORIGIN}/")
        yield page
    finally:
        await context.close()


async def run(page: Page, module: str, expression: str, arg: Any = None) -> Any:
    return await page.evaluate(RUN, {"module": module, "expression": expression, "arg": arg})
