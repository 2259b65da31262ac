"""Timing, query counting and tables shared by the benchmark modules.

Times are per call, in microseconds. A *sample* is the mean time per call over a batch of
calls (batches are sized to last about ``BATCH_SECONDS``, with the garbage collector off, as
``timeit`` does); the median and the interquartile range are taken over the samples. Callers
interleave the implementations round by round, so that drift of the machine affects all alike.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: Target duration of one timed batch, in seconds.
BATCH_SECONDS = 0.02


@dataclass
class Samples:
    """Per-call times (µs) of the batches measured for one row, and its queries per call."""

    times: list[float] = field(default_factory=list)
    queries: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        if len(self.times) < 4:
            return max(self.times) - min(self.times)
        q = statistics.quantiles(self.times, n=4)
        return q[2] - q[0]


def time_batch(call: Callable[[], Any], number: int) -> float:
    """Mean µs per call of ``number`` calls of ``call``."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(number):
            call()
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / number / 1000


def time_each(calls: Sequence[Callable[[], Any]]) -> float:
    """Mean µs per call of a list of prepared calls (each run once)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for call in calls:
            call()
        elapsed = time.perf_counter_ns() - start
    finally:
        if gc_was_enabled:
            gc.enable()
    return elapsed / len(calls) / 1000


def batch_size(call: Callable[[], Any], seconds: float = BATCH_SECONDS) -> int:
    """How many calls of ``call`` fill about ``seconds``."""
    number = 1
    while True:
        spent = time_batch(call, number) * number / 1e6
        if spent >= seconds / 10 or number >= 1_000_000:
            break
        number *= 10
    per_call = spent / number
    return max(1, min(1_000_000, int(seconds / per_call)))


class QueryCounter:
    """Counts SQL queries on every database connection while active."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: Any, params: Any, many: Any, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def count_queries() -> Iterator[QueryCounter]:
    """``with count_queries() as q: ...`` then ``q.count``."""
    from contextlib import ExitStack

    from django.db import connections

    counter = QueryCounter()
    with ExitStack() as stack:
        for connection in connections.all():
            stack.enter_context(connection.execute_wrapper(counter))
        yield counter


@contextmanager
def backends(*paths: str) -> Iterator[None]:
    """Run with these authentication backends (each peer installs its own)."""
    from django.test import override_settings

    with override_settings(AUTHENTICATION_BACKENDS=list(paths)):
        yield


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a table cell ('' for None)."""
    if value is None:
        return ""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A Markdown table, padded so that it also reads well in a terminal.

    ``align`` has one letter per column: ``l`` or ``r`` (default: first column left, others
    right).
    """
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(c).ljust(w) if a == "l" else str(c).rjust(w)
            for c, w, a in zip(cells, widths, align, strict=False)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if a == "r" else (":" + "-" * (w + 1))
            for w, a in zip(widths, align, strict=False)
        )
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
