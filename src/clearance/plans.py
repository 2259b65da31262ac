"""Gate plans: each action's gates laid out once, and compiled into straight-line code.

A :class:`GatePlan` holds what a decision on an action reads (gate 1's permission and texts,
each rule as a plain tuple, the fingerprint) and two functions generated from the action's
rules, rebuilt whenever a rule changes (:data:`clearance.actions.rule_changes`):

``plan.fast(ctx, probe, pk) -> Decision``
    Gate 1 and each rule in order for the context ``ctx``, stopping at the first denial. For an
    object of exactly the action's model, a rule with a Python form
    (:meth:`Rule.python_lines <clearance.rules.Rule.python_lines>`) runs inline and the others
    through their checker; any other object goes through each rule's ``evaluate()``.
``plan.run(actor, obj, request, probe, extra) -> Decision``
    All of ``authorize()`` for an object of exactly the action's model: the context, the
    gates, the request's decision count and the audit.

Both take a time stamp around each entry of the trace and nothing else; the decision's
references, timestamp and trace are built from those stamps when something first reads them
(:func:`clearance.decisions.deferred_decision`). The engine's general evaluation
(``explain()``, ``authorize_many()``) gives the same decisions; ``tests/test_compiled_plans.py``
checks that it does, field for field.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from time import perf_counter, time
from typing import Any, cast

from django.db import models

from . import audit
from .actions import ANYONE, Action, NamedRule, registry, rule_changes
from .conf import clearance_settings
from .decisions import (
    UNAVAILABLE_REASON,
    Decision,
    Layer,
    RawTrace,
    ResourceRef,
    actor_ref,
    database_unavailable,
    deferred_decision,
    describe_error,
    resource_ref,
    undecided_reason,
)
from .request_context import current_request, decisions_in_request, note_decision
from .rules import Context
from .rules.context import attribute_name
from .scopes import scope_gate
from .signals import decision_made

__all__ = [
    "GatePlan",
    "PlannedRule",
    "gate_plan",
    "permission_failure",
    "plan_for",
    "rule_failed",
    "rule_failure",
]

logger = logging.getLogger("clearance")

_PERMISSION, _POLICY, _INVARIANT = Layer.PERMISSION, Layer.POLICY, Layer.INVARIANT
SIGN_IN_REASON = "You must be signed in to do this."
INACTIVE_REASON = "This account is inactive."

#: A rule as a plan lays it out: ``(name, reason, expression, code, evaluate, named)``.
PlannedRule = tuple[str, str, str, str, Any, NamedRule]


class GatePlan:
    """An action's gates, laid out once and compiled (see the module's docstring).

    ``policies`` and ``invariants`` are tuples of :data:`PlannedRule`; ``perm`` is the
    permission's label, ``perm_held`` the reason gate 1 gives when it holds, ``perm_expr`` and
    ``perm_code`` its expression and code. ``key`` is (registry version, number of policies,
    number of invariants) when the plan was built.
    """

    fast: Callable[[Context, bool, Any], Decision]
    run: Callable[[Any, Any, Any, bool, dict[str, Any]], Decision]

    __slots__ = (
        "act",
        "changes",
        "fast",
        "fingerprint",
        "invariants",
        "key",
        "layers",
        "model",
        "perm",
        "perm_code",
        "perm_expr",
        "perm_held",
        "pk_attname",
        "policies",
        "run",
    )

    def __init__(self, act: Action, key: tuple[int, int, int]) -> None:
        self.act = act
        self.key = key
        self.changes = -1  # rule_changes.count when plan_for() last found it current
        self.perm = act.permission_label
        self.perm_expr = f"has_perm({self.perm!r})"
        if act.scope and act.permission is not ANYONE:
            self.perm_expr += f" or membership via {', '.join(act.scope)}"
        self.perm_code = f"permission.{act.permission_label}"
        self.perm_held = (
            "Anyone may attempt this action."
            if act.permission is ANYONE
            else f"Holds the permission {act.permission}."
        )
        self.policies = tuple(_planned(named) for named in act.policies)
        self.invariants = tuple(_planned(named) for named in act.invariants)
        self.layers = (_POLICY,) * len(self.policies) + (_INVARIANT,) * len(self.invariants)
        self.model = act.model
        self.pk_attname = self.model._meta.pk.attname if self.model is not None else ""
        self.fingerprint = act.fingerprint()
        self.fast, self.run = _compile(self)


def _planned(named: NamedRule) -> PlannedRule:
    return (named.name, named.reason, named.expression, named.code, named.rule.evaluate, named)


def gate_plan(act: Action) -> GatePlan:
    """The action's current plan; a new one after any change of the registry or its rules."""
    reg = act.registry  # not "act.registry or registry": that would call Registry.__len__
    version = (reg if reg is not None else registry).version
    plan: GatePlan | None = act.__dict__.get("_gate_plan")
    if plan is not None:
        key = plan.key
        if key[0] == version and key[1] == len(act.policies) and key[2] == len(act.invariants):
            return plan
    plan = GatePlan(act, (version, len(act.policies), len(act.invariants)))
    act.__dict__["_gate_plan"] = plan
    return plan


#: The current plan of each action by what callers pass (a name or an Action), valid while
#: ``rule_changes.count`` equals the plan's ``changes``.
_entries: dict[Any, GatePlan] = {}


def plan_for(action: str | Action) -> GatePlan:
    """The current plan of ``action`` (a name or an :class:`~clearance.actions.Action`);
    raises :class:`~clearance.UnknownAction` for a name nobody declared."""
    try:
        plan = _entries.get(action)
    except TypeError:  # not hashable: registry.get() says what is wrong with it
        plan = None
    changes = rule_changes.count
    if plan is not None and plan.changes == changes:
        return plan
    # The count from before the build: a rule added meanwhile makes the next call check again.
    plan = gate_plan(registry.get(action))
    plan.changes = changes
    if len(_entries) > 1000:
        _entries.clear()
    with contextlib.suppress(TypeError):
        _entries[action] = plan
    return plan


# --------------------------------------------------------------------------------------------
# Failing closed
# --------------------------------------------------------------------------------------------


def permission_failure(exc: Exception, act: Action, scoped: bool = False) -> tuple[str, str]:
    """Gate 1's ``(reason, error)`` when ``has_perm`` raised ``exc``, or (``scoped``) finding
    the object's scope objects or the actor's memberships did (re-raised instead when
    ``RAISE_RULE_ERRORS`` is on)."""
    if clearance_settings.RAISE_RULE_ERRORS:
        raise exc
    if scoped:
        logger.exception(
            "The scope of action %s raised while deciding %r", act.name, act.permission
        )
    else:
        logger.exception("has_perm(%r) raised for action %s", act.permission, act.name)
    reason = (
        UNAVAILABLE_REASON
        if database_unavailable(exc)
        else undecided_reason(act.permission_label, exc)
    )
    return reason, describe_error(exc)


def rule_failed(exc: Exception, named: NamedRule, ctx: Context) -> str:
    """Fail closed: log the exception and describe it (or re-raise, when configured)."""
    if clearance_settings.RAISE_RULE_ERRORS:
        raise exc
    logger.exception(
        "Rule %s of action %s raised; denying",
        named.code,
        ctx.action.name if ctx.action is not None else "?",
    )
    return describe_error(exc)


def rule_failure(exc: Exception, named: NamedRule, ctx: Context) -> tuple[str, str]:
    """A rule's ``(reason, error)`` when it raised ``exc`` (see :func:`rule_failed`)."""
    error = rule_failed(exc, named, ctx)
    reason = UNAVAILABLE_REASON if database_unavailable(exc) else undecided_reason(named.name, exc)
    return reason, error


# --------------------------------------------------------------------------------------------
# A compiled decision's fields, when read
# --------------------------------------------------------------------------------------------


def _fields(
    plan: GatePlan,
    ctx: Context,
    pk: Any,
    probe: bool,
    stamps: tuple[float, ...],
    failure: tuple[str, str | None] | None,
    through: str | None = None,
) -> dict[str, Any]:
    """A compiled decision's fields, from what it captured: the time stamps around each entry
    of the trace (``stamps[i + 1] - stamps[i]`` is entry i's time), when the last entry
    denied, its ``(reason, error)``, and when gate 1 held through a scope, its reason."""
    count = len(stamps) - 1  # entries in the trace: gate 1, then the rules evaluated
    rules = (plan.policies + plan.invariants)[: count - 1]
    raw: list[RawTrace] = []
    held = failure is None or count > 1
    reason, error = (
        (through or plan.perm_held, None) if held else cast(tuple[str, "str | None"], failure)
    )
    raw.append((_PERMISSION, plan.perm, held, reason, plan.perm_expr, stamps[1] - stamps[0], error))
    for i, (name, rule_reason, expression, _code, _evaluate, _named) in enumerate(rules, 1):
        ok, reason, error = True, rule_reason, None
        if failure is not None and i == count - 1:
            ok, (reason, error) = False, failure
        raw.append(
            (plan.layers[i - 1], name, ok, reason, expression, stamps[i + 1] - stamps[i], error)
        )
    resource = resource_ref(ctx.obj)
    if resource is not None and resource.pk != pk:  # saved since (a creation): as it was
        resource = ResourceRef(resource.model, pk)
    fields: dict[str, Any] = {
        "action": plan.act.name,
        "actor": actor_ref(ctx.actor),
        "resource": resource,
        "at": ctx.now,
        "fingerprint": plan.fingerprint,
        "explained": False,
        "performed": None,
        "probe": probe,
        "_raw": raw,
    }
    if failure is None:
        fields.update(layer=None, rule=None, reason="", code="allowed", error=None)
    else:
        last = raw[-1]
        code = rules[-1][3] if count > 1 else plan.perm_code
        fields.update(layer=last[0], rule=last[1], reason=last[3], code=code, error=last[6])
    return fields


# --------------------------------------------------------------------------------------------
# Compiling
# --------------------------------------------------------------------------------------------


def _checker(named: NamedRule, model: type[models.Model] | None) -> Any:
    """The rule's checker for objects of exactly ``model``; its evaluate() when it has none
    (no model, or a rule whose compilation fails: evaluate() then reports it per decision)."""
    evaluate = named.rule.evaluate
    if model is not None:
        try:
            return named.rule.checker(model)
        except Exception:
            logger.debug("No checker for %s; evaluating it in full", named.code, exc_info=True)
    return lambda obj, ctx: evaluate(ctx)


def _python_lines(named: NamedRule, model: type[models.Model] | None, bind: Any) -> Any:
    if model is None:
        return None
    try:
        return named.rule.python_lines(model, bind)
    except Exception:
        logger.debug("No Python form for %s", named.code, exc_info=True)
        return None


def _compile(plan: GatePlan) -> tuple[Any, Any]:
    """``(fast, run)`` for ``plan`` (see the module's docstring), from one generated body."""
    act, model = plan.act, plan.model
    names: dict[str, Any] = {
        "pc": perf_counter,
        "now": time,
        "B": _fields,
        "mk": deferred_decision,
        "plan": plan,
        "ACT": act,
        "PERM": act.permission,
        "MODEL": model,
        "Ctx": Context.at_time,
        "current_request": current_request.get,
        "counting": decisions_in_request.get,
        "note": note_decision,
        "emit": audit.emit,
        "SETTINGS": clearance_settings,
        "SIGNAL": decision_made,
        "permission_failure": permission_failure,
        "rule_failure": rule_failure,
        "SIGN_IN": (SIGN_IN_REASON, None),
        "INACTIVE": (INACTIVE_REASON, None),
        "LACKS": (f"This needs the permission {act.permission}, which you do not hold.", None),
    }

    def bind(value: Any) -> str:
        name = f"k{len(names)}"
        names[name] = value
        return name

    # Held within a scope: gate 1 also asks the memberships when has_perm() is not True, and
    # the decision keeps the reason it held through (``g1``). Unscoped code is unchanged.
    scoped = bool(act.scope) and act.permission is not ANYONE
    if scoped:
        gate = scope_gate(act)
        names.update(
            SCOPED=gate.fast,
            SLACKS=(gate.lacks, None),
            SLACKS_ANY=(gate.lacks_any, None),
        )
    held_through = ", g1" if scoped else ""

    def decision(allowed: bool, stamps: str, failure: str) -> str:
        tail = f"{failure}{held_through}"
        return f"RETURN(mk({allowed}, (B, plan, ctx, pk, probe, ({stamps}), {tail}), probe))"

    def body(exact: bool) -> list[str]:
        """Gate 1 and the rules, for an object of exactly the model (inline) or not."""
        lines = ["t0 = pc()", "g1 = None"] if scoped else ["t0 = pc()"]
        stamps = ["t0"]
        if act.permission is not ANYONE:
            lines += [
                "if not getattr(actor, 'is_authenticated', False):",
                "    " + decision(False, "t0, pc()", "SIGN_IN"),
                "if not getattr(actor, 'is_active', True):",
                "    " + decision(False, "t0, pc()", "INACTIVE"),
                "try:",
                "    held = actor.has_perm(PERM)",
                "except Exception as exc:",
                "    failure = permission_failure(exc, ACT)",
                "    " + decision(False, "t0, pc()", "failure"),
            ]
            if scoped:
                lines += [
                    "if held is not True:",
                    "    try:",
                    "        g1 = SCOPED(actor, obj)",
                    "    except Exception as exc:",
                    "        failure = permission_failure(exc, ACT, True)",
                    "        " + decision(False, "t0, pc()", "failure"),
                    "    if g1 is None:",
                    "        "
                    + decision(False, "t0, pc()", "SLACKS if obj is not None else SLACKS_ANY"),
                ]
            else:
                lines += [
                    "if held is not True:",
                    "    " + decision(False, "t0, pc()", "LACKS"),
                ]
        lines.append("t1 = pc()")
        stamps.append("t1")
        for i, (_name, reason, _expr, _code, evaluate, named) in enumerate(
            plan.policies + plan.invariants
        ):
            if exact:
                check = bind(_checker(named, model))
                inline = _python_lines(named, model, bind)
                if inline is None:  # the checker alone, asked once (a TypeError denies)
                    test = [f"    ok = {check}(obj, ctx) is True"]
                else:
                    test = [
                        "    try:",
                        *("        " + line for line in inline),
                        "    except TypeError:",
                        f"        ok = {check}(obj, ctx) is True",
                    ]
            else:
                test = [f"    ok = {bind(evaluate)}(ctx) is True"]
            done = ", ".join(stamps)
            lines += [
                "try:",
                *test,
                "except Exception as exc:",
                f"    failure = rule_failure(exc, {bind(named)}, ctx)",
                "    " + decision(False, f"{done}, pc()", "failure"),
                "if not ok:",
                "    " + decision(False, f"{done}, pc()", bind((reason, None))),
                f"t{i + 2} = pc()",
            ]
            stamps.append(f"t{i + 2}")
        lines.append(decision(True, ", ".join(stamps), "None"))
        return lines

    def indent(lines: list[str], returning: str) -> list[str]:
        return ["    " + line.replace("RETURN(", returning) for line in lines]

    exact_body, other_body = body(True), body(False)
    fast = [
        "def fast(ctx, probe, pk):",
        "    actor = ctx.actor",
        "    obj = ctx.obj",
        "    if type(obj) is MODEL:",
        *indent(indent(exact_body, "return ("), ""),
        *indent(other_body, "return ("),
    ]
    pk_read = f"obj.{plan.pk_attname}" if attribute_name(plan.pk_attname) else "obj.pk"
    # The audit only when a sink is configured or a receiver listens (as audit.emit() decides).
    emitting = "return EMIT_IF("
    run = [
        "def run(actor, obj, request, probe, extra):",
        f"    pk = {pk_read}",
        "    if request is None:",
        "        request = current_request()",
        "    ctx = Ctx(actor, ACT, obj, request, extra, now())",
        "    if counting() is not None:",
        "        note(True)",
        *indent(exact_body, emitting),
    ]
    # EMIT_IF(mk(...)) -> d = mk(...); return emit(d, request, actor) if anyone listens, else d
    # (the actor: the audit pins the decision's actor before its record is built, later)
    run = [
        line.replace(emitting, "d = (")
        + "\n"
        + line[: len(line) - len(line.lstrip())]
        + "return emit(d, request, actor) if SETTINGS.AUDIT_SINKS or SIGNAL.receivers else d"
        if emitting in line
        else line
        for line in run
    ]
    exec("\n".join(fast), names)
    if model is not None:
        exec("\n".join(run), names)
    return names["fast"], names.get("run")
