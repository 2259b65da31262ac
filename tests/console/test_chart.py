"""The chart's geometry: laws that hold for any counts, so every bar reads true."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from clearance.console.auditing import SERIES
from clearance.console.chart import HEIGHT, daily_chart

counts = st.fixed_dictionaries({s: st.integers(min_value=0, max_value=10_000) for s in SERIES})
days = st.lists(counts, min_size=1, max_size=92)

START = dt.date(2024, 1, 1)


def _chart(rows: list[dict[str, int]]):  # type: ignore[no-untyped-def]
    return daily_chart({START + dt.timedelta(days=i): Counter(row) for i, row in enumerate(rows)})


@given(days)
def test_bars_stack_from_the_baseline_in_series_order_and_fit_the_plot(
    rows: list[dict[str, int]],
) -> None:
    chart = _chart(rows)
    top = max(t.value for t in chart.ticks)
    plot_height = chart.baseline - min(t.y for t in chart.ticks)

    assert len(chart.bars) == len(rows)
    for bar, row in zip(chart.bars, rows, strict=True):
        assert bar.total == sum(row.values())
        assert [s.series for s in bar.segments] == [s for s in SERIES if row[s]]
        y = chart.baseline
        for segment in bar.segments:
            assert abs(segment.y + segment.height - y) < 1e-6  # no gap, no overlap
            assert abs(segment.height - plot_height * segment.count / top) < 1e-6
            y = segment.y
        assert y >= chart.baseline - plot_height - 1e-6  # never above the top tick
        assert 0 <= chart.baseline <= HEIGHT


@given(days)
def test_the_top_tick_is_the_smallest_round_number_at_or_above_the_busiest_day(
    rows: list[dict[str, int]],
) -> None:
    chart = _chart(rows)
    busiest = max(sum(row.values()) for row in rows)
    top = max(t.value for t in chart.ticks)

    assert top >= max(busiest, 1)
    assert str(top).strip("0") in ("1", "2", "5")
    assert top < 2.5 * max(busiest, 1) + 1


@given(days)
def test_legend_and_table_add_up_to_the_total(rows: list[dict[str, int]]) -> None:
    chart = _chart(rows)

    assert chart.total == sum(sum(row.values()) for row in rows)
    assert {s: n for s, _, n in chart.series} == {s: sum(r[s] for r in rows) for s in SERIES}
    assert [r["total"] for r in chart.table] == [sum(row.values()) for row in rows]
    assert str(chart.total) in chart.summary or chart.total == 0


def test_at_most_about_ten_day_labels() -> None:
    chart = _chart([dict.fromkeys(SERIES, 1)] * 92)

    labelled = [bar for bar in chart.bars if bar.show_label]
    assert 9 <= len(labelled) <= 12
    assert chart.bars[-1].show_label
