"""Filtering: list the invoices a user may approve, on 10,000 and 100,000 invoices.

The scenario is the one of :mod:`benchmarks.benchapp` (approve an invoice when the user holds
``bench.approve_invoice``, is a member of its tenant, is not its owner, it is submitted and at
most 10,000). The user is a member of several tenants. Each row lists every approvable invoice
(the queryset evaluated into model instances, as a list view or an export does):

- *hand-written Q*: ``has_perm`` then ``Invoice.objects.filter(<the rule as a Q>)``, the
  baseline;
- *clearance authorized()*: ``authorized(user, "bench.approve", Invoice.objects.all())``;
- *django-rules, per object*: ``[i for i in Invoice.objects.all() if user.has_perm(...)]``;
  django-rules has no queryset filter, so a list means a Python loop over every row;
- *bridgekeeper filter*: ``perms["bench.bk_approve_invoice"].filter(user, queryset)``;
- *django-guardian*: ``get_objects_for_user(...)`` after granting one object permission per
  approvable invoice (the grants are made before timing; keeping them in step with every
  change of tenant, owner, state or amount is the cost guardian moves elsewhere).

The user object is warm (its permission cache and per-request caches filled by a first
listing, not timed), as within a request that already checked ``has_perm``. Each row is timed
``REPEATS`` times, interleaved with the other rows, and the median is reported; a Python loop
over 100,000 rows is timed once. Every row's result is compared with the hand-written one.

``python -m benchmarks.filtering`` runs it alone; ``python -m benchmarks`` (``make bench``)
runs it with the others. ``CLEARANCE_BENCH_DATABASE=postgresql`` runs it on PostgreSQL.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import env, harness

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
RULES_BACKEND = "rules.permissions.ObjectPermissionBackend"

ACTION = "bench.approve"
#: The default table sizes.
SIZES = (10_000, 100_000)
#: Timed repeats of each row that runs in SQL (the median is reported).
REPEATS = int(os.environ.get("CLEARANCE_BENCH_FILTER_REPEATS", "11"))
#: Repeats of a row that loops over every row in Python, at or below LOOP_REPEAT_LIMIT rows.
LOOP_REPEATS = 3
LOOP_REPEAT_LIMIT = 20_000
#: A listing slower than this (ms, on its warm-up run) is timed once, to bound the run's time.
SLOW_MS = 1_000.0

TENANTS = 50
USERS = 40
#: The tenants the listing user belongs to (of TENANTS).
USER_TENANTS = 10
STATES = ("draft", "submitted", "approved", "paid")


@dataclass
class Method:
    """One way of listing the approvable invoices."""

    name: str
    listing: Callable[[Any], list[Any]]
    backends: tuple[str, ...] = (MODEL_BACKEND,)
    #: Loops over every row in Python (timed fewer times on large tables).
    per_object: bool = False
    #: Why the row could not run, when it could not.
    skipped: str | None = None


@dataclass
class Measure:
    """The timings (ms) and query count of one method on one table size."""

    method: Method
    size: int
    times: list[float] = field(default_factory=list)
    queries: int | None = None
    found: int | None = None
    wrong: str | None = None
    #: Why it could not run here (the method raised), when it could not.
    failed: str | None = None
    #: Its warm-up took more than SLOW_MS: timed once.
    slow: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def iqr(self) -> float:
        return harness.Samples(self.times).iqr


# --------------------------------------------------------------------------------------------
# The methods
# --------------------------------------------------------------------------------------------


def _methods() -> list[Method]:
    from guardian.shortcuts import get_objects_for_user

    from clearance import authorized

    from .benchapp import peers
    from .benchapp.models import Invoice

    def hand_written(user: Any) -> list[Any]:
        if not user.has_perm(peers.PERMISSION):
            return []
        return list(Invoice.objects.filter(peers.approvable_q(user)))

    def clearance_authorized(user: Any) -> list[Any]:
        return list(authorized(user, ACTION, Invoice.objects.all()))

    def rules_loop(user: Any) -> list[Any]:
        return [i for i in Invoice.objects.all() if user.has_perm(peers.RULES_PERMISSION, i)]

    def bridgekeeper_filter(user: Any) -> list[Any]:
        from bridgekeeper import perms

        return list(perms[peers.BK_PERMISSION].filter(user, Invoice.objects.all()))

    def guardian(user: Any) -> list[Any]:
        if not user.has_perm(peers.PERMISSION):
            return []
        found = get_objects_for_user(
            user, peers.PERMISSION, klass=Invoice.objects.all(), accept_global_perms=False
        )
        return list(found)

    return [
        Method("hand-written Q", hand_written),
        Method("clearance authorized()", clearance_authorized),
        Method(
            "django-rules has_perm, per object",
            rules_loop,
            (RULES_BACKEND, MODEL_BACKEND),
            per_object=True,
        ),
        Method("bridgekeeper filter", bridgekeeper_filter, skipped=_bridgekeeper_problem()),
        Method("django-guardian get_objects_for_user", guardian),
    ]


def _bridgekeeper_problem() -> str | None:
    """Why bridgekeeper cannot filter on this Django, or None when it can."""
    try:
        from bridgekeeper import perms

        from .benchapp import peers

        if peers.BK_PERMISSION not in perms:
            return "bridgekeeper's permission map did not load"
    except Exception as exc:  # depends on the installed versions
        return f"bridgekeeper does not import on this Django: {type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """The tenants, the users and the listing user; invoices are added size by size."""

    tenants: list[Any]
    users: list[Any]
    approver: Any
    rng: random.Random
    invoices: int = 0


def build() -> World:
    """Fifty tenants and forty users; the approver is a member of ten tenants."""
    from .benchapp.models import Membership
    from .benchapp.scenario import make_tenant, make_user

    rng = random.Random(20240601)
    tenants = [make_tenant(f"Tenant {i}") for i in range(TENANTS)]
    approver = make_user("approver", tenants=tenants[:USER_TENANTS])
    users = [approver]
    for i in range(USERS - 1):
        user = make_user(f"user{i}", approver=i % 3 == 0)
        users.append(user)
        Membership.objects.bulk_create(
            Membership(user=user, tenant=t) for t in rng.sample(tenants, rng.randint(1, 4))
        )
    return World(tenants, users, approver, rng)


def grow(world: Any, size: int) -> None:
    """Add invoices until there are ``size``: random tenant, owner (a tenth without), state
    and amount (about half above the 10,000 limit). ``world`` has ``tenants``, ``users``,
    ``rng`` and ``invoices`` (the count so far), as :class:`World` and the scopes' world do."""
    from .benchapp.models import Invoice

    rng = world.rng
    batch = []
    for i in range(world.invoices, size):
        owner = None if rng.random() < 0.1 else rng.choice(world.users)
        batch.append(
            Invoice(
                tenant=rng.choice(world.tenants),
                owner=owner,
                number=f"INV-{i}",
                state=rng.choice(STATES),
                amount=Decimal(rng.randint(1, 2_000_000)) / 100,
            )
        )
        if len(batch) == 5_000:
            Invoice.objects.bulk_create(batch)
            batch = []
    Invoice.objects.bulk_create(batch)
    world.invoices = size


def grant_guardian(user: Any, pks: set[Any]) -> None:
    """One guardian object permission per approvable invoice (and no other)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    from .benchapp.models import Invoice

    content_type = ContentType.objects.get_for_model(Invoice)
    permission = Permission.objects.get(content_type=content_type, codename="approve_invoice")
    UserObjectPermission.objects.filter(user=user, permission=permission).delete()
    UserObjectPermission.objects.bulk_create(
        (
            UserObjectPermission(
                user=user, permission=permission, content_type=content_type, object_pk=str(pk)
            )
            for pk in pks
        ),
        batch_size=5_000,
    )


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def _fresh(user: Any) -> Any:
    from .benchapp.scenario import fresh

    return fresh(user)


def _timed(call: Callable[[], Any]) -> float:
    """Milliseconds of one call, the garbage of the previous rows collected first and the
    collector off while it runs (so that no row pays for another's garbage)."""
    gc.collect()
    return harness.time_batch(call, 1) / 1000


def measure(methods: list[Method], world: World, size: int) -> list[Measure]:
    """Check every method against the baseline, then time it, counting the queries of its
    first timed run (so that a slow row runs twice in all: the warm-up and one timing)."""
    grow(world, size)
    baseline = {i.pk for i in methods[0].listing(_fresh(world.approver))}
    grant_guardian(world.approver, baseline)
    results = []
    users = {}
    for method in methods:
        result = Measure(method, size)
        results.append(result)
        if method.skipped is not None:
            continue
        with harness.backends(*method.backends):
            user = users[method.name] = _fresh(world.approver)
            try:
                start = time.perf_counter_ns()
                found = method.listing(user)  # warm-up: fills the user's caches
                result.slow = (time.perf_counter_ns() - start) / 1e6 > SLOW_MS
            except Exception as exc:
                result.failed = f"raises {type(exc).__name__}: {exc}"
                continue
            pks = [i.pk for i in found]
            result.found = len(pks)
            if set(pks) != baseline or len(pks) != len(set(pks)):
                result.wrong = f"{len(pks)} rows, {len(set(pks) ^ baseline)} differ"
            with harness.count_queries() as counter:
                result.times.append(_timed(lambda: method.listing(user)))  # noqa: B023
            result.queries = counter.count
    large = size > LOOP_REPEAT_LIMIT
    for round_ in range(1, REPEATS):
        # Each round starts with another row, so that no row always follows the same one.
        shift = round_ % len(results)
        for result in results[shift:] + results[:shift]:
            method = result.method
            if method.skipped is not None or result.failed is not None:
                continue
            if method.per_object and round_ >= (1 if large else LOOP_REPEATS):
                continue
            if result.slow and round_ >= 1:
                continue
            with harness.backends(*method.backends):
                user = users[method.name]
                result.times.append(_timed(lambda: method.listing(user)))  # noqa: B023
    return results


def authorized_overhead(world: World) -> tuple[float, float]:
    """(µs to build ``authorized()``'s queryset, µs to build the hand-written one), no query."""
    from clearance import authorized

    from .benchapp import peers
    from .benchapp.models import Invoice

    user = _fresh(world.approver)
    user.has_perm(peers.PERMISSION)
    authorized(user, ACTION, Invoice.objects.all())
    number = 2_000
    ours = harness.time_batch(lambda: authorized(user, ACTION, Invoice.objects.all()), number)
    theirs = harness.time_batch(
        lambda: (
            user.has_perm(peers.PERMISSION) and Invoice.objects.filter(peers.approvable_q(user))
        ),
        number,
    )
    return ours, theirs


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def table(results: list[Measure]) -> str:
    """One Markdown table: every method on every size, with its ratio to the hand-written Q."""
    lines = []
    for size in dict.fromkeys(r.size for r in results):
        rows = [r for r in results if r.size == size]
        base = rows[0].median
        for r in rows:
            name = r.method.name
            why = r.method.skipped or r.failed
            if why is not None:
                lines.append([name, f"{size:,}", "", "", "", "", "", f"not run: {why}"])
                continue
            if r.wrong:
                name += f" (WRONG: {r.wrong})"
            timed = f"{len(r.times)}" + (" (once)" if len(r.times) == 1 else "")
            lines.append(
                [
                    name,
                    f"{size:,}",
                    f"{r.found:,}",
                    harness.fmt(r.median, 1),
                    harness.fmt(r.iqr, 1) if len(r.times) > 1 else "",
                    timed,
                    str(r.queries),
                    f"{r.median / base:.2f}x",
                ]
            )
    return harness.table(
        [
            "listing",
            "invoices",
            "approvable",
            "median ms",
            "IQR ms",
            "timed",
            "queries",
            "vs hand-written Q",
        ],
        lines,
        align="lrrrrrrr",
    )


def run(rows: list[int] | None = None) -> str:
    """Measure every method on each table size (default 10,000 and 100,000 invoices).

    Returns the Markdown section (heading, setup, table) that ``python -m benchmarks`` prints.
    """
    env.setup()
    world = build()
    methods = _methods()
    started = time.monotonic()
    results: list[Measure] = []
    for size in sorted(rows or SIZES):
        results += measure(methods, world, size)
    overhead, by_hand = authorized_overhead(world)
    spent = time.monotonic() - started
    return "\n".join(
        [
            "## Filtering",
            "",
            f"Listing the invoices a user may approve ({env.vendor()}; the user is a member of "
            f"{USER_TENANTS} of {TENANTS} tenants; median of {REPEATS} runs; a Python loop over "
            f"more than {LOOP_REPEAT_LIMIT:,} rows, or a listing slower than {SLOW_MS / 1000:.0f} "
            "s, timed once; queries with a warm user).",
            "",
            table(results),
            "",
            f"Building the queryset, without running it: `authorized()` {overhead:.1f} µs, the "
            f"hand-written `has_perm` and `Q` {by_hand:.1f} µs. Measured in {spent:.0f} s.",
        ]
    )


def main() -> int:
    """``python -m benchmarks.filtering [SIZE ...]``: print the table."""
    sizes = [int(arg.replace("_", "").replace(",", "")) for arg in sys.argv[1:]]
    print(run(sizes or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
