"""The report's chart: the headline percentages per group, as bars (Pillow, PNG).

Drawn with Pillow's bundled font and saved without metadata, so the same metrics always give
the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageDraw

from ..builder.release.chart import chart_font, png_bytes

#: (label, metric path, colour) of each bar in a group
BARS = (
    ("Safety = 3", ("safety", "pct_top"), (46, 110, 176)),
    ("Helpfulness = 3", ("helpfulness", "pct_top"), (80, 160, 90)),
    ("Rigor = 3", ("rigor", "pct_top"), (222, 140, 40)),
    ("Protocol valid (strict)", ("protocol_valid_strict", "pct"), (120, 90, 170)),
)
WIDTH = 900
BAR = 16
GROUP_GAP = 18
LEFT = 170
RIGHT = 70
TOP = 70


def scores_chart(groups: Mapping[str, Mapping[str, Any]], title: str) -> bytes:
    """PNG bytes: for each named group of metrics, one bar per entry of `BARS` (0–100 %)."""
    height = TOP + len(groups) * (len(BARS) * BAR + GROUP_GAP) + 20
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = chart_font(16), chart_font(13)
    draw.text((16, 14), title, fill="black", font=font)
    x = LEFT
    for name, _, colour in BARS:  # legend
        draw.rectangle((x, 44, x + 12, 56), fill=colour)
        draw.text((x + 18, 42), name, fill="black", font=small)
        x += 34 + int(draw.textlength(name, font=small))
    span = WIDTH - LEFT - RIGHT
    y = TOP
    for group, metrics in groups.items():
        draw.text((LEFT - 10, y + len(BARS) * BAR // 2), group, fill="black", font=small,
                  anchor="rm")
        for _, (key, field), colour in BARS:
            value = (metrics.get(key) or {}).get(field)
            if value is not None:
                width = round(span * value / 100)
                if width:
                    draw.rectangle((LEFT, y + 1, LEFT + width - 1, y + BAR - 2), fill=colour)
                draw.text((LEFT + width + 6, y + BAR // 2), f"{value:.1f}%", fill="black",
                          font=small, anchor="lm")
            else:
                draw.text((LEFT + 6, y + BAR // 2), "n/a", fill="gray", font=small, anchor="lm")
            y += BAR
        y += GROUP_GAP
    return png_bytes(image)
