"""Scopes: gate 1 held through a membership of the object's tenant, against gate 1 held globally.

The approval scenario of :mod:`benchmarks.benchapp`, declared twice with the same rules
(``benchapp/authz.py``): ``bench.approve`` needs ``bench.approve_invoice`` globally (the user's
groups, Django's ``_perm_cache``); ``bench.approve_in_tenant`` needs it globally *or* through a
membership of the invoice's tenant (the scope ``tenant``: ``Membership.groups``). Two users are
members of the same ten tenants (of fifty): *global* holds the permission through its own
groups, *scoped* only through its memberships' groups.

- **Decisions** (warm: the same user object for every call, caches filled; cold: a fresh user
  object per call, built without a query). The rows: the unscoped action for the global user
  (the baseline), the scoped action for the scoped user (gate 1 through a membership), and the
  scoped action for the global user (gate 1 holds before any membership is looked at). Two
  cases: allowed, and denied by the invariant (above the limit).
- **Lists** of every approvable invoice, on 10,000 and 100,000 invoices (evaluated into model
  instances): ``authorized()`` on the scoped action for the scoped user against the
  hand-written ``has_perm`` and ``Q`` with the same join (``tenant__in`` the tenants of the
  user's memberships whose groups hold the permission, then the approval's conditions), and, for
  reference, the unscoped pair for the global user. Every row's result is compared with its
  hand-written one. Warm users; each row timed ``REPEATS`` times, interleaved; the median.

``python -m benchmarks.scopes [SIZE ...]`` runs it alone; ``python -m benchmarks scopes`` in a
child process like the others. ``CLEARANCE_BENCH_DATABASE=postgresql`` runs it on PostgreSQL.
"""

from __future__ import annotations

import functools
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
from .filtering import grow

UNSCOPED = "bench.approve"
SCOPED = "bench.approve_in_tenant"
#: The default table sizes of the lists.
SIZES = (10_000, 100_000)
#: Rounds of the decision table (each times one warm batch and one cold batch per row).
ROUNDS = int(os.environ.get("CLEARANCE_BENCH_ROUNDS", "15"))
#: Timed repeats of each list (the median is reported).
REPEATS = int(os.environ.get("CLEARANCE_BENCH_FILTER_REPEATS", "11"))

TENANTS = 50
#: The tenants both listing users belong to (of TENANTS).
USER_TENANTS = 10
OTHER_USERS = 20
#: The group a membership carries to approve within its tenant (not a group of any user).
TENANT_APPROVERS = "tenant approvers"


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass
class World:
    """The tenants, the two listing users, the other users (invoice owners)."""

    tenants: list[Any]
    global_user: Any
    scoped_user: Any
    users: list[Any]
    rng: random.Random
    invoices: int = 0


def build() -> World:
    """Fifty tenants; two users in the first ten (one global approver, one through memberships);
    twenty other users in a few tenants each, half of them approving within their tenants."""
    from django.contrib.auth.models import Group, Permission

    from .benchapp.models import Membership
    from .benchapp.scenario import make_tenant, make_user

    rng = random.Random(20261203)
    tenants = [make_tenant(f"Tenant {i}") for i in range(TENANTS)]
    within = Group.objects.create(name=TENANT_APPROVERS)
    within.permissions.add(
        Permission.objects.get(codename="approve_invoice", content_type__app_label="bench")
    )
    global_user = make_user("global", tenants=tenants[:USER_TENANTS])
    scoped_user = make_user("scoped", approver=False, tenants=tenants[:USER_TENANTS])
    for membership in Membership.objects.filter(user=scoped_user):
        membership.groups.add(within)
    users = [global_user, scoped_user]
    for i in range(OTHER_USERS):
        user = make_user(f"user{i}", approver=False)
        users.append(user)
        for tenant in rng.sample(tenants, rng.randint(1, 4)):
            membership = Membership.objects.create(user=user, tenant=tenant)
            if i % 2:
                membership.groups.add(within)
    return World(tenants, global_user, scoped_user, users, rng)


def _fresh(user: Any) -> Any:
    from .benchapp.scenario import fresh

    return fresh(user)


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


@dataclass
class DecisionRow:
    """One (action, user) pair, decided on each case."""

    name: str
    action: str
    user: str  # "global_user" or "scoped_user"


DECISION_ROWS = [
    DecisionRow("unscoped action, permission held globally", UNSCOPED, "global_user"),
    DecisionRow("scoped action, permission through a membership", SCOPED, "scoped_user"),
    DecisionRow("scoped action, permission held globally", SCOPED, "global_user"),
]


@dataclass
class DecisionResult:
    row: DecisionRow
    case: str
    invoice: Any
    expected: bool
    warm: harness.Samples = field(default_factory=harness.Samples)
    cold: harness.Samples = field(default_factory=harness.Samples)
    wrong: str | None = None


def decision_cases(world: World) -> list[tuple[str, Any, bool]]:
    """(name, invoice, verdict): allowed, and denied by the invariant (above the limit)."""
    from .benchapp.models import Invoice

    owner = world.users[-1]

    def invoice(number: str, amount: int) -> Any:
        made = Invoice.objects.create(
            tenant=world.tenants[0],
            owner=owner,
            number=number,
            state="submitted",
            amount=Decimal(amount),
        )
        return Invoice.objects.get(pk=made.pk)

    return [
        ("allowed", invoice("D-1", 500), True),
        ("denied (above the limit)", invoice("D-2", 50_000), False),
    ]


def measure_decisions(world: World, rounds: int = ROUNDS) -> list[DecisionResult]:
    """Verify and count queries, then time warm and cold, every row interleaved round by round."""
    from clearance import authorize

    results = [
        DecisionResult(row, name, invoice, expected)
        for name, invoice, expected in decision_cases(world)
        for row in DECISION_ROWS
    ]
    for r in results:
        base = getattr(world, r.row.user)
        user = _fresh(base)
        with harness.count_queries() as cold:
            verdict = authorize(user, r.row.action, r.invoice).allowed
        with harness.count_queries() as warm:
            for _ in range(10):
                again = authorize(user, r.row.action, r.invoice).allowed
        if verdict is not r.expected or again is not r.expected:
            r.wrong = f"{'allowed' if verdict else 'denied'}"
        r.cold.queries = cold.count
        r.warm.queries = warm.count / 10
    sizes: dict[tuple[int, str], int] = {}
    for _ in range(rounds):
        for r in results:
            base = getattr(world, r.row.user)
            user = _fresh(base)
            call = functools.partial(authorize, user, r.row.action, r.invoice)
            call()
            if (id(r), "warm") not in sizes:
                sizes[id(r), "warm"] = harness.batch_size(call)
            r.warm.times.append(harness.time_batch(call, sizes[id(r), "warm"]))
            if (id(r), "cold") not in sizes:
                probe = [functools.partial(authorize, _fresh(base), r.row.action, r.invoice)]
                spent = harness.time_each(probe)
                sizes[id(r), "cold"] = max(5, int(harness.BATCH_SECONDS * 1e6 / max(spent, 1.0)))
            calls = [
                functools.partial(authorize, _fresh(base), r.row.action, r.invoice)
                for _ in range(sizes[id(r), "cold"])
            ]
            r.cold.times.append(harness.time_each(calls))
    return results


def decisions_table(results: list[DecisionResult]) -> str:
    """Warm and cold medians, each against the unscoped decision of the same case."""
    base = {
        (r.case, warmth): getattr(r, warmth).median
        for r in results
        if r.row is DECISION_ROWS[0]
        for warmth in ("warm", "cold")
    }
    lines = []
    for case in dict.fromkeys(r.case for r in results):
        for warmth in ("warm", "cold"):
            for r in results:
                if r.case != case:
                    continue
                samples: harness.Samples = getattr(r, warmth)
                name = r.row.name + (f" (WRONG: {r.wrong})" if r.wrong else "")
                lines.append(
                    [
                        name,
                        case,
                        warmth,
                        harness.fmt(samples.median, 2),
                        harness.fmt(samples.iqr, 2),
                        harness.fmt(samples.queries, 1),
                        f"{samples.median / base[case, warmth]:.2f}x",
                    ]
                )
    return harness.table(
        ["decision", "case", "user", "median µs", "IQR µs", "queries", "vs unscoped"],
        lines,
        align="lllrrrr",
    )


# --------------------------------------------------------------------------------------------
# Lists
# --------------------------------------------------------------------------------------------


@dataclass
class ListRow:
    """One way of listing the approvable invoices, for one user."""

    name: str
    user: str
    listing: Callable[[Any], list[Any]]
    #: The row whose result it must equal (by name), None for a hand-written baseline.
    baseline: str | None = None


@dataclass
class ListResult:
    row: ListRow
    size: int
    times: list[float] = field(default_factory=list)
    queries: int | None = None
    found: int | None = None
    wrong: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def scoped_q(user: Any) -> Any:
    """The hand-written filter of the scoped action: the tenants of the user's memberships
    whose groups hold the permission, and the approval's conditions (after ``has_perm``)."""
    from django.db.models import Q

    from .benchapp import peers
    from .benchapp.models import Membership

    granting = Membership.objects.filter(
        user_id=user.pk,
        groups__permissions__content_type__app_label="bench",
        groups__permissions__codename="approve_invoice",
    ).values("tenant_id")
    return Q(tenant__in=granting) & peers.approvable_q(user)


def list_rows() -> list[ListRow]:
    from clearance import authorized

    from .benchapp import peers
    from .benchapp.models import Invoice

    def hand_unscoped(user: Any) -> list[Any]:
        if not user.has_perm(peers.PERMISSION):
            return []
        return list(Invoice.objects.filter(peers.approvable_q(user)))

    def hand_scoped(user: Any) -> list[Any]:
        if user.has_perm(peers.PERMISSION):
            return list(Invoice.objects.filter(peers.approvable_q(user)))
        return list(Invoice.objects.filter(scoped_q(user)))

    def ours(action: str) -> Callable[[Any], list[Any]]:
        return lambda user: list(authorized(user, action, Invoice.objects.all()))

    return [
        ListRow("hand-written has_perm and Q with the membership join", "scoped_user", hand_scoped),
        ListRow(
            "clearance authorized(), scoped action",
            "scoped_user",
            ours(SCOPED),
            baseline="hand-written has_perm and Q with the membership join",
        ),
        ListRow("hand-written has_perm and Q (global permission)", "global_user", hand_unscoped),
        ListRow(
            "clearance authorized(), unscoped action",
            "global_user",
            ours(UNSCOPED),
            baseline="hand-written has_perm and Q (global permission)",
        ),
    ]


def _timed(call: Callable[[], Any]) -> float:
    """Milliseconds of one call, earlier garbage collected first, the collector off meanwhile."""
    gc.collect()
    return harness.time_batch(call, 1) / 1000


def measure_lists(world: World, size: int, repeats: int = REPEATS) -> list[ListResult]:
    """Grow the table to ``size``, check every row against its baseline, time them interleaved."""
    grow(world, size)
    rows = list_rows()
    results = [ListResult(row, size) for row in rows]
    users = {}
    found: dict[str, set[Any]] = {}
    for r in results:
        user = users[r.row.name] = _fresh(getattr(world, r.row.user))
        pks = [i.pk for i in r.row.listing(user)]  # warm-up: fills the user's caches
        found[r.row.name] = set(pks)
        r.found = len(pks)
        if len(pks) != len(set(pks)):
            r.wrong = "duplicate rows"
        with harness.count_queries() as counter:
            r.times.append(_timed(lambda: r.row.listing(user)))  # noqa: B023
        r.queries = counter.count
    for r in results:
        if r.row.baseline is not None and found[r.row.name] != found[r.row.baseline]:
            r.wrong = f"{len(found[r.row.name] ^ found[r.row.baseline])} rows differ"
    for round_ in range(1, repeats):
        shift = round_ % len(results)
        for r in results[shift:] + results[:shift]:
            user = users[r.row.name]
            r.times.append(_timed(lambda: r.row.listing(user)))  # noqa: B023
    return results


def lists_table(results: list[ListResult]) -> str:
    """Every row on every size, with its ratio to its hand-written baseline."""
    by_name = {(r.row.name, r.size): r for r in results}
    lines = []
    for r in results:
        base = by_name[r.row.baseline or r.row.name, r.size]
        name = r.row.name + (f" (WRONG: {r.wrong})" if r.wrong else "")
        lines.append(
            [
                name,
                f"{r.size:,}",
                f"{r.found:,}",
                harness.fmt(r.median, 1),
                harness.fmt(harness.Samples(r.times).iqr, 1),
                str(r.queries),
                f"{r.median / base.median:.2f}x",
            ]
        )
    return harness.table(
        ["listing", "invoices", "approvable", "median ms", "IQR ms", "queries", "vs hand-written"],
        lines,
        align="llrrrrr",
    )


# --------------------------------------------------------------------------------------------
# The section
# --------------------------------------------------------------------------------------------


def targets(decisions: list[DecisionResult], lists: list[ListResult]) -> str:
    """The issue's targets, read off the tables."""
    out = []
    for case in dict.fromkeys(r.case for r in decisions):
        base = next(r for r in decisions if r.case == case and r.row is DECISION_ROWS[0])
        scoped = next(r for r in decisions if r.case == case and r.row is DECISION_ROWS[1])
        out.append(
            f"- Decision, {case}: scoped warm {scoped.warm.median / base.warm.median:.2f}x the "
            f"unscoped one (target at most 1.2x); queries warm "
            f"{harness.fmt(scoped.warm.queries)}, cold {harness.fmt(scoped.cold.queries)} "
            f"(unscoped cold: {harness.fmt(base.cold.queries)})."
        )
    first = list_rows()[:2]
    for size in dict.fromkeys(r.size for r in lists):
        hand, ours = (
            next(r for r in lists if r.size == size and r.row.name == row.name) for row in first
        )
        out.append(
            f"- List of {size:,} invoices: scoped `authorized()` {ours.median / hand.median:.2f}x "
            f"the hand-written `Q` with the same join (target at most 1.2x), {ours.queries} "
            f"query with a warm user."
        )
    return "\n".join(out)


def run(sizes: list[int] | None = None) -> str:
    """Measure the decisions, then the lists on each size; return the Markdown section."""
    env.setup()
    started = time.monotonic()
    world = build()
    decisions = measure_decisions(world)
    lists: list[ListResult] = []
    for size in sorted(sizes or SIZES):
        lists += measure_lists(world, size)
    spent = time.monotonic() - started
    return "\n".join(
        [
            "## Scopes",
            "",
            f"Gate 1 through a membership of the invoice's tenant against gate 1 held globally "
            f"({env.vendor()}; both users are members of {USER_TENANTS} of {TENANTS} tenants).",
            "",
            f"Decisions (median of {ROUNDS} rounds, batches of about "
            f"{harness.BATCH_SECONDS * 1000:.0f} ms; queries of separate, untimed calls):",
            "",
            decisions_table(decisions),
            "",
            f"Lists (median of {REPEATS} runs, interleaved; queries with a warm user):",
            "",
            lists_table(lists),
            "",
            targets(decisions, lists),
            "",
            f"Measured in {spent:.0f} s.",
        ]
    )


def main() -> int:
    """``python -m benchmarks.scopes [SIZE ...]``: print the section."""
    sizes = [int(arg.replace("_", "").replace(",", "")) for arg in sys.argv[1:]]
    print(run(sizes or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
