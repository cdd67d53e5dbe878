"""The tablet page's web app manifest (``/tablet/manifest.webmanifest``) and its icons, as the questionnaire service
serves them: what makes the page, added to the home screen, a full-screen app with its own icon (README, The
tablet). The browser's side (linked, parsed, installable under the page's policy) is
tests/browser/test_tablet_app.py."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin

import httpx
import orjson
import pytest
from PIL import Image, ImageColor

from services.questionnaire.main import TABLET_PAGES, QuestionnaireSettings, build_service, tablet_headers
from services.questionnaire.tablet_files import VERSION_HEADER
from shared.devservers import ROOT
from shared.testing.services import in_process

pytestmark = pytest.mark.integration

MANIFEST = "/tablet/manifest.webmanifest"


@pytest.fixture
async def questionnaire(service_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    async with in_process(build_service(QuestionnaireSettings(**env))) as (client, _):
        yield client


def _page_colours() -> dict[str, str]:
    css = (ROOT / "services/questionnaire/tablet/tablet.css").read_text(encoding="utf-8")
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]+);", css))


def _rgba(image: Image.Image, x: int, y: int) -> tuple[int, int, int, int]:
    return cast(tuple[int, int, int, int], image.getpixel((x, y)))


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "link":
            self.links.append(dict(attrs))


async def test_the_manifest_makes_the_page_a_full_screen_app_in_french_that_opens_on_the_page(
    questionnaire: httpx.AsyncClient,
) -> None:
    page = await questionnaire.get("/tablet/")
    links = _Links()
    links.feed(page.text)
    assert [link["href"] for link in links.links if link.get("rel") == "manifest"] == ["manifest.webmanifest"]

    answer = await questionnaire.get(MANIFEST)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/manifest+json"
    # The page's own headers: revalidated at each start (a manifest changed on the server is the one installed
    # next), never sniffed, framed or referred.
    for name, value in tablet_headers(None).items():
        assert answer.headers[name.lower()] == value, name
    assert "etag" in answer.headers  # revalidated, not fetched again, when unchanged

    manifest = orjson.loads(answer.content)
    url = urljoin(str(answer.url), MANIFEST)
    assert manifest["name"] == "Mon suivi RE'CONNECT"
    # Under the icon, whole: a launcher cuts a label beyond about 12 characters.
    assert manifest["short_name"] == "Mon suivi" and len(manifest["short_name"]) <= 12
    assert manifest["lang"] == "fr" and manifest["display"] == "standalone"
    # Relative to the manifest, so that the page behind a proxy's path (QUESTIONNAIRE_PUBLIC_URL) opens there too.
    assert urljoin(url, manifest["start_url"]) == urljoin(url, manifest["scope"]) == urljoin(url, "/tablet/")
    colours = _page_colours()
    # Its splash screen the page's paper, the bar above it the page's blue (tablet.css).
    assert ImageColor.getrgb(manifest["background_color"]) == ImageColor.getrgb(colours["paper"])
    assert ImageColor.getrgb(manifest["theme_color"]) == ImageColor.getrgb(colours["blue"])
    # The device token is the tablet's own (localStorage): the app opens on the bare page, and nothing here names one.
    assert "#" not in manifest["start_url"] and "?" not in manifest["start_url"]
    assert "token" not in answer.text.lower()


async def test_its_icons_are_pngs_of_their_stated_sizes_one_drawn_for_the_launcher_s_shapes(
    questionnaire: httpx.AsyncClient,
) -> None:
    manifest = orjson.loads((await questionnaire.get(MANIFEST)).content)
    icons: dict[tuple[str, int], Image.Image] = {}
    for icon in manifest["icons"]:
        answer = await questionnaire.get(urljoin(MANIFEST, icon["src"]))
        assert answer.status_code == 200, icon
        assert answer.headers["content-type"] == icon["type"] == "image/png"
        assert answer.headers["x-content-type-options"] == "nosniff"
        image = Image.open(io.BytesIO(answer.content))
        assert image.format == "PNG"
        width, height = (int(side) for side in icon["sizes"].split("x"))
        assert image.size == (width, height), icon
        icons[(icon["purpose"], width)] = image.convert("RGBA")
    # What Chromium asks for to offer installation: 192 and 512 px for any use; and one the launcher may crop.
    assert {("any", 192), ("any", 512), ("maskable", 512)} <= icons.keys()

    # The maskable one: opaque edge to edge (the launcher's shape cuts into it, never into a transparent corner), its
    # letters (white) all within the central circle every shape keeps (radius: 40 % of the width).
    maskable = icons[("maskable", 512)]
    assert all(_rgba(maskable, x, y)[3] == 255 for x, y in ((0, 0), (511, 0), (0, 511), (511, 511)))
    letters = [(x, y) for x in range(0, 512, 4) for y in range(0, 512, 4) if min(_rgba(maskable, x, y)[:3]) > 200]
    assert letters, "no letters drawn"
    assert max(((x - 255.5) ** 2 + (y - 255.5) ** 2) ** 0.5 for x, y in letters) < 0.4 * 512


async def test_the_service_worker_is_served_as_a_script_of_the_page_revalidated_at_each_check(
    questionnaire: httpx.AsyncClient,
) -> None:
    answer = await questionnaire.get("/tablet/sw.js")
    assert answer.status_code == 200, answer.text
    # A service worker must be a JavaScript type, or the browser refuses to register it.
    assert answer.headers["content-type"].split(";")[0] == "text/javascript"
    # The page's headers, Cache-Control: no-cache among them: a worker changed on the server is the one installed
    # next. Its scope (/tablet/) is its own folder: no Service-Worker-Allowed to widen it.
    for name, value in tablet_headers(None).items():
        assert answer.headers[name.lower()] == value, name
    assert "worker-src 'self'" in answer.headers["content-security-policy"]
    assert "service-worker-allowed" not in answer.headers
    head = await questionnaire.head("/tablet/sw.js")  # as the static files answer it (the worker is a route)
    assert head.status_code == 200 and head.headers["content-type"] == answer.headers["content-type"]


async def test_the_worker_carries_the_page_s_version_which_changes_with_any_of_its_files(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    pages = tmp_path / "tablet"
    shutil.copytree(TABLET_PAGES, pages)
    env: dict[str, Any] = {"NATS_URL": service_env["NATS_URL"], "DATABASE_URL": service_env["DATABASE_URL"]}
    service = build_service(QuestionnaireSettings(**env), tablet_pages=pages)
    async with in_process(service) as (client, _):

        async def served() -> tuple[str, dict[str, str]]:
            worker = await client.get("/tablet/sw.js")
            version = worker.headers[VERSION_HEADER]
            assert re.fullmatch(r"[0-9a-f]{16}", version)
            # In the worker's bytes: a new page is a new worker for the browser's update check.
            assert f'const VERSION = "{version}";' in worker.text
            files = {}
            for file in ("", "app.js", "flow.js", "config.json", "icons/icon-192.png", "../web/page.js"):
                answer = await client.get(urljoin("/tablet/", file))
                assert answer.status_code == 200, file
                files[file] = answer.headers[VERSION_HEADER]
            return version, files

        before, files = await served()
        # Every file the worker keeps says it is of that version: the worker keeps none of another.
        assert set(files.values()) == {before}
        assert (await served())[0] == before  # the same page, the same worker, byte for byte

        # One module changed on the server, in place: a new version, in the worker and on every file.
        flow = pages / "flow.js"
        flow.write_text(flow.read_text(encoding="utf-8") + "\n// changed\n", encoding="utf-8")
        after, files = await served()
        assert after != before and set(files.values()) == {after}

    # The team's number changed (config.json, kept with the page): a new version too.
    phoned = build_service(QuestionnaireSettings(**env, TEAM_PHONE="01 49 81 21 11"), tablet_pages=pages)
    async with in_process(phoned) as (client, _):
        assert (await client.get("/tablet/sw.js")).headers[VERSION_HEADER] not in (before, after)
