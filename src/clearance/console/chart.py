"""The audit page's chart: decisions per day, stacked by series, drawn as SVG on the server.

:func:`daily_chart` computes the geometry (bars, axis ticks, labels) from the counts; the
template ``clearance/console/_chart.html`` writes the SVG. No JavaScript, no client-side
library: the chart is part of the HTML, and the same numbers are in a table next to it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from .auditing import SERIES, SERIES_LABELS

__all__ = ["Bar", "Chart", "Segment", "daily_chart"]

WIDTH = 720
HEIGHT = 240
LEFT = 44  # room for the y-axis labels
RIGHT = 8
TOP = 12
BOTTOM = 28  # room for the day labels


@dataclass(frozen=True)
class Segment:
    """One series of one day: a rectangle of the stacked bar."""

    series: str
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One day: its stacked segments, its total and its label."""

    day: dt.date
    total: int
    segments: tuple[Segment, ...]
    x: float
    label_x: float
    show_label: bool

    @property
    def title(self) -> str:
        """What the bar says in words (the SVG tooltip and text alternative)."""
        if not self.total:
            return f"{self.day.isoformat()}: no decisions"
        parts = ", ".join(f"{s.count} {s.label}" for s in self.segments)
        return f"{self.day.isoformat()}: {self.total} ({parts})"


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line of the y axis."""

    value: int
    y: float


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw the chart."""

    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    series: tuple[tuple[str, str, int], ...]  # (series, label, total), for the legend
    total: int
    first: dt.date
    last: dt.date

    @property
    def table(self) -> list[dict[str, object]]:
        """The chart's numbers, one row per day: ``day``, ``counts`` (by series), ``total``."""
        rows: list[dict[str, object]] = []
        for bar in self.bars:
            by_series = {s.series: s.count for s in bar.segments}
            counts = [by_series.get(series, 0) for series, _, _ in self.series]
            rows.append({"day": bar.day, "counts": counts, "total": bar.total})
        return rows

    @property
    def summary(self) -> str:
        """A sentence describing the chart, for people who cannot see it."""
        if not self.total:
            return f"No recorded decisions from {self.first} to {self.last}."
        parts = ", ".join(f"{count} {label}" for _, label, count in self.series if count)
        peak = max(self.bars, key=lambda b: b.total)
        return (
            f"{self.total} recorded decisions from {self.first} to {self.last}: {parts}. "
            f"Busiest day: {peak.day} with {peak.total}."
        )


def _nice_max(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def daily_chart(days: dict[dt.date, Counter[str]]) -> Chart:
    """The stacked-bar chart of ``days`` (a count per series for each consecutive day)."""
    ordered = sorted(days.items())
    totals = [sum(counter.values()) for _, counter in ordered]
    top = _nice_max(max(totals, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    slot = plot_width / max(len(ordered), 1)
    bar_width = max(slot * 0.7, 1.0)
    every = max(1, round(len(ordered) / 10))  # at most about ten day labels
    bars = []
    for index, (day, counter) in enumerate(ordered):
        x = LEFT + index * slot + (slot - bar_width) / 2
        y = float(baseline)
        segments = []
        for series in SERIES:
            count = counter.get(series, 0)
            if not count:
                continue
            height = plot_height * count / top
            y -= height
            segments.append(Segment(series, SERIES_LABELS[series], count, x, y, bar_width, height))
        bars.append(
            Bar(
                day=day,
                total=sum(counter.values()),
                segments=tuple(segments),
                x=x,
                label_x=x + bar_width / 2,
                show_label=index % every == 0 or index == len(ordered) - 1,
            )
        )
    ticks = tuple(
        Tick(value=value, y=baseline - plot_height * value / top)
        for value in sorted({0, top // 2, top})
        if value == 0 or value * 2 == top or value == top
    )
    grand: Counter[str] = Counter()
    for _, counter in ordered:
        grand.update(counter)
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        baseline=baseline,
        bars=tuple(bars),
        ticks=ticks,
        series=tuple((s, SERIES_LABELS[s], grand.get(s, 0)) for s in SERIES),
        total=sum(totals),
        first=ordered[0][0] if ordered else dt.date.today(),
        last=ordered[-1][0] if ordered else dt.date.today(),
    )
