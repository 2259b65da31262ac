"""Assertions and helpers for testing authorization rules in a project's own test suite.

Every helper asks the same registry and engine production uses: ``assert_allowed`` and
``assert_denied`` call :func:`clearance.authorize`, and a failure prints the full trace (each gate
and rule with its outcome), so a failing test says which rule decided and why::

    from clearance.testing import assert_allowed, assert_denied

    def test_nobody_approves_their_own_invoice(alice, invoice):
        assert_denied(alice, "invoices.approve", invoice, layer="policy", rule="four_eyes")

``assert_matrix`` checks a table of (actor, action, object) -> expected outcome at once;
``assert_write_refused`` checks that a model invariant refuses a write;
``override_rules`` and ``negate_rule`` change an action's rules for one test and restore the
registry afterwards; ``capture_decisions`` records the decisions made in a block;
``assert_filter_consistent`` checks that ``authorized()`` returns exactly what ``authorize()``
allows object by object; ``capture_non_bool_results`` records predicates that returned
something other than True or False (they deny). The helpers' decisions are probes
(``probe=True``): they ask, nobody tries to act, so they are not recorded in the audit trail by
default. The pytest plugin (``-p clearance.pytest_plugin``) adds fixtures, rule coverage and
warnings on top of these.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .actions import Action, NamedRule, coerce_rule, default_reason, registry
from .decisions import Decision, InvariantViolation, Layer
from .engine import actor_ref, authorize, explain
from .formatting import format_decision
from .rules.context import decision_now
from .signals import decision_made

__all__ = [
    "DecisionLog",
    "NonBoolPredicateWarning",
    "NonBoolResult",
    "WriteRefusal",
    "assert_allowed",
    "assert_denied",
    "assert_filter_consistent",
    "assert_matrix",
    "assert_outcome",
    "assert_write_refused",
    "capture_decisions",
    "capture_non_bool_results",
    "negate_rule",
    "override_rules",
]

#: What a test may expect of a decision: True / ``"allowed"``, False / ``"denied"``, a layer
#: (``Layer.POLICY`` or ``"policy"``), a code (``"policy.four_eyes"``) or a rule name.
Expected = bool | str | Layer

_LAYER_NAMES = {layer.value: layer for layer in Layer}


# --------------------------------------------------------------------------------------------
# What is expected
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expectation:
    allowed: bool
    layer: Layer | None = None
    rule: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        if self.allowed:
            return "allowed"
        if self.code:
            return f"denied by {self.code}"
        parts = []
        if self.layer is not None:
            parts.append(f"at the {self.layer.value} gate")
        if self.rule is not None:
            parts.append(f"by rule {self.rule!r}")
        return " ".join(["denied", *parts])

    def problems(self, decision: Decision) -> list[str]:
        """How ``decision`` differs from this expectation (empty when it matches)."""
        if self.allowed:
            return [] if decision.allowed else [f"it was denied by {decision.code}"]
        if decision.allowed:
            return ["it was allowed"]
        found = []
        if self.layer is not None and decision.layer is not self.layer:
            found.append(f"the {decision.layer} gate denied, not the {self.layer.value} gate")
        if self.rule is not None and decision.rule != self.rule:
            found.append(f"rule {decision.rule!r} denied, not {self.rule!r}")
        if self.code is not None and decision.code != self.code:
            found.append(f"it was denied by {decision.code}, not {self.code}")
        return found


def _layer(value: Layer | str) -> Layer:
    if isinstance(value, Layer):
        return value
    try:
        return _LAYER_NAMES[value]
    except KeyError:
        raise ValueError(
            f"layer={value!r}: expected one of {', '.join(sorted(_LAYER_NAMES))}"
        ) from None


def _rule_names(action: Action) -> list[str]:
    return [action.permission_label, *(rule.name for rule in action.rules)]


def _check_rule(action: Action, rule: str) -> None:
    names = _rule_names(action)
    if rule not in names:
        raise ValueError(
            f"{action.name} has no rule named {rule!r}; its rules are: {', '.join(names)}"
        )


def _expectation(action: Action, expected: Expected) -> _Expectation:
    if expected is True or expected == "allowed":
        return _Expectation(allowed=True)
    if expected is False or expected == "denied":
        return _Expectation(allowed=False)
    if isinstance(expected, Layer) or expected in _LAYER_NAMES:
        return _Expectation(allowed=False, layer=_layer(expected))
    if not isinstance(expected, str) or not expected:
        raise TypeError(
            f"expected outcome {expected!r}: use True/'allowed', False/'denied', a layer, a code "
            "such as 'policy.four_eyes', or a rule name"
        )
    prefix, _, rule = expected.partition(".")
    if prefix in _LAYER_NAMES and rule:
        layer = _LAYER_NAMES[prefix]
        if layer is Layer.PERMISSION and rule != action.permission_label:
            raise ValueError(
                f"{expected!r}: {action.name} needs the permission {action.permission_label}"
            )
        if layer is not Layer.PERMISSION:
            _check_rule(action, rule)
        return _Expectation(allowed=False, layer=layer, rule=rule, code=expected)
    _check_rule(action, expected)
    return _Expectation(allowed=False, rule=expected)


# --------------------------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------------------------


def _describe_object(obj: Any) -> str:
    if obj is None:
        return ""
    label = f"{obj._meta.label}:{obj.pk}" if hasattr(obj, "_meta") else repr(obj)
    text = str(obj)
    return f" on {label}" + (f" ({text})" if text and text != label else "")


def _subject(actor: Any, action: str | Action, obj: Any) -> str:
    return f"{actor_ref(actor)} {action}{_describe_object(obj)}"


def _failure(
    headline: str, actor: Any, action: str | Action, obj: Any, request: Any, extra: dict[str, Any]
) -> AssertionError:
    explained = explain(actor, action, obj, request=request, **extra)
    trace = format_decision(explained, subject=_subject(actor, action, obj))
    return AssertionError(f"{headline}\n\n{trace}")


def assert_outcome(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    expected: Expected = True,
    *,
    request: Any = None,
    **extra: Any,
) -> Decision:
    """Assert that :func:`clearance.authorize` reaches ``expected``; return the decision.

    ``expected`` is True / ``"allowed"``, False / ``"denied"``, a layer (``"policy"``), a code
    (``"policy.four_eyes"``, ``"permission.invoices.approve_invoice"``) or a rule name. A rule
    name the action does not have is a ``ValueError`` (a typo never passes silently).
    """
    act = registry.get(action)
    expectation = _expectation(act, expected)
    decision = authorize(actor, act, obj, request=request, probe=True, **extra)
    problems = expectation.problems(decision)
    if problems:
        headline = (
            f"Expected {_subject(actor, act, obj)} to be {expectation}, but {'; '.join(problems)}."
        )
        raise _failure(headline, actor, act, obj, request, extra)
    return decision


def assert_allowed(
    actor: Any, action: str | Action, obj: Any = None, *, request: Any = None, **extra: Any
) -> Decision:
    """Assert that ``actor`` may do ``action`` on ``obj``; return the decision.

    On failure the message shows every gate and rule with its outcome and the denial's reason.
    """
    return assert_outcome(actor, action, obj, True, request=request, **extra)


def assert_denied(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    layer: Layer | str | None = None,
    rule: str | None = None,
    code: str | None = None,
    request: Any = None,
    **extra: Any,
) -> Decision:
    """Assert that ``actor`` may not do ``action`` on ``obj``; return the decision.

    ``layer`` (``"permission"``, ``"policy"``, ``"invariant"`` or a :class:`~clearance.Layer`),
    ``rule`` (the rule's name; the permission string for gate 1) and ``code`` pin down which
    gate and rule must deny: a denial by another rule fails the assertion. On failure the
    message shows every gate and rule with its outcome.
    """
    act = registry.get(action)
    if rule is not None:
        _check_rule(act, rule)
    if code is not None:
        _expectation(act, code)
    expectation = _Expectation(
        allowed=False,
        layer=_layer(layer) if layer is not None else None,
        rule=rule,
        code=code,
    )
    decision = authorize(actor, act, obj, request=request, probe=True, **extra)
    problems = expectation.problems(decision)
    if problems:
        headline = (
            f"Expected {_subject(actor, act, obj)} to be {expectation}, but {'; '.join(problems)}."
        )
        raise _failure(headline, actor, act, obj, request, extra)
    return decision


Case = tuple[Any, "str | Action", Any, Expected]


def assert_matrix(
    cases: Mapping[tuple[Any, str | Action, Any], Expected] | Iterable[Case],
    **extra: Any,
) -> list[Decision]:
    """Check a whole authorization table at once: (actor, action, object) -> expected outcome.

    ``cases`` is a mapping ``{(actor, action, obj): expected}`` or rows
    ``(actor, action, obj, expected)`` (rows also take unsaved objects, which cannot be
    dictionary keys); ``expected`` is as for :func:`assert_outcome`. Every row
    is decided (none is skipped after a failure) and one ``AssertionError`` lists all the rows
    that did not match, each with its trace. Returns the decisions, in order.
    """
    if isinstance(cases, Mapping):
        rows: list[Case] = [(a, act, o, exp) for (a, act, o), exp in cases.items()]
    else:
        rows = [tuple(row) for row in cases]
    if not rows:
        raise ValueError("assert_matrix() needs at least one case")
    decisions: list[Decision] = []
    failures: list[str] = []
    for index, (actor, action, obj, expected) in enumerate(rows, start=1):
        act = registry.get(action)
        expectation = _expectation(act, expected)
        decision = authorize(actor, act, obj, probe=True, **extra)
        decisions.append(decision)
        problems = expectation.problems(decision)
        if problems:
            explained = explain(actor, act, obj, **extra)
            failures.append(
                f"#{index} {_subject(actor, act, obj)}: expected {expectation}, but "
                f"{'; '.join(problems)}.\n"
                + format_decision(explained, subject="   trace:").replace("\n", "\n   ")
            )
    if failures:
        raise AssertionError(
            f"{len(failures)} of {len(rows)} authorization cases failed:\n\n"
            + "\n\n".join(failures)
        )
    return decisions


class WriteRefusal:
    """What :func:`assert_write_refused` saw: the refused write's decision."""

    decision: Decision | None = None


@contextmanager
def assert_write_refused(rule: str | None = None) -> Iterator[WriteRefusal]:
    """Assert that a write inside the block is refused by a model invariant.

    ``rule`` names the invariant that must refuse it; the caller's transaction stays usable::

        with assert_write_refused(rule="paid_is_final"):
            invoice.save()
    """
    refusal = WriteRefusal()
    expected = f" by invariant.{rule}" if rule else ""
    try:
        yield refusal
    except InvariantViolation as exc:
        refusal.decision = exc.decision
        if rule is not None and exc.decision.rule != rule:
            raise AssertionError(
                f"Expected the write to be refused{expected}, but it was refused by "
                f"{exc.decision.code}: {exc.decision.reason}"
            ) from exc
        return
    raise AssertionError(f"Expected the write to be refused{expected}, but it went through.")


# --------------------------------------------------------------------------------------------
# Changing the rules for one test
# --------------------------------------------------------------------------------------------

_RULE_NAME = re.compile(r"^[\w][\w\-.]*$")


def _caller() -> str:
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module.startswith("clearance.") or module == "contextlib"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _change(
    action: Action,
    layer: Layer,
    name: str,
    rule: Any,
    reason: str | None,
    site: str,
) -> None:
    target = action.policies if layer is Layer.POLICY else action.invariants
    index = next((i for i, named in enumerate(target) if named.name == name), None)
    if rule is None:
        if index is None:
            raise ValueError(f"{action.name} has no {layer.value} named {name!r} to remove")
        del target[index]
        return
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        raise ValueError(f"{action.name}: rule name {name!r} must be a plain identifier")
    coerced = coerce_rule(rule)
    if index is not None:
        old = target[index]
        target[index] = NamedRule(name, coerced, reason or old.reason, layer, site)
    else:
        default = default_reason(rule, layer, name)
        target.append(NamedRule(name, coerced, reason or default, layer, site))


@contextmanager
def override_rules(
    action: str | Action,
    policies: Mapping[str, Any] | None = None,
    invariants: Mapping[str, Any] | None = None,
    *,
    reasons: Mapping[str, str] | None = None,
) -> Iterator[Action]:
    """Change an action's rules inside the block; the registry is restored afterwards.

    ``policies`` and ``invariants`` map a rule name to a rule: an existing name is replaced in
    place (same position, same reason unless ``reasons`` gives one), a new name is added at the
    end, and ``None`` removes the rule. Everything that reads the registry sees the change:
    ``authorize``, ``authorized``, ``manage.py clearance``. Usable as a decorator too.
    """
    act = registry.get(action)
    state = registry.snapshot()
    site = _caller()
    try:
        for layer, changes in ((Layer.POLICY, policies), (Layer.INVARIANT, invariants)):
            for name, rule in (changes or {}).items():
                _change(act, layer, name, rule, (reasons or {}).get(name), site)
        registry.changed()
        yield act
    finally:
        registry.restore(state)


@contextmanager
def negate_rule(action: str | Action, rule: str) -> Iterator[Action]:
    """Inside the block, ``rule`` of ``action`` holds exactly when it used to fail.

    The rule keeps its name, gate, position and reason. Use it to show that a test suite has
    teeth: with any one rule negated, some authorization test must fail.
    """
    act = registry.get(action)
    for layer, rules in ((Layer.POLICY, act.policies), (Layer.INVARIANT, act.invariants)):
        for named in rules:
            if named.name == rule:
                changes = {rule: ~named.rule}
                with override_rules(
                    act,
                    policies=changes if layer is Layer.POLICY else None,
                    invariants=changes if layer is Layer.INVARIANT else None,
                ) as changed:
                    yield changed
                return
    raise ValueError(
        f"{act.name} has no policy or invariant named {rule!r} "
        f"(rules: {', '.join(r.name for r in act.rules) or 'none'}); gate 1 cannot be negated"
    )


# --------------------------------------------------------------------------------------------
# Capturing decisions
# --------------------------------------------------------------------------------------------


class DecisionLog(list[Decision]):
    """The decisions made while it was capturing, in order."""

    @property
    def allowed(self) -> list[Decision]:
        """The allowed decisions."""
        return [d for d in self if d.allowed]

    @property
    def denied(self) -> list[Decision]:
        """The denied decisions."""
        return [d for d in self if not d.allowed]

    @property
    def codes(self) -> list[str]:
        """Each decision's code (``"allowed"`` or ``"<layer>.<rule>"``), in order."""
        return [d.code for d in self]

    def for_action(self, action: str) -> list[Decision]:
        """The decisions about ``action``."""
        return [d for d in self if d.action == action]


@contextmanager
def capture_decisions() -> Iterator[DecisionLog]:
    """Record every decision made inside the block (through ``decision_made``)."""
    log = DecisionLog()

    def receive(sender: Any, decision: Decision, **kwargs: Any) -> None:
        log.append(decision)

    decision_made.connect(receive, weak=False)
    try:
        yield log
    finally:
        decision_made.disconnect(receive)


# --------------------------------------------------------------------------------------------
# Predicates that returned something other than True or False
# --------------------------------------------------------------------------------------------


class NonBoolPredicateWarning(UserWarning):
    """A predicate returned something other than True or False during a test (it denied)."""


@dataclass(frozen=True)
class NonBoolResult:
    """A predicate's result that was not a bool: which predicate, where it is, what it gave."""

    predicate: str
    where: str
    returned: str

    def __str__(self) -> str:
        return (
            f"predicate {self.predicate!r} ({self.where}) returned {self.returned}, not True or "
            "False: the rule denied. Return a bool (a rule holds only when it returns True)."
        )


def _where_defined(fn: Any) -> str:
    code = getattr(fn, "__code__", None) or getattr(type(fn).__call__, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", type(fn).__qualname__)
    return f"{code.co_filename}:{code.co_firstlineno}"


@contextmanager
def capture_non_bool_results() -> Iterator[list[NonBoolResult]]:
    """Record, inside the block, every predicate result that was neither True nor False.

    Such a result denies (with ``Decision.error`` saying what was returned), so a test may pass
    for the wrong reason: the pytest plugin warns about each one with
    :class:`NonBoolPredicateWarning`.
    """
    from .rules import Predicate, describe_result, predicate_result_watchers

    seen: list[NonBoolResult] = []

    def watch(pred: Predicate, value: Any) -> None:
        seen.append(NonBoolResult(pred.name, _where_defined(pred.fn), describe_result(value)))

    predicate_result_watchers.append(watch)
    try:
        yield seen
    finally:
        predicate_result_watchers.remove(watch)


# --------------------------------------------------------------------------------------------
# Filtering: authorized() against authorize()
# --------------------------------------------------------------------------------------------


def assert_filter_consistent(
    action: str | Action,
    actors: Iterable[Any],
    queryset: Any,
    *,
    evaluate_in_python: bool = False,
    **extra: Any,
) -> dict[Any, set[Any]]:
    """Assert that ``authorized()`` returns exactly the objects ``authorize()`` allows.

    For each actor, the queryset filtered by :func:`clearance.authorized` is compared with a
    per-object :func:`clearance.authorize` on every object of ``queryset``; ``**extra`` is passed
    to both (``CTX.<name>`` values). Every disagreement is reported at once, each with the
    rules whose SQL and Python answers differ for that object, and so are duplicate rows::

        from clearance.testing import assert_filter_consistent

        def test_invoice_list_matches_the_detail_page(alice, bob, invoices):
            assert_filter_consistent("invoices.approve", [alice, bob], Invoice.objects.all())

    Returns, for each actor, the set of primary keys it may act on (to assert that the check
    was not vacuous). An empty ``queryset`` or no actors is a ``ValueError``: a comparison over
    nothing proves nothing. A rule that cannot become SQL raises
    :class:`~clearance.NotFilterable`, as ``authorized()`` does, unless ``evaluate_in_python``.
    """
    from django.db import models

    from .engine import authorized
    from .rules import Context

    act = registry.get(action)
    people = list(actors)
    if not people:
        raise ValueError("assert_filter_consistent() needs at least one actor")
    if not isinstance(queryset, models.QuerySet):
        raise TypeError(f"expected a QuerySet, got {type(queryset).__name__}")
    objects = list(queryset)
    if not objects:
        raise ValueError(
            f"the queryset of {queryset.model._meta.label} is empty: create the objects to "
            "compare first"
        )
    problems: list[str] = []
    allowed: dict[Any, set[Any]] = {}
    for actor in people:
        filtered = authorized(actor, act, queryset, evaluate_in_python=evaluate_in_python, **extra)
        rows = list(filtered.values_list("pk", flat=True))
        in_sql = set(rows)
        for pk in sorted({pk for pk in rows if rows.count(pk) > 1}, key=repr):
            problems.append(
                f"{actor_ref(actor)}: authorized() returns {queryset.model._meta.label}:{pk} "
                f"{rows.count(pk)} times"
            )
        in_python: set[Any] = set()
        for obj in objects:
            decision = authorize(actor, act, obj, probe=True, **extra)
            if decision.allowed:
                in_python.add(obj.pk)
            if decision.allowed == (obj.pk in in_sql):
                continue
            if decision.allowed:
                what = "authorize() allows it, authorized() leaves it out"
            else:
                what = (
                    f"authorized() returns it, authorize() denies it ({decision.code}: "
                    f"{decision.reason})"
                )
            ctx = Context(actor, act, obj, now=decision_now(extra), extra=extra, fresh=True)
            problems.append(
                f"{actor_ref(actor)}{_describe_object(obj)}: {what}"
                + _rules_that_differ(act, ctx, queryset, obj)
            )
        allowed[actor] = in_python
    if problems:
        raise AssertionError(
            f"authorized() and authorize() disagree for {act.name} ({len(problems)} "
            f"{'problem' if len(problems) == 1 else 'problems'}):\n  " + "\n  ".join(problems)
        )
    return allowed


def _rules_that_differ(act: Action, ctx: Any, queryset: Any, obj: Any) -> str:
    """The rules whose per-object and SQL answers differ for ``obj`` (for the failure text)."""
    from .rules import RuleNotFilterable

    found = []
    for named in act.rules:
        try:
            python: object = named.rule.evaluate(ctx)
        except Exception as exc:
            python = f"raises {type(exc).__name__}"
        try:
            q = named.rule.to_q(ctx, queryset.model)
            sql: object = q if isinstance(q, bool) else queryset.filter(q, pk=obj.pk).exists()
        except RuleNotFilterable:
            sql = "not filterable"
        except Exception as exc:
            sql = f"raises {type(exc).__name__}"
        if python != sql:
            found.append(f"{named.code} ({named.rule}): per object {python}, in SQL {sql}")
    if not found:
        return ""
    return "\n      rule " + "\n      rule ".join(found)
