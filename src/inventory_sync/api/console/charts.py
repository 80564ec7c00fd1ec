"""The overview's small charts as plain SVG geometry: no chart library, no script."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 480
HEIGHT = 120
# Room under the plot for the hour labels.
LABELS = 16


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    part: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    rects: list[Rect]
    labels: list[Label]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT + LABELS


def _labels(series: Sequence[dict[str, Any]], slot: float) -> list[Label]:
    """Every sixth hour's start, as HH:00 UTC, from the left edge of its bar."""
    return [
        Label(n * slot + 1, f"{point['hour']:%H}:00")
        for n, point in enumerate(series)
        if n % 6 == 0
    ]


def stacked_bars(series: Sequence[dict[str, Any]], parts: Sequence[str]) -> Chart:
    """One bar per hour, its `parts` stacked from the bottom, scaled to the highest bar."""
    peak = max((sum(point[p] for p in parts) for point in series), default=0)
    slot = WIDTH / max(len(series), 1)
    scale = HEIGHT / peak if peak else 0.0
    rects = []
    for n, point in enumerate(series):
        bottom = float(HEIGHT)
        for part in parts:
            height = point[part] * scale
            if height:
                bottom -= height
                title = f"{point['hour']:%Y-%m-%d %H}:00Z: {point[part]} {part}"
                rects.append(Rect(n * slot + 1, bottom, max(slot - 2, 1), height, part, title))
    return Chart(rects, _labels(series, slot), peak)
