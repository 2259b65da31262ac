"""What verifying a write costs: a save with model invariants, against a plain save.

Each row saves the same invoice (its number changes, so every call writes), once per call:

- *plain save*: the model has no invariant (the guards are installed and find nothing to do);
- *guard, local columns*: invariants that read only the invoice's own columns: the ``pre_save``
  guard decides them on the instance, in Python, with no query;
- *verified after the write, update_fields*: the same invariants, ``save(update_fields=...)``:
  the other columns of the row may differ from the instance, so the row is verified in the
  database inside a savepoint (one SELECT, a SAVEPOINT and its RELEASE);
- *verified after the write, another table*: an invariant that reads the invoice's tenant:
  the row is verified in the database, with the compiled rule, inside a savepoint.

Ratios are against the plain save and against the guard on local columns (the guard as it was
before post-write verification). Audit is off. PostgreSQL is used when reachable, as for
``benchmarks.perform`` (``CLEARANCE_BENCH_DATABASE=sqlite`` forces SQLite).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import env, harness

#: Rounds per row (each round times one batch of calls of every row, interleaved).
ROUNDS = int(os.environ.get("CLEARANCE_BENCH_ROUNDS", "15"))

#: Duration of one timed batch.
BATCH_SECONDS = 0.05

_numbers = itertools.count()


def _use_postgres_when_reachable() -> str | None:
    from . import perform

    why_not = perform._use_postgres_when_reachable()
    if why_not is None:
        os.environ["CLEARANCE_BENCH_PG_NAME"] = "clearance_bench_writes"
    return why_not


@dataclass
class Row:
    name: str
    invariants: str  # "none", "local" or "other_table"
    update_fields: bool
    samples: harness.Samples = field(default_factory=harness.Samples)


def _rows() -> list[Row]:
    return [
        Row("plain save (no invariant)", "none", False),
        Row("guard: local columns, decided in Python", "local", False),
        Row("verified after the write: save(update_fields=...)", "local", True),
        Row("verified after the write: invariant reads another table", "other_table", False),
    ]


def _declare(kind: str, empty: Any) -> None:
    """Put the registry in the state a row needs (the invariants it measures, or none)."""
    from clearance import model_invariant, where
    from clearance.actions import registry

    from .benchapp.models import Invoice

    registry.restore(empty)
    if kind in ("local", "other_table"):
        model_invariant(Invoice, "not_negative", where(amount__gte=0))
    if kind == "other_table":
        model_invariant(Invoice, "named_tenant", ~where(tenant__name=""))


def _call(invoice: Any, update_fields: bool) -> Callable[[], None]:
    def save() -> None:
        invoice.number = f"INV-{next(_numbers)}"
        if update_fields:
            invoice.save(update_fields=["number"])
        else:
            invoice.save()

    return save


def measure(rows: list[Row], invoice: Any, *, nested: bool, rounds: int = ROUNDS) -> None:
    """Count each row's queries, then time the rows interleaved, round by round."""
    from django.db import transaction

    from clearance.actions import registry

    empty = registry.snapshot()

    def block() -> Any:
        return transaction.atomic() if nested else nullcontext()

    sizes = {}
    try:
        for row in rows:
            _declare(row.invariants, empty)
            call = _call(invoice, row.update_fields)
            with block():
                call()  # warm: guards installed, statements compiled
                with harness.count_queries() as counter:
                    for _ in range(10):
                        call()
                row.samples.queries = counter.count / 10
                sizes[row.name] = harness.batch_size(call, BATCH_SECONDS)
        for _ in range(rounds):
            for row in rows:
                _declare(row.invariants, empty)
                call = _call(invoice, row.update_fields)
                call()  # the guards follow the registry on the first save
                with block():
                    row.samples.times.append(harness.time_batch(call, sizes[row.name]))
    finally:
        registry.restore(empty)


def _table(rows: list[Row]) -> str:
    plain, guard = rows[0].samples.median, rows[1].samples.median
    return harness.table(
        ["save", "median µs", "IQR µs", "queries", "vs plain save", "vs local guard"],
        [
            [
                row.name,
                harness.fmt(row.samples.median, 1),
                harness.fmt(row.samples.iqr, 1),
                harness.fmt(row.samples.queries, 1),
                f"{row.samples.median / plain:.2f}x",
                f"{row.samples.median / guard:.2f}x",
            ]
            for row in rows
        ],
    )


def run() -> str:
    """Measure saves with and without post-write verification; return the tables as Markdown."""
    why_not_postgres = _use_postgres_when_reachable()
    env.setup()
    from django.conf import settings

    settings.CLEARANCE = {"AUDIT_SINKS": []}
    from .benchapp.models import Invoice
    from .benchapp.scenario import make_tenant, make_user

    acme = make_tenant("Acme")
    bob = make_user("bob", tenants=[acme])
    invoice = Invoice.objects.create(
        tenant=acme, owner=bob, number="INV", state="submitted", amount=Decimal(500)
    )
    committed = _rows()
    measure(committed, invoice, nested=False)
    nested = _rows()
    measure(nested, invoice, nested=True)
    database = env.vendor() + (f" (not PostgreSQL: {why_not_postgres})" if why_not_postgres else "")
    return "\n".join(
        [
            "### Writes: post-write verification against a plain save",
            "",
            f"Database: {database}. Audit off; {ROUNDS} rounds, interleaved. Queries counts the "
            "statements sent (not BEGIN, COMMIT or savepoints).",
            "",
            "Each save its own transaction, committed:",
            "",
            _table(committed),
            "",
            "Inside one open transaction (no commit per save), which shows the overhead itself:",
            "",
            _table(nested),
        ]
    )


if __name__ == "__main__":
    print(run())
