"""Photos a patient sends the team: checked and re-encoded here, pure (bytes in, bytes out).

A photo taken on a tablet carries metadata the team has no use for and the patient never meant to send: the GPS
position of the home, the device's serial, the time. Stripping chosen tags would trust a list to be complete; the
image is instead decoded to its pixels and encoded anew as a JPEG, which holds nothing but those pixels.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# What a tablet may send: what its camera and gallery produce and Pillow decodes here. HEIC (iPhones) needs a plugin
# this platform does not carry; the loaned tablets are Android, whose camera writes JPEG.
ACCEPTED_MEDIA_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
# A decompression bomb is a small file that decodes to billions of pixels: refused before it is decoded. 40 Mpx is
# above any tablet camera (13 Mpx) and, decoded as RGB, 120 MB at most.
MAX_PIXELS = 40_000_000
# Enough to read a rash or the skin around a port on a screen; a 13 Mpx photo re-encoded so weighs 300 to 700 kB.
MAX_SIDE = 2048
JPEG_QUALITY = 85


class PhotoRefused(Exception):
    """Why an upload is not a photo this platform takes: the status to answer and a sentence a person can act on."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Photo:
    """The re-encoded photo: a JPEG holding pixels only."""

    jpeg: bytes
    width: int
    height: int


def media_type_of(content_type: str | None) -> str | None:
    """The media type of a Content-Type header, lower case, without parameters."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def reencode(data: bytes, media_type: str | None, *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> Photo:
    """The photo ``data`` (declared as ``media_type``) decoded, turned upright (EXIF orientation), scaled down to
    ``max_side`` on its long side, and encoded as a JPEG without any metadata; ``PhotoRefused`` when it is not an
    image of an accepted type, too large in pixels, or cut short."""
    return finish(opened(data, media_type, max_pixels=max_pixels, max_side=max_side), max_side=max_side)


@dataclass(frozen=True)
class Opened:
    """A photo whose header has been read and checked, its pixels not yet decoded; ``peak_bytes``: about how much
    memory decoding and re-encoding it will take at most, so that a process decodes at once only what fits."""

    image: Image.Image
    peak_bytes: int


# Bytes per pixel at the peak of ``finish``, measured on 40 Mpx PNGs: the decoded pixels, and for an image with
# transparency the white page it is laid on (RGBA 4 + RGB 3; a palette image is first made RGBA), then Pillow's
# own work space when scaling down.
_PEAK_BYTES_PER_PIXEL = {"with_alpha": 9, "opaque": 6}


def opened(data: bytes, media_type: str | None, *, max_pixels: int = MAX_PIXELS, max_side: int = MAX_SIDE) -> Opened:
    """``data`` opened as the image its ``media_type`` says, its header checked (type, pixels): cheap, nothing
    decoded yet; ``PhotoRefused`` when it is not an image of an accepted type or holds too many pixels."""
    accepted = ", ".join(ACCEPTED_MEDIA_TYPES)
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise PhotoRefused(
            415,
            "unsupported-photo-type",
            f"A photo is sent as one of {accepted} (the Content-Type header); this one was sent as "
            f"{(media_type or 'no type')[:60]!r}.",
        )
    with _refusals(max_pixels):
        image = Image.open(io.BytesIO(data), formats=list(ACCEPTED_MEDIA_TYPES.values()))
        found = image.format
        width, height = image.size
        if width * height > max_pixels:
            raise PhotoRefused(
                422,
                "photo-too-many-pixels",
                f"This image is {width} × {height} pixels, more than the {max_pixels} a photo may hold; "
                "send a smaller one (a tablet's camera photo is well within).",
            )
        if found != ACCEPTED_MEDIA_TYPES[media_type]:
            raise PhotoRefused(
                415,
                "photo-type-mismatch",
                f"The file is a {found} image but was sent as {media_type}; send it with its own type "
                f"(one of {accepted}).",
            )
        if found == "JPEG" and max(width, height) > max_side:
            # Decoded at 1/2, 1/4 or 1/8 scale (the JPEG's own DCT scaling) down to no less than what is kept:
            # a 40 Mpx photo then takes a quarter of the memory and time, the same pixels in the end.
            ratio = max_side / max(width, height)
            image.draft("RGB", (max(1, int(width * ratio)), max(1, int(height * ratio))))
        with_alpha = image.mode in ("RGBA", "LA", "PA", "P") or "transparency" in image.info
        per_pixel = _PEAK_BYTES_PER_PIXEL["with_alpha" if with_alpha else "opaque"]
        return Opened(image, image.width * image.height * per_pixel)


def finish(photo: Opened, *, max_side: int = MAX_SIDE) -> Photo:
    """The pixels of an ``opened`` photo decoded, turned upright, laid on white, scaled down and encoded anew as a
    JPEG; ``PhotoRefused`` when the file is damaged or cut short. Pillow decodes in C without the GIL: run it in a
    worker thread."""
    image = photo.image
    with _refusals(MAX_PIXELS):
        image.load()  # every pixel now: a file cut short fails here, not half-stored
        # In place: a copy of a 40 Mpx image is 120 to 160 MB more (see _on_white).
        ImageOps.exif_transpose(image, in_place=True)
    rgb = _on_white(image)
    if rgb is not image:
        image.close()  # its pixels freed now, before scaling: the caller still holds the Opened
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A new image object holds no info dict: nothing (EXIF, XMP, ICC, comments) is written but the pixels.
    Image.frombytes("RGB", rgb.size, rgb.tobytes()).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Photo(out.getvalue(), rgb.width, rgb.height)


@contextlib.contextmanager
def _refusals(max_pixels: int) -> Iterator[None]:
    """Pillow's errors on a file it cannot read, as the refusal a person can act on."""
    accepted = ", ".join(ACCEPTED_MEDIA_TYPES)
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past its own limit: the limit here is checked before decoding instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except PhotoRefused:
        raise
    except Image.DecompressionBombError:  # past Pillow's own limit, found while opening: far past this one
        raise PhotoRefused(
            422,
            "photo-too-many-pixels",
            f"This image holds far more than the {max_pixels} pixels a photo may hold; send a smaller one.",
        ) from None
    except UnidentifiedImageError:
        raise PhotoRefused(
            422, "not-a-photo", f"The file sent is not an image that can be read; send a photo ({accepted})."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise PhotoRefused(
            422,
            "damaged-photo",
            "The image is damaged or cut short (the upload may have been interrupted); take or send the photo again.",
        ) from None


def _on_white(image: Image.Image) -> Image.Image:
    """RGB pixels; a transparent PNG or WebP laid on white, as it shows on a page (black, JPEG's default, would
    hide a dark skin mark).

    Full-size copies are what a photo costs in memory: a 40 Mpx RGBA image is 160 MB, and the service runs in
    512 MiB. An RGBA image is therefore its own mask (no copy of it, nor of its alpha channel), and an RGB one is
    returned as it is: the decoded image and the white page it is laid on are the only full-size images at once."""
    if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image)
        return background
    return image if image.mode == "RGB" else image.convert("RGB")
