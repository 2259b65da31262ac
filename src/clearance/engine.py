"""The three gates: ``authorize``, ``enforce``, ``explain``, ``authorized``, ``authorize_many``.

Gate 1 (permission) asks Django whether the actor holds the action's permission, without an
object, so every configured authentication backend is honoured. Gate 2 (policies) and gate 3
(invariants) evaluate the action's rules in declaration order. ``authorize`` stops at the first
denial; ``explain`` evaluates every rule. A rule that raises denies (fail closed).

The seam
--------

Every other module of the package reaches the engine through these functions only (never
through a name with a leading underscore); the public functions above are compositions of them:

``check_actor(actor)``
    Refuse a missing actor (``None``) with a ``TypeError`` that says what to pass.
``resolve(actor, action, obj) -> Action``
    The declared :class:`~clearance.actions.Action` for a name (or an Action), with the actor
    and the object checked against it.
``permission_gate(actor, act, obj=None) -> (allowed, reason, error)``
    Gate 1 alone (``can_attempt`` and list pages); for an action held within a scope, through
    a membership of ``obj``'s scope object, or of some scope object when ``obj`` is None.
``decide(act, ctx, *, full=False, probe=False, gate1=None) -> Decision``
    Pure: evaluate the gates for the :class:`~clearance.rules.Context` ``ctx`` and build the
    :class:`~clearance.Decision`. Records nothing and sends no signal. ``full=True`` evaluates
    every rule (``explain``); ``gate1`` reuses a gate 1 answer already computed for the actor.
    Otherwise it runs the action's compiled plan (:mod:`clearance.plans`), which gives the same
    decision.
``record(decision, request=None) -> Decision``
    Hand a decision to the audit sinks and the ``decision_made`` signal, as every public
    function does; returns the decision the audit leaves (a denial when the audit fails closed).
``run_rule(named, ctx) -> (held, error)``
    One rule, failing closed (``perform()`` re-checks invariants with it).

The console, ``manage.py clearance explain`` and ``replay`` call ``decide`` without ``record``
(nothing is recorded: nobody asked to act); ``perform()`` and ``capability_denial`` compose
``decide`` and ``record`` around their own steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from time import perf_counter, time
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import models
from django.db.models import prefetch_related_objects

from . import audit
from .actions import ANYONE, Action, NamedRule, registry
from .conf import clearance_settings
from .decisions import (
    Decision,
    Layer,
    NotFilterable,
    RawTrace,
    actor_ref,
    exception_for,
    resource_ref,
)
from .plans import (
    INACTIVE_REASON,
    SIGN_IN_REASON,
    gate_plan,
    permission_failure,
    plan_for,
    rule_failed,
    rule_failure,
)
from .request_context import current_request, note_decision
from .rules import (
    Context,
    Rule,
    RuleNotFilterable,
    Where,
    clear_actor_cache,
    unfilterable_reason,
)
from .rules.context import decision_now
from .scopes import scope_gate

__all__ = [
    "aauthorize",
    "aauthorized",
    "actor_ref",
    "aenforce",
    "aexplain",
    "authorize",
    "authorize_many",
    "authorized",
    "can_attempt",
    "check_actor",
    "clear_actor_cache",
    "decide",
    "enforce",
    "explain",
    "permission_gate",
    "record",
    "resolve",
    "resource_ref",
    "run_rule",
]

logger = logging.getLogger("clearance")

_M = TypeVar("_M", bound=models.Model)

_ALLOWED = "allowed"
_PERMISSION, _POLICY, _INVARIANT = Layer.PERMISSION, Layer.POLICY, Layer.INVARIANT

# --------------------------------------------------------------------------------------------
# Validation of the arguments
# --------------------------------------------------------------------------------------------


def check_actor(actor: Any) -> None:
    """Raise ``TypeError`` when there is no actor (``None``): every decision needs one."""
    if actor is None:
        raise TypeError(
            "The actor is None. Pass request.user (AnonymousUser when nobody is signed in), "
            "or a clearance system actor for jobs."
        )


def resolve(actor: Any, action: str | Action, obj: Any) -> Action:
    """The declared action ``action`` names, with ``actor`` and ``obj`` checked against it.

    Raises :class:`~clearance.UnknownAction` for an undeclared name and ``TypeError`` for a
    missing actor, a missing or superfluous object, or an object of another model.
    """
    check_actor(actor)
    act = registry.get(action)
    model = act.model
    if model is None:
        if obj is not None:
            raise TypeError(f"Action {act.name!r} acts on no model; it takes no object")
        return act
    if obj is None:
        raise TypeError(
            f"Action {act.name!r} acts on {model._meta.label} objects; pass the object "
            "(an unsaved instance for a creation), or use can_attempt() for gate 1 alone"
        )
    if not isinstance(obj, models.Model) or (
        not isinstance(obj, model) and obj._meta.concrete_model is not model._meta.concrete_model
    ):
        got = obj._meta.label if isinstance(obj, models.Model) else type(obj).__name__
        raise TypeError(f"Action {act.name!r} acts on {model._meta.label} objects, got a {got}")
    return act


def _check_queryset(act: Action, queryset: models.QuerySet[Any]) -> None:
    if not isinstance(queryset, models.QuerySet):
        raise TypeError(f"authorized() needs a QuerySet, got {type(queryset).__name__}")
    model = act.model
    if model is None or queryset.model._meta.concrete_model is not model._meta.concrete_model:
        expected = model._meta.label if model is not None else "no model"
        raise TypeError(
            f"Action {act.name!r} acts on {expected}; the queryset is of "
            f"{queryset.model._meta.label}"
        )
    # Refused up front, whoever asks: a sliced or combined queryset cannot be filtered, and
    # Django would only say so for an actor whose rules add a filter.
    if queryset.query.is_sliced:
        raise TypeError(
            "authorized() needs a queryset that is not sliced yet: pass the whole queryset, "
            "then slice or paginate the result"
        )
    if queryset.query.combinator:
        raise TypeError(
            f"authorized() cannot filter a {queryset.query.combinator}() of querysets: "
            "authorize each queryset before combining them"
        )


# --------------------------------------------------------------------------------------------
# The gates
# --------------------------------------------------------------------------------------------


def _permission_code(act: Action) -> str:
    return f"permission.{act.permission_label}"


#: Gate 1's answer: (allowed, reason, error); ``error`` describes what ``has_perm`` raised.
Gate1 = tuple[bool, str, "str | None"]


def permission_gate(actor: Any, act: Action, obj: Any = None) -> Gate1:
    """Gate 1 alone for ``act``: ``(allowed, reason, error)``; fails closed when it raises.

    For an action held within a scope (``Action(scope=...)``), gate 1 also holds through a
    membership of ``obj``'s scope object, or, without an object, of some scope object.
    """
    if act.permission is ANYONE:
        return True, "Anyone may attempt this action.", None
    if not getattr(actor, "is_authenticated", False):
        return False, SIGN_IN_REASON, None
    if not getattr(actor, "is_active", True):
        return False, INACTIVE_REASON, None
    try:
        held = actor.has_perm(act.permission)
    except Exception as exc:
        reason, error = permission_failure(exc, act)
        return False, reason, error
    if held is True:
        return True, f"Holds the permission {act.permission}.", None
    if act.scope:
        gate = scope_gate(act)
        try:
            through = gate.check(actor, obj)
        except Exception as exc:
            reason, error = permission_failure(exc, act, scoped=True)
            return False, reason, error
        if through is not None:
            return True, through, None
        return False, gate.lacks if obj is not None else gate.lacks_any, None
    return False, f"This needs the permission {act.permission}, which you do not hold.", None


def can_attempt(actor: Any, action: str | Action) -> bool:
    """Gate 1 alone: may ``actor`` attempt ``action`` at all, on some object?

    For what is shown before there is an object: a menu entry, a "New invoice" button, whether
    a list page is offered. It asks only the permission gate (the action's permission, or
    ``ANYONE``; anonymous and inactive actors hold none), without an object, policies or
    invariants, and records nothing. It is not a decision to act on: on an object, use
    :func:`authorize` or :func:`enforce`, which run the three gates.

    ```python
    from clearance import can_attempt

    if can_attempt(request.user, "invoices.approve"):
        ...  # show the approval queue in the menu
    ```

    An undeclared action raises :class:`UnknownAction`; a ``None`` actor is a ``TypeError``.
    """
    check_actor(actor)
    return permission_gate(actor, registry.get(action))[0]


def run_rule(named: NamedRule, ctx: Context) -> tuple[bool, str | None]:
    """``(held, error)`` for one rule in ``ctx``; a rule that raises does not hold (fail closed)."""
    try:
        return named.rule.evaluate(ctx) is True, None
    except Exception as exc:
        return False, rule_failed(exc, named, ctx)


def decide(
    act: Action,
    ctx: Context,
    *,
    full: bool,
    gate1: Gate1 | None = None,
    probe: bool = False,
) -> Decision:
    """The decision on ``act`` in ``ctx`` (actor, object, time, request, extra values).

    Pure: evaluates gate 1 (or takes ``gate1``), the policies and the invariants, and builds the
    :class:`~clearance.Decision`; records nothing and sends no signal (see :func:`record`).
    ``full=True`` evaluates every rule (the trace of ``explain``); ``probe`` marks the decision
    as a probe.
    """
    plan = gate_plan(act)
    if not full and gate1 is None:  # the compiled plan (see clearance.plans)
        obj = ctx.obj
        return plan.fast(ctx, probe, None if obj is None else obj.pk)
    denial: tuple[Layer, str, str, str, str | None] | None = None  # layer, rule, reason, code

    start = perf_counter()
    ok, reason, err = gate1 if gate1 is not None else permission_gate(ctx.actor, act, ctx.obj)
    perm = plan.perm
    trace: list[RawTrace] = [
        (_PERMISSION, perm, ok, reason, plan.perm_expr, perf_counter() - start, err)
    ]
    if not ok:
        denial = (_PERMISSION, perm, reason, plan.perm_code, err)
    if denial is None or full:
        for layer, rules in ((_POLICY, plan.policies), (_INVARIANT, plan.invariants)):
            for name, reason, expression, code, evaluate, named in rules:
                start = perf_counter()
                try:
                    ok = evaluate(ctx) is True
                    err = None
                except Exception as exc:
                    ok = False
                    reason, err = rule_failure(exc, named, ctx)
                trace.append((layer, name, ok, reason, expression, perf_counter() - start, err))
                if not ok and denial is None:
                    denial = (layer, name, reason, code, err)
                    if not full:
                        break
            if denial is not None and not full:
                break

    if denial is None:
        return Decision._make(
            True,
            act.name,
            actor_ref(ctx.actor),
            resource_ref(ctx.obj),
            None,
            None,
            "",
            _ALLOWED,
            ctx.now,
            plan.fingerprint,
            trace,
            None,
            full,
            probe,
        )
    layer, rule, reason, code, error = denial
    return Decision._make(
        False,
        act.name,
        actor_ref(ctx.actor),
        resource_ref(ctx.obj),
        layer,
        rule,
        reason,
        code,
        ctx.now,
        plan.fingerprint,
        trace,
        error,
        full,
        probe,
    )


def _context(actor: Any, act: Action, obj: Any, request: Any, extra: dict[str, Any]) -> Context:
    if request is None:
        request = current_request.get()
    if "now" in extra:  # one clock: now= is the decision's time (see decision_now)
        return Context(actor, act, obj, now=decision_now(extra), request=request, extra=extra)
    return Context.at_time(actor, act, obj, request, extra, time())


def record(decision: Decision, request: Any = None) -> Decision:
    """Record ``decision`` (audit sinks, ``decision_made`` signal) and return what the audit
    leaves of it: the same decision, or a denial when the audit fails closed."""
    note_decision(decision.resource is not None)
    return audit.emit(decision, request)


def authorize(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    request: Any = None,
    probe: bool = False,
    **extra: Any,
) -> Decision:
    """Decide whether ``actor`` may do ``action`` on ``obj``; never raises for a denial.

    Runs gate 1 (permission), then the policies, then the invariants, and stops at the first
    denial. ``request`` and ``**extra`` are visible to rules (``ctx.request``, ``CTX.<name>``).

    ``probe=True`` marks the decision as a probe: it only decides what to show (a button, a
    badge, a form), nobody tried to act. A probe is not recorded in the audit trail unless
    ``CLEARANCE["RECORD_PROBES"]`` asks for it; an attempt (the default) is recorded as always.
    """
    if actor is None:
        check_actor(actor)
    plan = plan_for(action)
    if obj is not None and type(obj) is plan.model and "now" not in extra:  # compiled in full
        return plan.run(actor, obj, request, probe, extra)
    act = resolve(actor, plan.act, obj)
    ctx = _context(actor, act, obj, request, extra)
    return record(decide(act, ctx, full=False, probe=probe), ctx.request)


def explain(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    request: Any = None,
    probe: bool = True,
    **extra: Any,
) -> Decision:
    """Like :func:`authorize`, but evaluates every rule, so the trace shows all of them.

    The verdict, layer and rule are the same as ``authorize`` would give. An explanation is a
    probe by default (nobody tried to act, see :func:`authorize`); ``probe=False`` records it
    as an attempt.
    """
    act = resolve(actor, action, obj)
    ctx = _context(actor, act, obj, request, extra)
    return record(decide(act, ctx, full=True, probe=probe), ctx.request)


def enforce(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    request: Any = None,
    **extra: Any,
) -> Decision:
    """Like :func:`authorize`, but raise the matching :class:`~clearance.Denied` on a denial."""
    # Always an attempt: someone is about to act on the answer (``probe`` is refused).
    decision = authorize(actor, action, obj, request=request, probe=False, **extra)
    if not decision.allowed:
        raise exception_for(decision)
    return decision


def authorize_many(
    actor: Any,
    action: str | Action,
    objects: Iterable[Any],
    *,
    request: Any = None,
    probe: bool = False,
    **extra: Any,
) -> list[Decision]:
    """Decide ``action`` for each object of a page at once; one decision per object, in order.

    Gate 1 runs once, a predicate that does not read the object runs once, and each to-many
    rule, each lookup only the database can decide and each foreign key that a lookup follows
    is answered for the whole batch with one query. A list page that only shows what each
    object allows passes ``probe=True`` (see :func:`authorize`).
    """
    objs = list(objects)
    check_actor(actor)
    act = registry.get(action)
    for obj in objs:
        resolve(actor, act, obj)
    if not objs:
        return []
    base = _context(actor, act, None, request, extra)
    if act.scope and act.permission is not ANYONE:
        # Held within a scope: gate 1 depends on each object's scope object.
        _prefetch_scope_paths(act, objs)
        gates = [permission_gate(actor, act, obj) for obj in objs]
    else:
        gates = [permission_gate(actor, act)] * len(objs)
    if any(gate[0] for gate in gates):
        _prefetch(act, base, objs)
    decisions = []
    for obj, gate1 in zip(objs, gates, strict=True):
        ctx = base.with_object(obj)
        decision = decide(act, ctx, full=False, gate1=gate1, probe=probe)
        decisions.append(record(decision, ctx.request))
    return decisions


def _prefetch_scope_paths(act: Action, objs: Sequence[Any]) -> None:
    """Fetch the rows the scope paths cross (``repository`` of ``repository__organization``)
    for the whole batch, one query per relation instead of one per object."""
    try:
        related = scope_gate(act).related_paths()
        if related:
            prefetch_related_objects([o for o in objs if o.pk is not None], *related)
    except Exception:
        # Left to per-object gate 1, which fails closed and records the error.
        logger.debug("prefetch of the scope paths of %s failed", act.name, exc_info=True)


def _prefetch(
    act: Action, ctx: Context, objs: Sequence[Any], rules: Sequence[NamedRule] | None = None
) -> None:
    """Answer the to-many lookups of ``rules`` (default: all) for ``objs`` in one query each."""
    by_model: dict[type[models.Model], list[Any]] = {}
    for obj in objs:
        by_model.setdefault(type(obj), []).append(obj)
    for named in act.rules if rules is None else rules:
        for leaf in named.rule.leaves():
            if not isinstance(leaf, Where):
                continue
            for model, group_objs in by_model.items():
                try:
                    # The related rows the lookups walk to (owner__username), one query per
                    # relation instead of one per object.
                    prefetch_related_objects(group_objs, *sorted(leaf.related_paths(model)))
                    for group in leaf.groups(model):
                        group.prefetch(group_objs, ctx)
                    for lookup in leaf.db_lookups(model):
                        lookup.prefetch(group_objs, ctx)
                except Exception:
                    # Left to per-object evaluation, which fails closed and records the error.
                    logger.debug("prefetch of %s failed", named.code, exc_info=True)


def authorized(
    actor: Any,
    action: str | Action,
    queryset: models.QuerySet[_M],
    *,
    request: Any = None,
    evaluate_in_python: bool = False,
    chunk_size: int = 2000,
    **extra: Any,
) -> models.QuerySet[_M]:
    """The objects of ``queryset`` on which ``actor`` may do ``action``, filtered in SQL.

    Returns exactly what per-object :func:`authorize` would allow, as a plain, lazy queryset
    (one query, no duplicate rows, further filterable and sliceable); ``queryset.none()`` when
    gate 1 refuses. Raises :class:`~clearance.NotFilterable` for a rule that cannot become SQL,
    for every actor and before any query, unless ``evaluate_in_python=True``, which checks such
    rules row by row, ``chunk_size`` rows at a time, and returns a queryset filtered by primary
    key (slow). ``queryset`` must not be sliced or combined (``union()``): slice the result.
    """
    check_actor(actor)
    act = registry.get(action)
    _check_queryset(act, queryset)
    if not evaluate_in_python:
        # Which rules have no SQL form is a property of the rule set, not of the actor: say so
        # for everyone, also for an actor whom gate 1 refuses, and before asking the database.
        for named in act.rules:
            culprit = _not_filterable(named.rule)
            if culprit is not None:
                raise NotFilterable(act.name, named.name, culprit)
    # Scoping a queryset is an authorization decision for the unguarded-view middleware.
    note_decision(about_object=True)
    ctx = _context(actor, act, None, request, extra)
    scoped = bool(act.scope) and act.permission is not ANYONE
    if scoped:
        # Gate 1 per row, below; the anonymous and the inactive hold nothing anywhere.
        if not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", True):
            return _none(queryset)
    elif not permission_gate(actor, act)[0]:
        return _none(queryset)
    model = queryset.model
    condition: Any = True
    if scoped:
        # Held globally: every row. Otherwise the rows within the scope objects where a
        # membership grants it, read from the tables in the same query (not from the
        # memberships cached on the actor, as every rule of a list is read): none, no row.
        try:
            globally = actor.has_perm(act.permission) is True
            within = None if globally else scope_gate(act).condition(actor)
        except Exception:
            if clearance_settings.RAISE_RULE_ERRORS:
                raise
            logger.exception("The scopes of action %s raised while filtering", act.name)
            return _none(queryset)
        if within is not None:
            condition = within
        elif not globally:
            return _none(queryset)
    in_python: list[NamedRule] = []
    for named in act.rules:
        try:
            q = named.rule.to_q(ctx, model)
        except RuleNotFilterable as exc:
            if not evaluate_in_python:
                raise NotFilterable(act.name, named.name, exc.detail) from None
            in_python.append(named)
            continue
        except Exception:
            if clearance_settings.RAISE_RULE_ERRORS:
                raise
            logger.exception("Rule %s of action %s raised while filtering", named.code, act.name)
            return _none(queryset)
        if q is False:
            return _none(queryset)
        if q is not True:
            condition = q if condition is True else condition & q
    result: models.QuerySet[_M] = queryset if condition is True else queryset.filter(condition)
    if not in_python:
        return result
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    keep: list[Any] = []
    chunk: list[Any] = []
    for obj in result.iterator(chunk_size=chunk_size):
        chunk.append(obj)
        if len(chunk) == chunk_size:
            keep.extend(_allowed_in_python(act, ctx, chunk, in_python))
            chunk = []
    keep.extend(_allowed_in_python(act, ctx, chunk, in_python))
    # Filter ``result``, not ``queryset``: the SQL rules still apply when the queryset is
    # evaluated later (a row changed since this check drops out instead of slipping through).
    by_pk: models.QuerySet[_M] = result.filter(pk__in=keep)
    return by_pk


def _allowed_in_python(
    act: Action, ctx: Context, chunk: Sequence[Any], rules: Sequence[NamedRule]
) -> list[Any]:
    """The primary keys of the objects of ``chunk`` that pass ``rules``, checked in Python.

    The rules' to-many lookups are answered for the whole chunk first (one query each).
    """
    if not chunk:
        return []
    _prefetch(act, ctx, chunk, rules)
    keep = []
    for obj in chunk:
        row_ctx = ctx.with_object(obj)
        if all(run_rule(named, row_ctx)[0] for named in rules):
            keep.append(obj.pk)
    return keep


def _not_filterable(rule: Rule) -> str | None:
    """Why ``rule`` has no SQL form (something inside reads the object), or None."""
    return unfilterable_reason(rule)


def _none(queryset: models.QuerySet[_M]) -> models.QuerySet[_M]:
    empty: models.QuerySet[_M] = queryset.none()
    return empty


# --------------------------------------------------------------------------------------------
# Async twins
# --------------------------------------------------------------------------------------------


async def aauthorize(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    request: Any = None,
    probe: bool = False,
    **extra: Any,
) -> Decision:
    """Async twin of :func:`authorize`."""
    return await sync_to_async(authorize)(actor, action, obj, request=request, probe=probe, **extra)


async def aenforce(
    actor: Any, action: str | Action, obj: Any = None, *, request: Any = None, **extra: Any
) -> Decision:
    """Async twin of :func:`enforce`."""
    return await sync_to_async(enforce)(actor, action, obj, request=request, **extra)


async def aexplain(
    actor: Any,
    action: str | Action,
    obj: Any = None,
    *,
    request: Any = None,
    probe: bool = True,
    **extra: Any,
) -> Decision:
    """Async twin of :func:`explain`."""
    return await sync_to_async(explain)(actor, action, obj, request=request, probe=probe, **extra)


async def aauthorized(
    actor: Any,
    action: str | Action,
    queryset: models.QuerySet[_M],
    *,
    request: Any = None,
    evaluate_in_python: bool = False,
    chunk_size: int = 2000,
    **extra: Any,
) -> models.QuerySet[_M]:
    """Async twin of :func:`authorized` (gate 1 may query; the queryset stays lazy)."""
    return await sync_to_async(authorized)(
        actor,
        action,
        queryset,
        request=request,
        evaluate_in_python=evaluate_in_python,
        chunk_size=chunk_size,
        **extra,
    )


async def aauthorize_many(
    actor: Any,
    action: str | Action,
    objects: Iterable[Any],
    *,
    request: Any = None,
    probe: bool = False,
    **extra: Any,
) -> list[Decision]:
    """Async twin of :func:`authorize_many`."""
    return await sync_to_async(authorize_many)(
        actor, action, objects, request=request, probe=probe, **extra
    )


# Re-exported for callers that revoke memberships within one request.
clear_actor_cache = clear_actor_cache
