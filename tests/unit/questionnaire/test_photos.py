"""The photo checks and re-encode (services/questionnaire/photos.py): pure, no server."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from services.questionnaire.api import PhotoDecoding
from services.questionnaire.photos import MAX_PIXELS, MAX_SIDE, PhotoRefused, media_type_of, opened, reencode
from shared.devservers import ROOT
from shared.testing.photos import GPS_IFD, photo_bytes, png_header_only


def _reopened(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def test_a_photo_with_a_place_a_device_and_a_date_comes_out_without_any_of_them() -> None:
    sent = photo_bytes(gps=True)
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(GPS_IFD), "the test photo must hold a GPS position"
    assert b"SN-123456789" in sent and b"Tablette-Test" in sent

    photo = reencode(sent, "image/jpeg")

    image = _reopened(photo.jpeg)
    assert image.format == "JPEG"
    assert len(image.getexif()) == 0
    assert not image.getexif().get_ifd(GPS_IFD)
    assert b"Exif" not in photo.jpeg and b"SN-123456789" not in photo.jpeg and b"Tablette-Test" not in photo.jpeg
    assert b"2026:11:24" not in photo.jpeg
    assert set(image.info) <= {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "progressive", "progression"}


def test_the_exif_orientation_is_applied_to_the_pixels() -> None:
    # 6: the camera was turned a quarter; the viewer is to rotate it 90° clockwise.
    photo = reencode(photo_bytes(80, 40, orientation=6), "image/jpeg")
    assert (photo.width, photo.height) == (40, 80)
    image = _reopened(photo.jpeg)
    assert image.size == (40, 80)
    red_top = image.getpixel((20, 5))
    assert isinstance(red_top, tuple) and red_top[0] > 150 and red_top[2] < 100  # the left (red) half is now on top


def test_a_large_photo_is_scaled_to_the_bound_on_its_long_side() -> None:
    photo = reencode(photo_bytes(MAX_SIDE * 2, 1000, "PNG"), "image/png")
    assert (photo.width, photo.height) == (MAX_SIDE, 500)


def test_a_large_jpeg_is_decoded_at_a_smaller_scale_and_still_comes_out_at_the_bound() -> None:
    photo = reencode(photo_bytes(MAX_SIDE * 3, MAX_SIDE * 2, gps=True, orientation=6), "image/jpeg")
    assert (photo.width, photo.height) == (MAX_SIDE * 2 // 3, MAX_SIDE)  # turned upright, then bounded
    assert b"Exif" not in photo.jpeg


@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_png_and_webp_are_taken_and_come_out_as_jpeg(fmt: str, media_type: str) -> None:
    photo = reencode(photo_bytes(30, 20, fmt), media_type)
    assert _reopened(photo.jpeg).format == "JPEG" and (photo.width, photo.height) == (30, 20)


def test_a_transparent_png_is_laid_on_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    pixel = _reopened(reencode(out.getvalue(), "image/png").jpeg).getpixel((5, 5))
    assert isinstance(pixel, tuple) and min(pixel) > 240


def _refused(data: bytes, media_type: str | None, **limits: int) -> PhotoRefused:
    with pytest.raises(PhotoRefused) as caught:
        reencode(data, media_type, **limits)
    return caught.value


def test_what_is_not_an_image_is_refused() -> None:
    refused = _refused(b"%PDF-1.7 not a photo at all", "image/jpeg")
    assert (refused.status, refused.kind) == (422, "not-a-photo")


def test_a_type_not_accepted_is_refused_with_the_types_that_are() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    refused = _refused(gif.getvalue(), "image/gif")
    assert refused.status == 415 and "image/jpeg" in refused.detail
    assert _refused(photo_bytes(), None).status == 415


def test_a_gif_sent_as_jpeg_is_refused() -> None:
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    assert _refused(gif.getvalue(), "image/jpeg").kind == "not-a-photo"


def test_a_png_sent_as_jpeg_is_refused_as_a_mismatch() -> None:
    refused = _refused(photo_bytes(fmt="PNG"), "image/jpeg")
    assert (refused.status, refused.kind) == (415, "photo-type-mismatch")


def test_a_photo_cut_short_is_refused() -> None:
    whole = photo_bytes(400, 300)
    refused = _refused(whole[: len(whole) // 2], "image/jpeg")
    assert (refused.status, refused.kind) == (422, "damaged-photo")


def test_too_many_pixels_is_refused_before_decoding() -> None:
    refused = _refused(png_header_only(100_000, 100_000), "image/png")
    assert (refused.status, refused.kind) == (422, "photo-too-many-pixels")
    assert _refused(png_header_only(7000, 7000), "image/png").kind == "photo-too-many-pixels"  # under Pillow's own
    assert _refused(photo_bytes(100, 100), "image/jpeg", max_pixels=9_999).kind == "photo-too-many-pixels"


def test_the_media_type_is_read_without_its_parameters() -> None:
    assert media_type_of("Image/JPEG; q=1") == "image/jpeg"
    assert media_type_of(None) is None


# What decoding a photo holds in memory at its peak, measured in a process of its own (a 40 Mpx image with
# transparency: the worst a tablet may send within MAX_PIXELS and MAX_PHOTO_BYTES, a PNG of under 1 MB).
_MEASURE = """
import resource, sys
from services.questionnaire import photos
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
opened = photos.opened(data, "image/png")
photos.finish(opened)
print(opened.peak_bytes, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_40_mpx_transparent_png_is_decoded_within_its_declared_peak_and_well_within_the_process_memory(
    tmp_path: Path,
) -> None:
    width, height = 7700, 5190
    assert width * height <= MAX_PIXELS
    path = tmp_path / "large.png"
    Image.new("RGBA", (width, height), (200, 100, 50, 128)).save(path, "PNG", compress_level=1)
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    declared, used = (int(n) for n in done.stdout.split())
    # The service runs in 512 MiB, about 100 MB of it its own: one such photo must leave room (it took 650 MB,
    # three full-size copies of the pixels, before they were avoided).
    assert used < 400 * 2**20, f"{used / 2**20:.0f} MB"
    # What the budget counts is not less than what it takes.
    assert declared >= used, (declared, used)


def test_a_tablets_jpeg_declares_far_less_than_a_large_png() -> None:
    camera = opened(photo_bytes(4160, 3120), "image/jpeg")  # 13 Mpx, decoded at a quarter of its size
    screenshot = opened(_png((2000, 1200), "RGBA"), "image/png")
    assert camera.peak_bytes < 40 * 2**20
    assert screenshot.peak_bytes == 2000 * 1200 * 9


def _png(size: tuple[int, int], mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


async def test_decodes_hold_no_more_memory_at_once_than_the_budget() -> None:
    decoding = PhotoDecoding(decoders=2, memory_bytes=100)
    running: list[str] = []
    most = 0

    async def decode(name: str, peak: int) -> None:
        nonlocal most
        async with decoding.slot(peak):
            running.append(name)
            most = max(most, len(running))
            await asyncio.sleep(0.01)
            running.remove(name)

    # Two of 60 cannot share 100: one after the other. Over the whole budget: alone, but not refused.
    await asyncio.gather(decode("a", 60), decode("b", 60))
    assert most == 1
    most = 0
    await asyncio.gather(decode("huge", 500), decode("small", 1))
    assert most == 1
    most = 0
    # Small ones: as many at once as there are decoders.
    await asyncio.gather(*(decode(str(i), 10) for i in range(5)))
    assert most == 2
