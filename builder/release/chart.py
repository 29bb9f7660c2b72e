"""The card's chart: rows per risk category, split by label, across all configs (Pillow, PNG).

Fifteen categories × two labels read better as bars than as a table. Drawn with Pillow's bundled
font and saved without any metadata, so the same numbers always give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"harmful": (196, 58, 49), "benign": (46, 110, 176)}
OTHER = (140, 140, 140)
WIDTH = 900
BAR = 22
GAP = 8
LEFT = 230
RIGHT = 80
TOP = 64


def chart_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font: the same glyphs on every machine (the eval chart uses it too)."""
    return ImageFont.load_default(size=size)


def png_bytes(image: Image.Image) -> bytes:
    """`image` as PNG without metadata, so the same drawing always gives the same bytes."""
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def category_label_chart(counts: Mapping[tuple[str, str], int], title: str) -> bytes:
    """PNG bytes: one stacked bar per category, a segment per label, counts at the bar ends."""
    categories = sorted({c for c, _ in counts})
    labels = sorted({lab for _, lab in counts}, key=lambda lab: (lab not in COLOURS, lab))
    totals = {c: sum(n for (cat, _), n in counts.items() if cat == c) for c in categories}
    peak = max(totals.values(), default=0) or 1
    height = TOP + len(categories) * (BAR + GAP) + 40
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = chart_font(16), chart_font(13)
    draw.text((16, 14), title, fill="black", font=font)
    x = LEFT
    for label in labels:  # legend
        draw.rectangle((x, 42, x + 12, 54), fill=COLOURS.get(label, OTHER))
        draw.text((x + 18, 40), label, fill="black", font=small)
        x += 30 + int(draw.textlength(label, font=small))
    span = WIDTH - LEFT - RIGHT
    for i, category in enumerate(categories):
        y = TOP + i * (BAR + GAP)
        draw.text((LEFT - 10, y + BAR // 2), category, fill="black", font=small, anchor="rm")
        x = LEFT
        for label in labels:
            n = counts.get((category, label), 0)
            w = round(span * n / peak)
            if w:
                draw.rectangle((x, y, x + w - 1, y + BAR - 1), fill=COLOURS.get(label, OTHER))
            x += w
        draw.text((x + 6, y + BAR // 2), str(totals[category]), fill="black", font=small,
                  anchor="lm")
    return png_bytes(image)


PASS, FAIL, NOT_JUDGED = (46, 140, 80), (196, 58, 49), (170, 170, 170)


def audit_chart(figures: Mapping[str, Mapping[str, object]], title: str) -> bytes:
    """PNG bytes: one bar per bounded figure of an audit (`Audit.to_json()["figures"]`), its
    length the value as a share of its bound (the dashed line is the bound; a bound of 0 shows a
    full bar when the value is above it), green within, red over, grey when not judged."""
    rows = [(k, f) for k, f in figures.items() if f.get("limit") is not None]
    height = TOP + len(rows) * (BAR + GAP) + 40
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = chart_font(16), chart_font(13)
    draw.text((16, 14), title, fill="black", font=font)
    span = (WIDTH - LEFT - RIGHT - 60) // 2  # the bound sits half-way
    bound_x = LEFT + span
    for y in range(TOP - 8, TOP + len(rows) * (BAR + GAP), 6):
        draw.line((bound_x, y, bound_x, y + 3), fill="black")
    draw.text((bound_x, TOP - 22), "bound", fill="black", font=small, anchor="mm")
    for i, (key, figure) in enumerate(rows):
        y = TOP + i * (BAR + GAP)
        value, limit, passed = figure.get("value"), figure.get("limit"), figure.get("passed")
        draw.text((LEFT - 10, y + BAR // 2), key, fill="black", font=small, anchor="rm")
        if not isinstance(value, int | float) or not isinstance(limit, int | float):
            share = 0.0
        elif limit > 0:
            share = min(2.0, max(0.0, float(value) / float(limit)))
        else:
            share = 2.0 if value > limit else 0.0
        colour = NOT_JUDGED if passed is None else PASS if passed else FAIL
        width = round(span * share)
        if width:
            draw.rectangle((LEFT, y, LEFT + width - 1, y + BAR - 1), fill=colour)
        shown = "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float)
                                          else str(value))
        draw.text((LEFT + max(width, 0) + 6, y + BAR // 2), f"{shown} (bound {limit})",
                  fill="black", font=small, anchor="lm")
    return png_bytes(image)
