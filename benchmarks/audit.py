"""Audit: what recording costs, per decision, per page and per refused request.

The decision is the approval check of :mod:`benchmarks.decision` (clearance ``authorize()``,
warm user), allowed and denied. Three parts:

1. **Per decision**, with ``RECORD_ALLOWED = True`` so that both are recorded, in these
   configurations: *no audit* (``AUDIT_SINKS = []``; the signal is still sent); *logging*
   (``LoggingSink``, formatted by ``JsonFormatter`` and written to ``/dev/null``); *database,
   write-through* (``AUDIT_BATCH_SIZE = 1``: one insert per decision, committed at once),
   also while the caller holds a transaction open (as under ``ATOMIC_REQUESTS``) and outside
   any recording scope; *database, buffered* (the default: the scope's records written with
   one insert when it ends, here after 100 decisions); *defaults* (logging and database,
   buffered). Each batch of 100 decisions runs in one recording scope, as a request or a job
   does, and its final write is included in the time.
2. **A page of 50 decisions**: a request through ``ClearanceMiddleware`` to a view that decides
   the approval of 50 invoices for display (``authorize_many(..., probe=True)``, as the demo's
   list does) and renders them; with default settings against audit off. The same page
   deciding 50 *attempts* (no ``probe=True``) shows what forgetting the flag costs.
3. **A refused request**: the statements a request refused by ``enforce()`` sends, with default
   settings against audit off, and **the denied warm decision with default settings** against
   audit off: on the call, in a request's scope (what a decision adds before the view's next
   line; the scope's write at the end of the request is left out), with that write included
   (100 decisions per scope), and outside any scope (a job's loop of 100 decisions, whose
   records wait in the process's buffer and are written, with one statement, when the loop
   ends: ``flush_pending()``, included).

Each time is the median of several timed batches; a ratio is that median over the *no audit*
(or *audit off*) median of the same case.
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
    through = {**db_sink, "AUDIT_BATCH_SIZE": 1}
    return [
        ("no audit", {"AUDIT_SINKS": [], "RECORD_ALLOWED": True}, True, False),
        ("logging (JSON)", {"AUDIT_SINKS": [_LOGGING], "RECORD_ALLOWED": True}, True, False),
        ("database, write-through", through, True, False),
        ("database, write-through, in a transaction", through, True, True),
        ("database, write-through, in a transaction, no scope", through, False, True),
        ("database, buffered (default)", db_sink, True, False),
        ("database, buffered, in a transaction", db_sink, True, True),
        ("defaults (logging + database, buffered)", database, True, False),
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
    from clearance.audit.recording import flush_pending

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
            if not scoped:
                flush_pending()  # outside a scope: the end of the job's unit of work
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
                # Write-through rows pay a commit per decision: smaller batches.
                number = 10 if "write-through" in label else 100
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
            "",
            _targets(scenario, user, denied, rounds),
        ]
    )


# --------------------------------------------------------------------------------------------
# The targets: a page of 50 decisions, a refused request, the denied decision
# --------------------------------------------------------------------------------------------


def _defaults(vendor: str) -> dict[str, Any]:
    """The default settings (on SQLite with the audit database of its own the docs require)."""
    return {"AUDIT_DATABASE": "audit"} if vendor == "sqlite" else {}


def _page_view(user: Any, invoices: list[Any], probe: bool) -> Any:
    from django.http import HttpResponse
    from django.utils.html import escape

    from clearance import authorize_many

    def view(request: Any) -> Any:
        decisions = authorize_many(user, "bench.approve", invoices, probe=probe)
        rows = "".join(
            f"<tr><td>{escape(i.number)}</td><td>{escape(d.reason or 'yes')}</td></tr>"
            for i, d in zip(invoices, decisions, strict=True)
        )
        return HttpResponse(f"<table>{rows}</table>")

    return view


def _refused_view(user: Any, invoice: Any) -> Any:
    from django.http import HttpResponse

    from clearance import Denied, enforce

    def view(request: Any) -> Any:
        try:
            enforce(user, "bench.approve", invoice)
        except Denied as exc:
            return HttpResponse(exc.reason, status=403)
        return HttpResponse("approved")

    return view


def _served(view: Any) -> Any:
    """A callable serving one request to ``view`` through ``ClearanceMiddleware``."""
    from django.test import RequestFactory

    from clearance.middleware import ClearanceMiddleware

    middleware = ClearanceMiddleware(view)
    factory = RequestFactory()

    def serve() -> Any:
        return middleware(factory.get("/page/"))

    return serve


def _time(overrides: dict[str, Any], call: Any, number: int) -> float:
    from django.test import override_settings

    with override_settings(CLEARANCE=overrides):
        return harness.time_batch(call, number)


def _targets(scenario: Any, user: Any, denied: Any, rounds: int) -> str:
    import functools

    from django.db import connection
    from django.test import override_settings

    from clearance import authorize
    from clearance.audit import recording
    from clearance.audit.recording import flush_pending

    from .benchapp.models import Invoice

    vendor = connection.vendor
    off = {"AUDIT_SINKS": []}
    defaults = _defaults(vendor)
    # 50 invoices of a tenant alice is no member of: 50 denials to show.
    page = list(Invoice.objects.filter(number__startswith="F-").order_by("pk")[:50])
    shown = _served(_page_view(user, page, probe=True))
    attempted = _served(_page_view(user, page, probe=False))
    refused = _served(_refused_view(user, denied.invoice))
    deny = functools.partial(authorize, user, "bench.approve", denied.invoice)

    def in_scope(calls: int = 100) -> None:
        with recording():
            for _ in range(calls):
                deny()

    def in_a_job(calls: int = 100) -> None:
        # A job's loop outside any scope; its records written when its unit of work ends.
        for _ in range(calls):
            deny()
        flush_pending()

    def unshipped(call: Any) -> Any:
        # The same, with no handler writing clearance.audit lines (only NullHandler, as in
        # a project that ships no audit log): the logging sink then builds nothing.
        audit_logger = logging.getLogger("clearance.audit")

        def run() -> None:
            levels = [(h, h.level) for h in audit_logger.handlers]
            for handler, _ in levels:
                handler.setLevel(logging.CRITICAL + 1)
            try:
                call()
            finally:
                for handler, level in levels:
                    handler.setLevel(level)

        return run

    # (settings, call, calls per timed batch, decisions per call)
    rows: dict[str, tuple[dict[str, Any], Any, int, int]] = {
        "page of 50 probes, audit off": (off, shown, 20, 1),
        "page of 50 probes, defaults": (defaults, shown, 20, 1),
        "page of 50 attempts, defaults": (defaults, attempted, 5, 1),
        "refused request, audit off": (off, refused, 20, 1),
        "refused request, defaults": (defaults, refused, 20, 1),
        "denied decision in a scope, audit off": (off, in_scope, 1, 100),
        "denied decision in a scope, defaults": (defaults, in_scope, 1, 100),
        "denied decision in a scope, defaults, no log shipped": (
            defaults,
            unshipped(in_scope),
            1,
            100,
        ),
        "denied decision on the call, defaults": (defaults, deny, 1000, 1),
        "denied decision, no scope, audit off": (off, deny, 1000, 1),
        "denied decisions of a job, no scope, audit off": (off, in_a_job, 1, 100),
        "denied decisions of a job, no scope, defaults": (defaults, in_a_job, 1, 100),
        "denied decisions of a job, no scope, defaults, no log shipped": (
            defaults,
            unshipped(in_a_job),
            1,
            100,
        ),
    }
    samples = {label: harness.Samples() for label in rows}
    for overrides, call, _, _ in rows.values():
        _time(overrides, call, 1)  # warm: sessions, caches, the first connection
    order = random.Random(7)
    with _json_log_to_devnull():
        for _ in range(rounds):
            for label in order.sample(list(rows), len(rows)):
                overrides, call, number, per = rows[label]
                if label == "denied decision on the call, defaults":
                    # What a decision adds to the view's own time: the scope's write, at the
                    # end of the request, is left out (it is in the row above).
                    big = {**overrides, "AUDIT_BATCH_SIZE": 10_000}
                    with override_settings(CLEARANCE=big), recording():
                        samples[label].times.append(harness.time_batch(call, number))
                    continue
                samples[label].times.append(_time(overrides, call, number) / per)
    statements = {}
    for label in ("refused request, audit off", "refused request, defaults"):
        overrides, call, _, _ = rows[label]
        with override_settings(CLEARANCE=overrides), harness.count_queries() as counter:
            call()
        statements[label] = counter.count

    def ratio(label: str, base: str) -> str:
        return f"{samples[label].median / samples[base].median:.2f}x"

    lines = [
        [label, harness.fmt(samples[label].median, 1), harness.fmt(samples[label].iqr, 1)]
        for label in rows
    ]
    table = harness.table(["request or decision", "median µs", "IQR µs"], lines)
    extra = statements["refused request, defaults"] - statements["refused request, audit off"]
    on_call = "denied decision on the call, defaults"
    in_scope_on = "denied decision in a scope, defaults"
    in_scope_off = "denied decision in a scope, audit off"
    no_scope_on = "denied decisions of a job, no scope, defaults"
    no_scope_off = "denied decisions of a job, no scope, audit off"
    return "\n".join(
        [
            f"### The targets ({env.vendor()})",
            "",
            table,
            "",
            "- A page showing 50 decisions (probes), defaults against audit off: "
            f"{ratio('page of 50 probes, defaults', 'page of 50 probes, audit off')} "
            "(target at most 1.1x); the same page deciding 50 attempts: "
            f"{ratio('page of 50 attempts, defaults', 'page of 50 probes, audit off')}.",
            f"- A refused request: {statements['refused request, audit off']} statement(s) with "
            f"audit off, {statements['refused request, defaults']} with the defaults: "
            f"{extra} extra (target at most one); time "
            f"{ratio('refused request, defaults', 'refused request, audit off')}.",
            "- The denied warm decision, defaults against audit off (target within 2x): "
            f"{ratio(on_call, 'denied decision, no scope, audit off')} on the call, in a "
            "request's scope (the scope's "
            f"write at the end of the request left out); {ratio(in_scope_on, in_scope_off)} "
            "with that write included (100 decisions per scope); "
            f"{ratio(no_scope_on, no_scope_off)} outside any scope (a job's loop of 100, its "
            "records written from the process's buffer when the loop ends). With the audit log "
            "lines shipped nowhere (only the database sink at work): "
            f"{ratio(in_scope_on + ', no log shipped', in_scope_off)} in a scope, write "
            f"included; {ratio(no_scope_on + ', no log shipped', no_scope_off)} outside any "
            "scope.",
        ]
    )
