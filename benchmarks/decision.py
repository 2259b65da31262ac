"""Decisions: one approval check, by hand, with the peers and with clearance, side by side.

The scenario (see :mod:`benchmarks.benchapp.peers`): approve an invoice when the user holds
``bench.approve_invoice`` through a group, is a member of the invoice's tenant, is not its
owner, the invoice is submitted, and its amount is at most 10,000.

Every row is one Python function ``check(user, invoice)`` that makes the check once through
its library, and is measured in the same process run, interleaved round by round:

- *warm*: the same user object for every call, as within one request (Django's
  ``_perm_cache``, the tenant ids and clearance's per-actor cache are filled);
- *cold*: a fresh user object for every call, as on the first check of a request (built
  without a query, outside the timed code).

The invoice objects are loaded once and shared. Each peer runs with its own authentication
backend configured (and Django's ``ModelBackend``), as a project using it would. Audit is off
for the first table; the second switches each audit sink on in turn.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import env, harness

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
RULES_BACKEND = "rules.permissions.ObjectPermissionBackend"
BRIDGEKEEPER_BACKEND = "bridgekeeper.backends.RulePermissionBackend"
GUARDIAN_BACKEND = "guardian.backends.ObjectPermissionBackend"

ACTION = "bench.approve"

#: Rounds per row (each round times one batch of warm calls and one of cold calls).
ROUNDS = int(os.environ.get("CLEARANCE_BENCH_ROUNDS", "15"))


# --------------------------------------------------------------------------------------------
# The rows: one check(user, invoice) per library
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One implementation of the check."""

    name: str
    check: Callable[[Any, Any], Any]
    backends: tuple[str, ...] = (MODEL_BACKEND,)
    #: Turns the user into the check's first argument (outside the timed code).
    prepare: Callable[[Any], Any] = lambda user: user
    #: Why the row could not run, when it could not.
    skipped: str | None = None


def _rows() -> list[Row]:
    import rules
    from django.http import HttpRequest
    from rest_framework.request import Request

    from clearance import authorize

    from .benchapp import peers

    drf_permission = peers.CanApproveInvoice()

    def drf_request(user: Any) -> Any:
        request = Request(HttpRequest())
        request.user = user
        return request

    def hand_written(user: Any, invoice: Any) -> bool:
        return bool(
            user.has_perm(peers.PERMISSION)
            and invoice.tenant_id in peers.member_tenant_ids(user)
            and invoice.owner_id != user.pk
            and invoice.state == "submitted"
            and invoice.amount <= peers.LIMIT
        )

    def drf(request: Any, invoice: Any) -> bool:
        return drf_permission.has_permission(
            request, None
        ) and drf_permission.has_object_permission(request, None, invoice)

    def rules_has_perm(user: Any, invoice: Any) -> bool:
        return bool(user.has_perm(peers.RULES_PERMISSION, invoice))

    def rules_test_rule(user: Any, invoice: Any) -> bool:
        return bool(rules.test_rule(peers.RULES_RULE, user, invoice))

    def bridgekeeper_has_perm(user: Any, invoice: Any) -> bool:
        return bool(user.has_perm(peers.BK_PERMISSION, invoice))

    def clearance_authorize(user: Any, invoice: Any) -> Any:
        return authorize(user, ACTION, invoice)

    return [
        Row("hand-written inline check", hand_written),
        Row("DRF permission class", drf, prepare=drf_request),
        Row("django-rules test_rule", rules_test_rule, (RULES_BACKEND, MODEL_BACKEND)),
        Row("django-rules has_perm", rules_has_perm, (RULES_BACKEND, MODEL_BACKEND)),
        Row(
            "bridgekeeper has_perm",
            bridgekeeper_has_perm,
            (MODEL_BACKEND, BRIDGEKEEPER_BACKEND),
            skipped=_bridgekeeper_problem(),
        ),
        Row("clearance authorize()", clearance_authorize),
    ]


def _bridgekeeper_problem() -> str | None:
    """Why bridgekeeper cannot run on this Django, or None when it runs."""
    try:
        from bridgekeeper import perms

        from .benchapp import peers

        if peers.BK_PERMISSION not in perms:
            return "bridgekeeper's permission map did not load"
    except Exception as exc:  # pragma: no cover - depends on the installed versions
        return f"bridgekeeper does not import on this Django: {type(exc).__name__}: {exc}"
    return None


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """A user and an invoice, and the verdict every correct check gives."""

    name: str
    user: Any
    invoice: Any
    expected: bool


@dataclass
class Scenario:
    cases: list[Case]
    superuser: Any
    big_invoice: Any
    superuser_cases: list[Case] = field(default_factory=list)


def build() -> Scenario:
    """Two tenants, an approver, an author, a superuser and the invoices they act on."""
    from .benchapp.models import Invoice
    from .benchapp.scenario import make_tenant, make_user

    acme = make_tenant("Acme")
    globex = make_tenant("Globex")
    alice = make_user("alice", tenants=[acme])  # an approver in Acme
    bob = make_user("bob", tenants=[acme, globex])  # another approver, the author
    make_user("carol", approver=False, tenants=[acme])
    root = make_user("root", approver=False, tenants=[acme], is_superuser=True, is_staff=True)

    def invoice(number: str, amount: int, state: str = "submitted", tenant: Any = acme) -> Any:
        created = Invoice.objects.create(
            tenant=tenant, owner=bob, number=number, state=state, amount=Decimal(amount)
        )
        return Invoice.objects.get(pk=created.pk)

    ok = invoice("INV-1", 500)
    over = invoice("INV-2", 50_000)
    # Filler, so that lookups do not run on a near-empty table.
    Invoice.objects.bulk_create(
        Invoice(tenant=globex, owner=bob, number=f"F-{i}", state="submitted", amount=Decimal(i))
        for i in range(2_000)
    )
    cases = [
        Case("allowed", alice, ok, True),
        Case("denied (above the limit)", alice, over, False),
    ]
    big = invoice("INV-3", 50_000)
    return Scenario(cases, root, big)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    row: Row
    case: Case
    warm: harness.Samples = field(default_factory=harness.Samples)
    cold: harness.Samples = field(default_factory=harness.Samples)
    wrong: list[str] = field(default_factory=list)


def _fresh(user: Any) -> Any:
    from .benchapp.scenario import fresh

    return fresh(user)


def _verify(result: Result) -> None:
    row, case = result.row, result.case
    for label in ("warm", "cold"):
        user = _fresh(case.user)
        arg = row.prepare(user)
        outcome = bool(row.check(arg, case.invoice))
        if label == "warm":
            outcome = bool(row.check(arg, case.invoice))
        if outcome is not case.expected:
            result.wrong.append(f"{label}: {'allowed' if outcome else 'denied'}")


def _count(result: Result) -> None:
    row, case = result.row, result.case
    user = _fresh(case.user)
    arg = row.prepare(user)
    with harness.count_queries() as cold:
        row.check(arg, case.invoice)
    row.check(arg, case.invoice)
    calls = 10
    with harness.count_queries() as warm:
        for _ in range(calls):
            row.check(arg, case.invoice)
    result.cold.queries = cold.count
    result.warm.queries = warm.count / calls


def _measure_round(result: Result, sizes: dict[tuple[int, str], int]) -> None:
    row, case = result.row, result.case
    key = id(result)
    # Warm: the same user object, caches filled.
    arg = row.prepare(_fresh(case.user))
    check, invoice = row.check, case.invoice
    check(arg, invoice)
    call = functools.partial(check, arg, invoice)
    if (key, "warm") not in sizes:
        sizes[key, "warm"] = harness.batch_size(call)
    result.warm.times.append(harness.time_batch(call, sizes[key, "warm"]))
    # Cold: a fresh user object per call.
    if (key, "cold") not in sizes:
        probe = [functools.partial(check, row.prepare(_fresh(case.user)), invoice)]
        spent = harness.time_each(probe)
        sizes[key, "cold"] = max(5, int(harness.BATCH_SECONDS * 1e6 / max(spent, 1.0)))
    calls = [
        functools.partial(check, row.prepare(_fresh(case.user)), invoice)
        for _ in range(sizes[key, "cold"])
    ]
    result.cold.times.append(harness.time_each(calls))


def measure(rows: list[Row], cases: list[Case], rounds: int = ROUNDS) -> list[Result]:
    """Verify, count queries, then time every (row, case), interleaved round by round."""
    results = [Result(row, case) for row in rows if row.skipped is None for case in cases]
    for result in results:
        with harness.backends(*result.row.backends):
            _verify(result)
            _count(result)
    sizes: dict[tuple[int, str], int] = {}
    for _ in range(rounds):
        for result in results:
            with harness.backends(*result.row.backends):
                _measure_round(result, sizes)
    return results


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _decisions_table(rows: list[Row], results: list[Result]) -> str:
    baseline: dict[tuple[str, str], float] = {}
    for r in results:
        if r.row.name == rows[0].name:
            baseline[r.case.name, "warm"] = r.warm.median
            baseline[r.case.name, "cold"] = r.cold.median
    lines = []
    for case_name in dict.fromkeys(r.case.name for r in results):
        for warmth in ("warm", "cold"):
            for r in results:
                if r.case.name != case_name:
                    continue
                samples = r.warm if warmth == "warm" else r.cold
                ratio = samples.median / baseline[case_name, warmth]
                name = r.row.name + (f" (WRONG: {', '.join(r.wrong)})" if r.wrong else "")
                lines.append(
                    [
                        name,
                        case_name,
                        warmth,
                        harness.fmt(samples.median, 2),
                        harness.fmt(samples.iqr, 2),
                        harness.fmt(samples.queries, 1),
                        f"{ratio:.2f}x",
                    ]
                )
    for row in rows:
        if row.skipped is not None:
            lines.append([row.name, "(not run)", row.skipped, "", "", "", ""])
    return harness.table(
        ["check", "case", "user", "median µs", "IQR µs", "queries", "vs hand-written"],
        lines,
        align="lllrrrr",
    )


def _targets(results: list[Result]) -> str:
    """The issue's targets for clearance, read off the table."""

    def find(name: str, case: Case) -> Result:
        return next(r for r in results if r.row.name.startswith(name) and r.case is case)

    cases: list[Case] = []
    for r in results:
        if not any(r.case is c for c in cases):
            cases.append(r.case)
    lines = []
    for case in cases:
        ours, hand = find("clearance", case), find("hand-written", case)
        test_rule = find("django-rules test_rule", case)
        lines.append(
            f"- {case.name}: clearance warm {ours.warm.median / hand.warm.median:.2f}x the "
            f"hand-written check (target 2x, stretch 1.5x) and "
            f"{ours.warm.median / test_rule.warm.median:.2f}x django-rules' test_rule; "
            f"queries warm {harness.fmt(ours.warm.queries)}, cold "
            f"{harness.fmt(ours.cold.queries)} (hand-written cold: "
            f"{harness.fmt(hand.cold.queries)})."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# What the peers get wrong: a superuser and the approval limit
# --------------------------------------------------------------------------------------------


def _superuser_table(scenario: Scenario, rows: list[Row]) -> str:
    from guardian.core import ObjectPermissionChecker

    from .benchapp import peers

    invoice = scenario.big_invoice
    lines = []
    for row in rows:
        if row.skipped is not None:
            continue
        with harness.backends(*row.backends):
            verdict = bool(row.check(row.prepare(_fresh(scenario.superuser)), invoice))
        lines.append([row.name, _verdict(verdict)])
    with harness.backends(MODEL_BACKEND, GUARDIAN_BACKEND):
        user = _fresh(scenario.superuser)
        lines.append(["guardian has_perm", _verdict(user.has_perm(peers.PERMISSION, invoice))])
        checker = ObjectPermissionChecker(_fresh(scenario.superuser))
        verdict = checker.has_perm(peers.PERMISSION, invoice)
        lines.append(["guardian ObjectPermissionChecker", _verdict(verdict)])
    return harness.table(["check", "superuser approves a 50,000 invoice"], lines, align="ll")


def _verdict(allowed: bool) -> str:
    return "**approves** (wrong)" if allowed else "denies"


# --------------------------------------------------------------------------------------------
# Audit sinks
# --------------------------------------------------------------------------------------------


def _sink_configurations() -> list[tuple[str, dict[str, Any]]]:
    """(label, CLEARANCE overrides) for audit off and for each sink the project ships."""
    from clearance.audit import sinks
    from clearance.conf import DEFAULTS

    configurations: list[tuple[str, dict[str, Any]]] = [("audit off", {"AUDIT_SINKS": []})]
    found = [
        f"{sinks.__name__}.{name}"
        for name, obj in vars(sinks).items()
        if inspect.isclass(obj) and obj.__module__ == sinks.__name__ and hasattr(obj, "record")
    ]
    for path in found:
        label = path.rsplit(".", 1)[-1]
        configurations.append((label, {"AUDIT_SINKS": [path], "RECORD_ALLOWED": True}))
        if "atabase" in label and "AUDIT_BATCH_SIZE" in DEFAULTS:
            configurations.append(
                (
                    f"{label}, batched by 100",
                    {"AUDIT_SINKS": [path], "RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 100},
                )
            )
    default_sinks = list(DEFAULTS["AUDIT_SINKS"])
    configurations.append(
        (f"defaults ({', '.join(p.rsplit('.', 1)[-1] for p in default_sinks)})", {})
    )
    if "AUDIT_DATABASE" in DEFAULTS:
        for _, overrides in configurations[1:]:
            overrides.setdefault("AUDIT_DATABASE", "audit")
    return configurations


@contextmanager
def _audit_logging() -> Iterator[None]:
    """Audit log records formatted and written to /dev/null, as a shipped log stream would be."""
    audit_logger = logging.getLogger("clearance.audit")
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
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


def _audit_table(scenario: Scenario, clearance_row: Row) -> str:
    from django.test import override_settings

    configurations = _sink_configurations()
    rounds = max(5, ROUNDS // 2)
    measured: list[tuple[str, Case, harness.Samples]] = []
    problems: list[str] = []
    with harness.backends(*clearance_row.backends), _audit_logging():
        for label, overrides in configurations:
            try:
                with override_settings(CLEARANCE=overrides):
                    for case in scenario.cases:
                        samples = _measure_warm(clearance_row, case, rounds)
                        measured.append((label, case, samples))
            except Exception as exc:
                problems.append(f"- {label}: not measured ({type(exc).__name__}: {exc})")
    base = {c.name: s.median for label, c, s in measured if label == "audit off"}
    lines = [
        [
            label,
            case.name,
            harness.fmt(s.median, 2),
            harness.fmt(s.iqr, 2),
            harness.fmt(s.queries, 1),
            f"{s.median - base[case.name]:+.2f}" if label != "audit off" else "",
        ]
        for label, case, s in measured
    ]
    text = harness.table(
        ["audit", "case", "median µs", "IQR µs", "queries", "µs over audit off"],
        lines,
        align="llrrrr",
    )
    return text + ("\n\n" + "\n".join(problems) if problems else "")


def _measure_warm(row: Row, case: Case, rounds: int) -> harness.Samples:
    arg = row.prepare(_fresh(case.user))
    row.check(arg, case.invoice)
    calls = 10
    with harness.count_queries() as counter:
        for _ in range(calls):
            row.check(arg, case.invoice)
    samples = harness.Samples(queries=counter.count / calls)
    call = functools.partial(row.check, arg, case.invoice)
    number = harness.batch_size(call)
    for _ in range(rounds):
        samples.times.append(harness.time_batch(call, number))
    return samples


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def run() -> str:
    """Build the scenario, measure every row, and return the tables as Markdown."""
    env.setup()
    scenario = build()
    rows = _rows()
    results = measure(rows, scenario.cases)
    parts = [
        "### One approval check, audit off",
        "",
        _decisions_table(rows, results),
        "",
        _targets(results),
        "",
        "### What the peers get wrong: a superuser and the limit",
        "",
        "The superuser is a member of the tenant and not the invoice's author; the invoice is "
        "submitted and its amount, 50,000, is above the limit.",
        "",
        _superuser_table(scenario, rows),
    ]
    # benchmarks/audit.py measures this decision with each sink, scoped as in a request: one
    # table, not two made differently. This one stands in when that module is absent.
    if not _has_audit_benchmark():
        parts += [
            "",
            "### Decisions with each audit sink (clearance `authorize()`, warm user)",
            "",
            _audit_table(scenario, rows[-1]),
        ]
    return "\n".join(parts)


def _has_audit_benchmark() -> bool:
    import importlib.util

    return importlib.util.find_spec("benchmarks.audit") is not None


if __name__ == "__main__":
    print(run())
