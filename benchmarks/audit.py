"""Audit: what each sink costs per decision, against no audit.

The decision is the approval check of :mod:`benchmarks.decision` (clearance ``authorize()``,
warm user), allowed and denied, with ``RECORD_ALLOWED = True`` so that both are recorded.
Configurations:

- *no audit*: ``AUDIT_SINKS = []`` (the signal is still sent);
- *logging*: ``LoggingSink``, formatted by ``JsonFormatter`` and written to ``/dev/null``, as a
  shipped log stream would be;
- *database, write-through*: ``DatabaseSink``, one insert per decision, committed at once
  (SQLite: in the ``audit`` database of its own; PostgreSQL: through the ordinary connection,
  which has no transaction open), inside a recording scope as in a request;
- *... in a transaction*: the same while the caller holds a transaction open (as under
  ``ATOMIC_REQUESTS``): on PostgreSQL the insert then goes through the dedicated connection;
- *... no scope*: the same outside any recording scope: on PostgreSQL the dedicated
  connection is then opened and closed around each write;
- *database, batched by 100*: allowed decisions buffered and written 100 at a time with one
  ``bulk_create`` (denials are always written through);
- *defaults*: logging and database, as a project gets without configuring anything.

Each figure is the median of several timed batches, in microseconds per decision; the ratio is
that median over the *no audit* median of the same case.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from . import env, harness

ROUNDS = int(os.environ.get("CLEARANCE_BENCH_ROUNDS", "15"))

_LOGGING = "clearance.audit.sinks.LoggingSink"
_DATABASE = "clearance.audit.sinks.DatabaseSink"


def _configurations(vendor: str) -> list[tuple[str, dict[str, Any], bool, bool]]:
    """(label, CLEARANCE settings, inside a recording scope, inside a transaction) per row."""
    database: dict[str, Any] = {"RECORD_ALLOWED": True}
    if vendor == "sqlite":
        database["AUDIT_DATABASE"] = "audit"  # the configuration the docs require on SQLite
    db_sink = {**database, "AUDIT_SINKS": [_DATABASE]}
    return [
        ("no audit", {"AUDIT_SINKS": [], "RECORD_ALLOWED": True}, True, False),
        ("logging (JSON)", {"AUDIT_SINKS": [_LOGGING], "RECORD_ALLOWED": True}, True, False),
        ("database, write-through", db_sink, True, False),
        ("database, write-through, in a transaction", db_sink, True, True),
        ("database, write-through, in a transaction, no scope", db_sink, False, True),
        ("database, batched by 100", {**db_sink, "AUDIT_BATCH_SIZE": 100}, True, False),
        ("defaults (logging + database)", database, True, False),
    ]


@contextmanager
def _json_log_to_devnull() -> Iterator[None]:
    from clearance.audit.logging import JsonFormatter

    audit_logger = logging.getLogger("clearance.audit")
    with open(os.devnull, "w") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        old = (audit_logger.level, audit_logger.propagate)
        audit_logger.addHandler(handler)
        audit_logger.setLevel(logging.INFO)
        audit_logger.propagate = False
        try:
            yield
        finally:
            audit_logger.removeHandler(handler)
            audit_logger.setLevel(old[0])
            audit_logger.propagate = old[1]


def _timed_batch(
    overrides: dict[str, Any], scoped: bool, atomic: bool, call: Any, number: int
) -> float:
    """Mean µs per decision of ``number`` calls, including the scope's final write."""
    import gc
    import time

    from django.db import transaction
    from django.test import override_settings

    from clearance.audit import recording

    gc.disable()
    try:
        with override_settings(CLEARANCE=overrides):
            start = time.perf_counter_ns()
            # As in a request: the middleware's scope outside, the view's transaction inside.
            with (
                recording() if scoped else nullcontext(),
                transaction.atomic() if atomic else nullcontext(),
            ):
                for _ in range(number):
                    call()
            elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / number / 1000


def run() -> str:
    """Measure every configuration, interleaved round by round; return the table as Markdown."""
    env.setup()
    from django.db import connection

    from clearance import authorize
    from clearance.audit.models import AuditRecord

    from .decision import _fresh, build

    scenario = build()
    allowed = next(c for c in scenario.cases if c.expected)
    denied = next(c for c in scenario.cases if not c.expected)
    user = _fresh(allowed.user)
    calls = {
        True: functools.partial(authorize, user, "bench.approve", allowed.invoice),
        False: functools.partial(authorize, user, "bench.approve", denied.invoice),
    }
    for expected, call in calls.items():
        assert bool(call()) is expected, "the scenario changed: the benchmark would mislead"
    configurations = _configurations(connection.vendor)
    samples = {(c[0], verdict): harness.Samples() for c in configurations for verdict in calls}
    rounds = max(5, ROUNDS // 2)
    with _json_log_to_devnull():
        order = random.Random(5)
        for _ in range(rounds):
            # A fresh order each round, so that no row always pays for coming first.
            for label, overrides, scoped, atomic in order.sample(
                configurations, len(configurations)
            ):
                writes = "database" in label or "defaults" in label
                # Batches of 200 hold two full buffers of the batched row; writes are slower.
                number = 10 if writes and "batched" not in label else 200
                for verdict, call in calls.items():
                    samples[(label, verdict)].times.append(
                        _timed_batch(overrides, scoped, atomic, call, number)
                    )
    written = AuditRecord.objects.using("audit").count() + AuditRecord.objects.count()
    base = {verdict: samples[("no audit", verdict)].median for verdict in calls}
    lines = []
    for label, *_ in configurations:
        row = [label]
        for verdict in (True, False):
            median = samples[(label, verdict)].median
            row += [harness.fmt(median, 1), f"{median / base[verdict]:.1f}x"]
        lines.append(row)
    table = harness.table(["audit", "allowed µs", "vs no audit", "denied µs", "vs no audit"], lines)
    where = (
        "into the `audit` SQLite database of its own"
        if connection.vendor == "sqlite"
        else "into the default database (in a transaction: through the dedicated connection)"
    )
    return "\n".join(
        [
            f"### Cost of each audit sink per decision ({env.vendor()})",
            "",
            table,
            "",
            f"Database rows are written {where}; {written:,} rows were written during the run. "
            f"Medians over {rounds} interleaved rounds, per decision (warm user, both decisions "
            "recorded, the scope's final write included).",
        ]
    )
