"""Photos for tests: made here, so that no test depends on a file of someone's."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

GPS_IFD = 0x8825
ORIENTATION = 0x0112
MODEL = 0x0110
BODY_SERIAL = 0xA431
DATETIME = 0x0132


def photo_bytes(
    width: int = 64, height: int = 48, fmt: str = "JPEG", *, gps: bool = False, orientation: int | None = None
) -> bytes:
    """An image of ``width`` × ``height`` (red left half, blue right half) in ``fmt``; with ``gps``, EXIF naming a
    place, a device and a date, as a tablet's camera writes them."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((30, 30, 200), (width // 2, 0, width, height))
    exif = Image.Exif()
    if gps:
        exif[MODEL] = "Tablette-Test"
        exif[DATETIME] = "2026:11:24 08:00:00"
        exif.get_ifd(0x8769)[BODY_SERIAL] = "SN-123456789"
        place = exif.get_ifd(GPS_IFD)
        place[1], place[2], place[3], place[4] = "N", (48.0, 51.0, 24.0), "E", (2.0, 21.0, 3.0)
    if orientation is not None:
        exif[ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, fmt, **({"exif": exif} if len(exif) or gps else {}))
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` × ``height`` pixels and holds almost none: a decompression bomb's header,
    without its bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
