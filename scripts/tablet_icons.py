"""Draw the tablet page's home-screen icons (services/questionnaire/tablet/icons/), once: the PNGs are committed.

``.venv/bin/python scripts/tablet_icons.py`` writes them again (after a change of colour or letters, say). They are
what the patient finds among the tablet's other apps: the page's blue, its white, and two big letters, nothing a
small icon blurs. Chromium offers to install a page with a 192 px and a 512 px icon; Android draws a ``maskable``
one edge to edge in its own shape (a circle, a squircle), cutting up to a tenth of each side, so that one keeps its
letters inside the central circle every shape keeps (the "safe zone", 80 % of the icon's width).

The font is Pillow's own (``load_default``), thickened with a stroke: the same icons on any machine.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ICONS = Path(__file__).resolve().parent.parent / "services/questionnaire/tablet/icons"
BLUE = "#0b3d91"  # tablet.css --blue: the big buttons'
WHITE = "#ffffff"  # tablet.css --paper
LETTERS = "RC"  # RE'CONNECT; the name under the icon ("Mon suivi") says the rest
# Drawn four times larger, then reduced: smooth edges without anti-aliasing of its own.
SUPERSAMPLE = 4


def icon(size: int, *, maskable: bool) -> Image.Image:
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        # Edge to edge: the launcher cuts its own shape out of it.
        draw.rectangle((0, 0, big, big), fill=BLUE)
        width = big * 0.8 * 0.7  # the letters' width, well inside the safe zone's circle
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big * 0.2, fill=BLUE)
        width = big * 0.72
    font_size = big
    stroke = 0
    # The largest font whose letters, thickened, are `width` wide.
    while True:
        font = ImageFont.load_default(font_size)
        stroke = max(1, round(font_size * 0.045))
        left, top, right, bottom = draw.textbbox((0, 0), LETTERS, font=font, stroke_width=stroke)
        if right - left <= width:
            break
        font_size -= max(1, big // 200)
    x = (big - (right - left)) / 2 - left
    y = (big - (bottom - top)) / 2 - top
    draw.text((x, y), LETTERS, font=font, fill=WHITE, stroke_width=stroke, stroke_fill=WHITE)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        icon(size, maskable=False).save(ICONS / f"icon-{size}.png", optimize=True)
    icon(512, maskable=True).convert("RGB").save(ICONS / "icon-maskable-512.png", optimize=True)
    for path in sorted(ICONS.glob("*.png")):
        print(path.relative_to(ICONS.parent.parent.parent.parent), path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
