"""Photos a patient sends the team: checked and re-encoded here, pure (bytes in, bytes out).

A photo taken on a tablet carries metadata the team has no use for and the patient never meant to send: the GPS
position of the home, the device's serial, the time. Stripping chosen tags would trust a list to be complete; the
image is instead decoded to its pixels and encoded anew as a JPEG, which holds nothing but those pixels.
"""

from __future__ import annotations

import io
import warnings
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
    accepted = ", ".join(ACCEPTED_MEDIA_TYPES)
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise PhotoRefused(
            415,
            "unsupported-photo-type",
            f"A photo is sent as one of {accepted} (the Content-Type header); this one was sent as "
            f"{(media_type or 'no type')[:60]!r}.",
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past its own limit: the limit here is checked before decoding instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
            image.load()  # every pixel now: a file cut short fails here, not half-stored
            upright = ImageOps.exif_transpose(image)
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
    rgb = _on_white(upright)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A new image object holds no info dict: nothing (EXIF, XMP, ICC, comments) is written but the pixels.
    Image.frombytes("RGB", rgb.size, rgb.tobytes()).save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return Photo(out.getvalue(), rgb.width, rgb.height)


def _on_white(image: Image.Image) -> Image.Image:
    """RGB pixels; a transparent PNG or WebP laid on white, as it shows on a page (black, JPEG's default, would
    hide a dark skin mark)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
