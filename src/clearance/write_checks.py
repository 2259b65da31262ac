"""Deciding model invariants for a write, and the decision of a refused write.

:func:`check_instance` decides the invariants of one instance about to be saved or deleted (in
Python, or in the database for a lookup only it can decide); :func:`verify_rows` decides them on
stored rows, in the database where the rules have a SQL form. A refused write becomes a denied
:class:`~clearance.Decision`, attributed to whoever :func:`acting` names (or the request's user),
sent to the audit sinks and raised as :class:`~clearance.InvariantViolation` (or
:class:`BulkInvariantViolation` for many rows).

The write guards (:mod:`clearance.invariants`) and the verification after a write
(:mod:`clearance.verification`) both build on this module.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import FieldError
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.utils import timezone

from . import audit
from .actions import ModelInvariant, invariants_on, registry
from .conf import clearance_settings
from .decisions import (
    ActorRef,
    Decision,
    InvariantViolation,
    Layer,
    RawTrace,
    ResourceRef,
    actor_ref,
    describe_error,
    undecided_reason,
)
from .request_context import current_request, note_decision
from .rules import Context, RuleNotFilterable, Where

if TYPE_CHECKING:
    from .actions import Action

__all__ = [
    "CHUNK_SIZE",
    "BulkInvariantViolation",
    "acting",
    "as_stored",
    "check_instance",
    "chunks",
    "evaluate_invariant",
    "raise_bulk",
    "verify_rows",
    "write_context",
]

logger = logging.getLogger("clearance")

#: Rows verified per query by the bulk guards (and per batch of Python checks).
CHUNK_SIZE = 2000

#: Who is acting, when known: set by ``perform()`` so that a guard's decision names the actor
#: and the action rather than an anonymous write.
_acting: ContextVar[tuple[Any, Action | None] | None] = ContextVar("clearance_acting", default=None)

_UNATTRIBUTED = ActorRef("unattributed", None, "unattributed")


class BulkInvariantViolation(InvariantViolation):
    """A guarded bulk write would break a model invariant; nothing was written.

    ``pks`` lists the offending rows' primary keys; ``violations`` maps each broken invariant's
    name to the primary keys of the rows that break it (rows a bulk insert could not identify
    are listed as ``None``).
    """

    def __init__(self, decision: Decision, violations: dict[str, list[Any]]) -> None:
        super().__init__(decision)
        self.violations = violations
        pks: list[Any] = []
        for found in violations.values():
            pks.extend(pk for pk in found if pk not in pks)
        self.pks = tuple(pks)


# --------------------------------------------------------------------------------------------
# Who acts
# --------------------------------------------------------------------------------------------


@contextmanager
def acting(actor: Any, action: Action | None = None) -> Iterator[None]:
    """Attribute the writes made inside the block to ``actor`` (and ``action``) in the audit.

    ``perform()`` does this for you; use it in jobs that write without an action, so that a
    refused write names the job instead of ``unattributed``.
    """
    token = _acting.set((actor, action))
    try:
        yield
    finally:
        _acting.reset(token)


def _attribution() -> tuple[Any, Action | None, Any]:
    """(actor, action, request) for a guard's decision."""
    request = current_request.get()
    acting_now = _acting.get()
    if acting_now is not None:
        return acting_now[0], acting_now[1], request
    user = getattr(request, "user", None) if request is not None else None
    return user, None, request


def _actor_ref(actor: Any) -> ActorRef:
    if actor is None:
        return _UNATTRIBUTED
    return actor_ref(actor)


# --------------------------------------------------------------------------------------------
# The rule set of a model, as a fingerprint
# --------------------------------------------------------------------------------------------

_fingerprints: dict[type[models.Model], tuple[int, str]] = {}


def _fingerprint(model: type[models.Model]) -> str:
    version = registry.version
    cached = _fingerprints.get(model)
    if cached is not None and cached[0] == version:
        return cached[1]
    lines = [f"model {model._meta.label}"]
    lines += [
        f"model_invariant {r.name} {','.join(sorted(r.on))} {r.rule}"
        for r in registry.invariants_for(model)
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    _fingerprints[model] = (version, digest)
    return digest


# --------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------


def write_context(obj: Any = None) -> Context:
    """The context a guard decides in: who is acting (see :func:`acting`), now, ``obj``."""
    actor, action, request = _attribution()
    return Context(actor, action, obj, now=timezone.now(), request=request, fresh=True)


def _refuse(
    model: type[models.Model],
    event: str,
    invariant: ModelInvariant,
    ctx: Context,
    trace: list[RawTrace],
    pk: Any,
    *,
    error: str | None = None,
    reason: str | None = None,
) -> Decision:
    """Build the denied decision for a refused write and send it to the audit sinks."""
    action = ctx.action.name if ctx.action is not None else f"{model._meta.label}.{event}"
    decision = Decision(
        allowed=False,
        action=action,
        actor=_actor_ref(ctx.actor),
        resource=ResourceRef(model._meta.label, pk),
        layer=Layer.INVARIANT,
        rule=invariant.name,
        reason=reason or (undecided_reason(invariant.name, error) if error else invariant.reason),
        code=invariant.code,
        at=ctx.now,
        fingerprint=_fingerprint(model),
        trace=trace,
        error=error,
        performed=False,
    )
    note_decision()
    return audit.emit(decision, ctx.request)


def evaluate_invariant(invariant: ModelInvariant, ctx: Context) -> tuple[bool, str | None]:
    """Decide one invariant on ``ctx.obj`` in Python; a rule that raises fails closed."""
    try:
        if _needs_database(invariant, type(ctx.obj)) and ctx.obj is not None:
            held = _holds_for_values(invariant, ctx)
            if held is not None:
                return held, None
        return invariant.rule.evaluate(ctx) is True, None
    except Exception as exc:
        if clearance_settings.RAISE_RULE_ERRORS:
            raise
        logger.exception("Model invariant %s raised; refusing the write", invariant.code)
        return False, describe_error(exc)


# --------------------------------------------------------------------------------------------
# Lookups only the database can decide, on a state that is not written yet
# --------------------------------------------------------------------------------------------

_needs_db: dict[tuple[Any, type[models.Model]], bool] = {}


def _needs_database(invariant: ModelInvariant, model: type[models.Model]) -> bool:
    """Whether a ``where`` in the invariant has a lookup Python cannot decide (a transform)."""
    key = (invariant.rule, model)
    cached = _needs_db.get(key)
    if cached is None:
        cached = False
        for leaf in invariant.rule.leaves():
            if isinstance(leaf, Where):
                try:
                    plan = leaf.plan(model)
                except Exception:
                    continue
                if any(type(lookup).__name__ == "_DbLookup" for lookup in plan.local):
                    cached = True
        _needs_db[key] = cached
    return cached


def _holds_for_values(invariant: ModelInvariant, ctx: Context) -> bool | None:
    """Ask the database whether the rule holds for the instance's unsaved values.

    Returns None when the rule reaches beyond the model's own columns (Python decides it then).
    """
    from django.db.models import Value
    from django.db.models.sql import Query
    from django.db.models.sql.constants import SINGLE

    obj = ctx.obj
    model = type(obj)
    try:
        q = invariant.rule.to_q(ctx, model)
    except RuleNotFilterable:
        return None
    if isinstance(q, bool):
        return q
    query = Query(None)
    for field in model._meta.concrete_fields:
        output = field.target_field if field.is_relation else field
        value = Value(getattr(obj, field.attname), output_field=output)
        query.add_annotation(value, field.name, select=False)
        if field.attname != field.name:
            query.add_annotation(value, field.attname, select=False)
        if field.primary_key:
            query.add_annotation(value, "pk", select=False)
    query.add_annotation(Value(1), "_clearance_check")
    try:
        query.add_q(q)
    except FieldError:
        return None
    using = obj._state.db or router.db_for_write(model, instance=obj)
    with transaction.atomic(using=using):
        return query.get_compiler(using=using).execute_sql(SINGLE) is not None


# --------------------------------------------------------------------------------------------
# save() and delete() on one instance
# --------------------------------------------------------------------------------------------


def as_stored(instance: models.Model) -> models.Model:
    """The instance with its decimals rounded as the database will store them.

    A ``Decimal("0.004")`` in a ``DecimalField(decimal_places=2)`` is written as ``0.00``: the
    invariants are decided on what the row will hold. Returns ``instance`` itself when nothing
    needs rounding (the usual case), a shallow copy otherwise.
    """
    rounded: dict[str, Decimal] = {}
    for field in instance._meta.concrete_fields:
        if not isinstance(field, models.DecimalField) or field.decimal_places is None:
            continue
        value = instance.__dict__.get(field.attname)
        if not isinstance(value, Decimal) or not value.is_finite():
            continue
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -field.decimal_places:
            # PostgreSQL rounds half away from zero; the other backends half to even.
            using = instance._state.db or router.db_for_write(type(instance), instance=instance)
            half_up = connections[using].vendor == "postgresql"
            rounded[field.attname] = value.quantize(
                Decimal(1).scaleb(-field.decimal_places),
                rounding=ROUND_HALF_UP if half_up else ROUND_HALF_EVEN,
            )
    if not rounded:
        return instance
    stored = copy.copy(instance)
    stored.__dict__.update(rounded)
    return stored


def check_instance(instance: models.Model, event: str = "save") -> None:
    """Raise :class:`~clearance.InvariantViolation` if ``instance`` breaks an invariant.

    For ``"save"`` the instance's current (unsaved) state is checked; for ``"delete"`` the
    instance as it is in memory. The save and delete guards call this for you.
    """
    model = type(instance)
    invariants = invariants_on(model, event)
    if not invariants:
        return
    ctx = write_context(as_stored(instance) if event == "save" else instance)
    trace: list[RawTrace] = []
    for invariant in invariants:
        start = perf_counter()
        held, error = evaluate_invariant(invariant, ctx)
        trace.append(
            (
                Layer.INVARIANT,
                invariant.name,
                held,
                undecided_reason(invariant.name, error) if error else invariant.reason,
                invariant.expression,
                perf_counter() - start,
                error,
            )
        )
        if not held:
            decision = _refuse(model, event, invariant, ctx, trace, instance.pk, error=error)
            raise InvariantViolation(decision)


# --------------------------------------------------------------------------------------------
# Verifying rows in the database
# --------------------------------------------------------------------------------------------


@dataclass
class _Split:
    in_db: list[tuple[ModelInvariant, Q | bool]]
    in_python: list[ModelInvariant]


class _FilterRaised(Exception):
    """An invariant's filter could not be built: which invariant, and the error it raised."""

    def __init__(self, invariant: ModelInvariant, error: Exception) -> None:
        super().__init__(invariant.code)
        self.invariant = invariant
        self.error = error


def _split(invariants: Sequence[ModelInvariant], model: type[models.Model], ctx: Context) -> _Split:
    """The invariants asked of the database (with their filters) and those decided in Python;
    raises :class:`_FilterRaised` naming the invariant whose filter raised."""
    split = _Split([], [])
    for invariant in invariants:
        try:
            split.in_db.append((invariant, invariant.rule.to_q(ctx, model)))
        except RuleNotFilterable:
            split.in_python.append(invariant)
        except Exception as exc:
            raise _FilterRaised(invariant, exc) from exc
    return split


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def verify_rows(
    model: type[models.Model],
    pks: Sequence[Any],
    event: str = "save",
    *,
    using: str | None = None,
    chunk_size: int | None = None,
    single: bool = False,
    unsaved: bool = False,
) -> None:
    """Verify the stored rows ``pks`` of ``model`` against its ``event`` invariants.

    ``where`` invariants are checked in the database, one query per chunk of rows for all of
    them together; the others row by row in Python, on rows fetched in chunks. Raises
    :class:`BulkInvariantViolation` naming every offending row (the caller rolls back), or a
    plain :class:`~clearance.InvariantViolation` for one instance's write (``single``; with
    ``unsaved``, the refused row was a creation and the decision names no primary key).
    """
    invariants = invariants_on(model, event)
    if not invariants or not pks:
        return
    db = using or router.db_for_write(model)
    size = chunk_size or CHUNK_SIZE
    ctx = write_context()
    base = model._base_manager.db_manager(db)
    violations: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    try:
        split = _split(invariants, model, ctx)
    except _FilterRaised as raised:
        exc = raised.error
        if clearance_settings.RAISE_RULE_ERRORS:
            raise exc from None
        logger.error(
            "A model invariant of %s raised; refusing the write",
            model._meta.label,
            exc_info=exc,
        )
        # The refusal names the invariant that could not be decided, and every row.
        culprit = raised.invariant
        raise_bulk(model, event, culprit, ctx, {culprit.name: list(pks)}, error=exc)
    combined: Q | bool = True
    for invariant, q in split.in_db:
        if q is False:
            violations[invariant.name] = list(pks)
        elif q is not True:
            combined = q if combined is True else cast(Q, combined) & q
    for chunk in chunks(pks, size):
        if isinstance(combined, Q):
            bad = list(base.filter(pk__in=chunk).exclude(combined).values_list("pk", flat=True))
            if bad:
                for invariant, q in split.in_db:
                    if isinstance(q, Q):
                        offenders = list(
                            base.filter(pk__in=bad).exclude(q).values_list("pk", flat=True)
                        )
                        if offenders:
                            violations.setdefault(invariant.name, []).extend(offenders)
        if split.in_python:
            for obj in base.filter(pk__in=chunk):
                row_ctx = ctx.with_object(obj)
                for invariant in split.in_python:
                    held, error = evaluate_invariant(invariant, row_ctx)
                    if not held:
                        violations.setdefault(invariant.name, []).append(obj.pk)
                        if error:
                            errors.setdefault(invariant.name, error)
    if violations:
        first = next(inv for inv in invariants if inv.name in violations)
        if single:
            trace: list[RawTrace] = [
                (
                    Layer.INVARIANT,
                    inv.name,
                    inv.name not in violations,
                    inv.reason,
                    inv.expression,
                    0.0,
                    errors.get(inv.name),
                )
                for inv in invariants
            ]
            decision = _refuse(
                model,
                event,
                first,
                ctx,
                trace,
                None if unsaved else pks[0],
                error=errors.get(first.name),
            )
            raise InvariantViolation(decision)
        raise_bulk(
            model,
            event,
            first,
            ctx,
            violations,
            error_text=errors.get(first.name),
            invariants=invariants,
        )


def raise_bulk(
    model: type[models.Model],
    event: str,
    first: ModelInvariant,
    ctx: Context,
    violations: dict[str, list[Any]],
    *,
    error: BaseException | None = None,
    error_text: str | None = None,
    invariants: Sequence[ModelInvariant] = (),
) -> None:
    """Record and raise the :class:`BulkInvariantViolation` of a bulk write: ``violations``
    maps each broken invariant's name to the offending rows; ``first`` is the one it names."""
    ordered = {name: sorted(set(pks), key=_sort_key) for name, pks in violations.items()}
    offenders = ordered[first.name]
    shown = ", ".join(str(pk) for pk in offenders[:10])
    more = f" and {len(offenders) - 10} more" if len(offenders) > 10 else ""
    noun = "row" if len(offenders) == 1 else "rows"
    count = f"{len(offenders)} {noun}: {shown}{more}" if offenders else "refused by the database"
    failure = describe_error(error) if error is not None else error_text
    said = undecided_reason(first.name, failure) if failure else first.reason
    reason = f"{said} ({count})"
    # Every invariant that was decided, with its outcome; only the broken ones as failed.
    trace: list[RawTrace] = [
        (Layer.INVARIANT, inv.name, inv.name not in ordered, inv.reason, inv.expression, 0.0, None)
        for inv in invariants
    ] or [(Layer.INVARIANT, name, False, "", "", 0.0, None) for name in ordered]
    decision = _refuse(
        model,
        event,
        first,
        ctx,
        trace,
        offenders[0] if len(offenders) == 1 else None,
        error=failure,
        reason=reason,
    )
    raise BulkInvariantViolation(decision, ordered)


def _sort_key(pk: Any) -> tuple[int, Any]:
    return (0, "") if pk is None else (1, str(pk) if not isinstance(pk, int) else f"{pk:020d}")
