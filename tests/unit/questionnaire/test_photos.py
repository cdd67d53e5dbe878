"""The photo checks and re-encode (services/questionnaire/photos.py): pure, no server."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.questionnaire.photos import MAX_SIDE, PhotoRefused, media_type_of, reencode
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
