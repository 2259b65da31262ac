"""perform(): the approval done atomically on a locked row, against the same thing by hand.

Each row is one complete write of the scenario's approval (see
:mod:`benchmarks.benchapp.peers`), run once per call:

- *hand-written*: ``transaction.atomic()``, ``select_for_update()`` re-read, the approval check
  written inline (:func:`benchmarks.benchapp.peers.can_approve`), then ``save()``;
- *clearance perform()*: ``with perform(user, "bench.approve", invoice) as locked:`` and the
  same ``save()``; perform locks the row, runs the three gates on it, re-reads the row after
  the body and re-checks the invariants before commit;
- *lock and save, no check*: the floor, for reference.

To keep the invoice approvable call after call, the body changes its number, not its state.
The user object is the same for every call (warm: ``_perm_cache`` filled); the gates of
perform still run on the fresh row and bypass clearance's per-actor cache, as they must. Audit
is off. The figures are meant for PostgreSQL: the run uses it when a server is reachable
(``CLEARANCE_TEST_PG_*``; ``CLEARANCE_BENCH_DATABASE=sqlite`` forces SQLite).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import env, harness

ACTION = "bench.approve"

#: Rounds per row (each round times one batch of calls of every row, interleaved).
ROUNDS = int(os.environ.get("CLEARANCE_BENCH_ROUNDS", "15"))

#: Duration of one timed batch: a write takes milliseconds, so batches are longer than the
#: harness's default to hold enough calls.
BATCH_SECONDS = 0.1

#: The target of the issue: perform() within this factor of the hand-written version.
TARGET = 1.3


def _use_postgres_when_reachable() -> str | None:
    """Choose PostgreSQL before Django is configured; returns why not, when it is not used."""
    choice = os.environ.get("CLEARANCE_BENCH_DATABASE")
    if choice:
        return None if choice.lower().startswith("postgres") else f"forced to {choice}"
    try:
        import psycopg

        psycopg.connect(
            host=os.environ.get("CLEARANCE_TEST_PG_HOST", "127.0.0.1"),
            port=int(os.environ.get("CLEARANCE_TEST_PG_PORT", "5432")),
            user=os.environ.get("CLEARANCE_TEST_PG_USER", "postgres"),
            password=os.environ.get("CLEARANCE_TEST_PG_PASSWORD") or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except Exception as exc:
        return f"PostgreSQL is not reachable ({type(exc).__name__})"
    os.environ["CLEARANCE_BENCH_DATABASE"] = "postgresql"
    os.environ.setdefault("CLEARANCE_BENCH_PG_NAME", "clearance_bench_perform")
    return None


# --------------------------------------------------------------------------------------------
# The rows
# --------------------------------------------------------------------------------------------

_numbers = itertools.count()


def _next_number() -> str:
    return f"INV-{next(_numbers)}"


def hand_written(user: Any, invoice: Any) -> None:
    """What a careful view does by hand: lock, check, write, in one transaction."""
    from django.core.exceptions import PermissionDenied
    from django.db import transaction

    from .benchapp import peers

    with transaction.atomic():
        locked = type(invoice).objects.select_for_update().get(pk=invoice.pk)
        if not peers.can_approve(user, locked):
            raise PermissionDenied
        locked.number = _next_number()
        locked.save()


def with_perform(user: Any, invoice: Any) -> None:
    """The same with clearance."""
    from clearance import perform

    with perform(user, ACTION, invoice) as locked:
        locked.number = _next_number()
        locked.save()


def lock_and_save(user: Any, invoice: Any) -> None:
    """The floor: the transaction, the lock and the write, without any check."""
    from django.db import transaction

    with transaction.atomic():
        locked = type(invoice).objects.select_for_update().get(pk=invoice.pk)
        locked.number = _next_number()
        locked.save()


@dataclass
class Row:
    name: str
    call: Callable[[Any, Any], None]
    samples: harness.Samples = field(default_factory=harness.Samples)


def _rows() -> list[Row]:
    return [
        Row("hand-written: atomic + select_for_update + check + save", hand_written),
        Row("clearance perform() + save", with_perform),
        Row("lock and save, no check (floor)", lock_and_save),
    ]


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def _scenario() -> tuple[Any, Any]:
    """An approver and a submitted invoice of their tenant, authored by someone else."""
    from .benchapp.models import Invoice
    from .benchapp.scenario import make_tenant, make_user

    acme = make_tenant("Acme")
    globex = make_tenant("Globex")
    alice = make_user("alice", tenants=[acme])
    bob = make_user("bob", tenants=[acme, globex])
    invoice = Invoice.objects.create(
        tenant=acme, owner=bob, number="INV", state="submitted", amount=Decimal(500)
    )
    Invoice.objects.bulk_create(
        Invoice(tenant=globex, owner=bob, number=f"F-{i}", state="submitted", amount=Decimal(i))
        for i in range(2_000)
    )
    return alice, Invoice.objects.get(pk=invoice.pk)


def measure(
    rows: list[Row], user: Any, invoice: Any, *, nested: bool, rounds: int = ROUNDS
) -> None:
    """Count each row's queries, then time them interleaved, round by round.

    ``nested``: each batch runs inside one open transaction (the calls use savepoints and
    nothing is committed per call), which takes the commit's disk flush out of the figures.
    """
    from contextlib import nullcontext

    from django.db import transaction

    def block() -> Any:
        return transaction.atomic() if nested else nullcontext()

    calls = {row.name: functools.partial(row.call, user, invoice) for row in rows}
    sizes = {}
    for row in rows:
        call = calls[row.name]
        with block():
            call()  # warm: caches, prepared plans
            with harness.count_queries() as counter:
                for _ in range(10):
                    call()
            row.samples.queries = counter.count / 10
            sizes[row.name] = harness.batch_size(call, BATCH_SECONDS)
    for _ in range(rounds):
        for row in rows:
            with block():
                row.samples.times.append(harness.time_batch(calls[row.name], sizes[row.name]))


def _table(rows: list[Row]) -> tuple[str, float, float]:
    """The table, and perform()'s ratio to the hand-written approval and to the bare write."""
    base, floor = rows[0].samples.median, rows[2].samples.median
    lines = [
        [
            row.name,
            harness.fmt(row.samples.median, 1),
            harness.fmt(row.samples.iqr, 1),
            f"{1e6 / row.samples.median:,.0f}",
            harness.fmt(row.samples.queries, 1),
            f"{row.samples.median / base:.2f}x",
            f"{row.samples.median / floor:.2f}x",
        ]
        for row in rows
    ]
    text = harness.table(
        [
            "write",
            "median µs",
            "IQR µs",
            "per second",
            "queries",
            "vs hand-written",
            "vs lock and save",
        ],
        lines,
    )
    return text, rows[1].samples.median / base, rows[1].samples.median / floor


def run() -> str:
    """Measure perform() against the hand-written locked write; return the tables as Markdown."""
    why_not_postgres = _use_postgres_when_reachable()
    env.setup()
    from django.conf import settings

    settings.CLEARANCE = {"AUDIT_SINKS": []}
    user, invoice = _scenario()
    committed = _rows()
    measure(committed, user, invoice, nested=False)
    committed_text, ratio, ratio_floor = _table(committed)
    nested = _rows()
    measure(nested, user, invoice, nested=True)
    nested_text, nested_ratio, _ = _table(nested)
    verdict = "met" if ratio <= TARGET else "**not met**"
    verdict_floor = "met" if ratio_floor <= TARGET else "**not met**"
    database = env.vendor() + (f" (not PostgreSQL: {why_not_postgres})" if why_not_postgres else "")
    parts = [
        "### perform(): an approval on a locked row, against the same write by hand",
        "",
        f"Database: {database}. Audit off; one user object (warm); {ROUNDS} rounds, "
        "interleaved. Queries counts the statements sent (not BEGIN, COMMIT or savepoints).",
        "",
        "Each call its own transaction, committed (what a view does):",
        "",
        committed_text,
        "",
        f"perform() takes {ratio:.2f}x the hand-written approval (target: within {TARGET}x, "
        f"{verdict}) and {ratio_floor:.2f}x the bare locked save ({verdict_floor}).",
        "",
        "Inside one open transaction (savepoints, no commit per call), which leaves out the "
        "commit's flush to disk and shows the overhead itself:",
        "",
        nested_text,
        "",
        f"Here perform() takes {nested_ratio:.2f}x the hand-written version. Its extra work: "
        "the tenant membership, asked inside the locking statement (the gates bypass the "
        "per-actor cache on the locked row, where the hand-written check uses the request's "
        "cached tenant ids), the re-read of the row after the body for the invariant "
        "re-check, and the decision's bookkeeping. perform() compiles its two statements once "
        "and reuses them, which the hand-written ORM calls do not.",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(run())
