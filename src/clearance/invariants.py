"""Model invariants and the write-path guards that enforce them.

A model invariant (:func:`clearance.model_invariant`) holds for every row the system writes,
whoever writes it. Three guards enforce it:

* ``save()`` — a ``pre_save`` receiver checks the new state of the instance before Django writes
  it, so a refused save leaves the row and the caller's transaction as they were.
* ``delete()`` — the model's ``delete()`` checks the stored row before Django collects it, and a
  ``pre_delete`` receiver checks every row a cascade or a queryset deletes.
* :class:`GuardedQuerySet` — ``update()``, ``delete()``, ``bulk_create()`` and ``bulk_update()``
  run in their own savepoint, verify every affected row in the database after the write (one
  query per chunk of rows for ``where`` invariants; predicates row by row) and roll back with the
  offending primary keys when one breaks an invariant.

A violation raises :class:`~clearance.InvariantViolation` carrying a denied
:class:`~clearance.Decision` whose ``rule`` names the invariant; the decision goes to the audit
sinks like every other.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.apps import apps
from django.core.exceptions import FieldError
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Q
from django.db.models.signals import pre_delete, pre_save
from django.utils import timezone

from . import audit
from .actions import ModelInvariant, abstract_bases, registry
from .conf import clearance_settings
from .decisions import (
    ActorRef,
    Decision,
    InvariantViolation,
    Layer,
    RawTrace,
    ResourceRef,
    describe_error,
    undecided_reason,
)
from .request_context import current_request, note_decision
from .rules import Context, RuleNotFilterable, Where

if TYPE_CHECKING:
    from .actions import Action

__all__ = [
    "BulkInvariantViolation",
    "GuardedQuerySet",
    "acting",
    "check_instance",
    "install_guards",
    "invariants_on",
    "verify_rows",
]

logger = logging.getLogger("clearance")

_M = TypeVar("_M", bound=models.Model)

#: Rows verified per query by the bulk guards (and per batch of Python checks).
CHUNK_SIZE = 2000

#: Who is acting, when known: set by ``perform()`` so that a guard's decision names the actor
#: and the action rather than an anonymous write.
_acting: ContextVar[tuple[Any, Action | None] | None] = ContextVar("clearance_acting", default=None)

#: Rows whose delete invariants were already verified in the database, by concrete model.
_verified_deletes: ContextVar[dict[type[models.Model], frozenset[Any]] | None] = ContextVar(
    "clearance_verified_deletes", default=None
)

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
    from .engine import actor_ref

    return actor_ref(actor)


# --------------------------------------------------------------------------------------------
# Which invariants apply
# --------------------------------------------------------------------------------------------

_by_event: dict[tuple[type[models.Model], str], tuple[int, tuple[ModelInvariant, ...]]] = {}
_fingerprints: dict[type[models.Model], tuple[int, str]] = {}


def invariants_on(model: type[models.Model], event: str) -> tuple[ModelInvariant, ...]:
    """The model invariants checked when ``model`` rows are written by ``event``.

    ``event`` is ``"save"`` (also used for ``update``, ``bulk_create`` and ``bulk_update``) or
    ``"delete"``. Includes the invariants of the concrete model and of parent models.
    """
    key = (model, event)
    version = registry.version
    cached = _by_event.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    found = tuple(inv for inv in registry.invariants_for(model) if event in inv.on)
    _by_event[key] = (version, found)
    return found


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


def _context(obj: Any = None) -> Context:
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


def _evaluate(invariant: ModelInvariant, ctx: Context) -> tuple[bool, str | None]:
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


def _as_stored(instance: models.Model) -> models.Model:
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
    ctx = _context(_as_stored(instance) if event == "save" else instance)
    trace: list[RawTrace] = []
    for invariant in invariants:
        start = perf_counter()
        held, error = _evaluate(invariant, ctx)
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


def _on_pre_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    sync_guards()
    from .verification import verified_after_write

    if verified_after_write(instance):
        return  # decided on the row as written, inside the save's savepoint
    check_instance(instance, "save")


def _on_pre_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    verified = _verified_deletes.get()
    if verified is not None:
        done = verified.get(sender._meta.concrete_model)  # type: ignore[arg-type]
        if done is not None and instance.pk in done:
            return
    check_instance(instance, "delete")


def _guard_delete(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a model's ``delete()``: verify the stored row, then delete inside a savepoint.

    The savepoint keeps the caller's transaction usable when a cascade reaches a row whose
    delete invariant refuses (Django sends ``pre_delete`` inside a block of its own that would
    otherwise mark the caller's transaction for rollback).
    """

    @functools.wraps(method)
    def delete(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        model = type(self)
        own = invariants_on(model, "delete")
        if self.pk is None or not (own or model in _cascading):
            return method(self, *args, **kwargs)
        using = kwargs.get("using") or (args[0] if args and isinstance(args[0], str) else None)
        using = using or router.db_for_write(model, instance=self)
        from .verification import deleting

        with deleting(), transaction.atomic(using=using):
            if not own:
                return method(self, *args, **kwargs)
            verify_rows(model, [self.pk], "delete", using=using, single=True)
            with _skipping_verified(model, [self.pk]):
                return method(self, *args, **kwargs)

    delete._clearance_guard = True  # type: ignore[attr-defined]
    return delete


@contextmanager
def _skipping_verified(model: type[models.Model], pks: Iterable[Any]) -> Iterator[None]:
    concrete = cast(type[models.Model], model._meta.concrete_model)
    current = dict(_verified_deletes.get() or {})
    current[concrete] = current.get(concrete, frozenset()) | frozenset(pks)
    token = _verified_deletes.set(current)
    try:
        yield
    finally:
        _verified_deletes.reset(token)


# --------------------------------------------------------------------------------------------
# Installing the guards
# --------------------------------------------------------------------------------------------

_synced_version = -1
_guarded: set[type[models.Model]] = set()
#: Models whose deletion cascades to rows of a model with invariants.
_cascading: set[type[models.Model]] = set()


def install_guards() -> None:
    """Connect the save and delete guards for every model that has model invariants.

    Called when the ``clearance`` app is ready, and again whenever invariants are declared
    later, so declaring one in a test is enough.
    """
    global _synced_version
    pre_save.connect(_on_pre_save, dispatch_uid="clearance.invariants.pre_save")
    if not apps.models_ready:
        return
    version = registry.version
    if version == _synced_version:
        return
    declared = {model for model, found in registry.model_invariants.items() if found}
    if declared:
        every = apps.get_models()
        with_invariants = set()
        for model in every:
            lineage = {model, model._meta.concrete_model, *model._meta.get_parent_list()}
            if (lineage | set(abstract_bases(model))) & declared:
                with_invariants.add(model)
                _guard_model(model)
        from .verification import install

        read_by_others = install(with_invariants)
        for model in read_by_others - with_invariants:
            _cascading.add(model)
            _wrap_delete(model)
        targets = with_invariants | read_by_others
        for model in _cascading_into(targets, every) - targets:
            _cascading.add(model)
            _wrap_delete(model)
    _synced_version = version


def _cascading_into(
    targets: set[type[models.Model]], every: Iterable[type[models.Model]]
) -> set[type[models.Model]]:
    """Models whose deletion cascades, directly or through others, to rows of ``targets``."""
    deleted_with: dict[type[models.Model], set[type[models.Model]]] = {}
    for model in every:
        for field in model._meta.concrete_fields:
            remote = getattr(field, "remote_field", None)
            if remote is None or getattr(remote, "on_delete", None) is not models.CASCADE:
                continue
            parent = cast(type[models.Model], field.related_model)
            deleted_with.setdefault(parent._meta.concrete_model, set()).add(model)  # type: ignore[arg-type]
    found: set[type[models.Model]] = set()
    frontier = {cast(type[models.Model], t._meta.concrete_model) for t in targets}
    reaches: set[type[models.Model]] = set(frontier)
    while frontier:
        current = frontier.pop()
        for parent, children in deleted_with.items():
            if current in children and parent not in reaches:
                reaches.add(parent)
                frontier.add(parent)
                found.add(parent)
    return {m for m in every if m._meta.concrete_model in found}


def _guard_model(model: type[models.Model]) -> None:
    if model in _guarded:
        return
    pre_delete.connect(
        _on_pre_delete,
        sender=model,
        weak=False,
        dispatch_uid=f"clearance.invariants.pre_delete.{model._meta.label}",
    )
    _wrap_delete(model)
    _guarded.add(model)


def _wrap_delete(model: type[models.Model]) -> None:
    own = model.__dict__.get("delete")
    inherited_guard = own is None and getattr(model.delete, "_clearance_guard", False)
    if not inherited_guard and not getattr(own, "_clearance_guard", False):
        model.delete = _guard_delete(model.delete)  # type: ignore[method-assign]


def sync_guards() -> None:
    """Install the write guards again when the rules changed since they were installed."""
    if registry.version != _synced_version:
        install_guards()


# --------------------------------------------------------------------------------------------
# Verifying rows in the database
# --------------------------------------------------------------------------------------------


@dataclass
class _Split:
    in_db: list[tuple[ModelInvariant, Q | bool]]
    in_python: list[ModelInvariant]


def _split(invariants: Sequence[ModelInvariant], model: type[models.Model], ctx: Context) -> _Split:
    split = _Split([], [])
    for invariant in invariants:
        try:
            split.in_db.append((invariant, invariant.rule.to_q(ctx, model)))
        except RuleNotFilterable:
            split.in_python.append(invariant)
    return split


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
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
    ctx = _context()
    base = model._base_manager.db_manager(db)
    violations: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    try:
        split = _split(invariants, model, ctx)
    except Exception as exc:
        if clearance_settings.RAISE_RULE_ERRORS:
            raise
        logger.exception("A model invariant of %s raised; refusing the write", model._meta.label)
        _raise_bulk(model, event, invariants[0], ctx, {invariants[0].name: list(pks)}, error=exc)
    combined: Q | bool = True
    for invariant, q in split.in_db:
        if q is False:
            violations[invariant.name] = list(pks)
        elif q is not True:
            combined = q if combined is True else cast(Q, combined) & q
    for chunk in _chunks(pks, size):
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
                    held, error = _evaluate(invariant, row_ctx)
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
        _raise_bulk(
            model,
            event,
            first,
            ctx,
            violations,
            error_text=errors.get(first.name),
            invariants=invariants,
        )


def _raise_bulk(
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


# --------------------------------------------------------------------------------------------
# A database constraint refused the write first
# --------------------------------------------------------------------------------------------


def _constraint_invariant(model: type[models.Model], exc: IntegrityError) -> ModelInvariant | None:
    """The invariant whose ``CheckConstraint`` the database reported in ``exc``, if any."""
    from .constraints import constraint_matches, expected_constraint

    text = str(exc)
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    reported = getattr(diag, "constraint_name", None)
    for invariant in invariants_on(model, "save"):
        expected = expected_constraint(
            cast(type[models.Model], model._meta.concrete_model), invariant
        )
        if expected is None:
            continue
        names = {expected.name} | {
            c.name for c in model._meta.constraints if constraint_matches(c, expected)
        }
        if reported in names or any(name in text for name in names):
            return invariant
    return None


def _simulate_update(
    model: type[models.Model], db: str, pks: Sequence[Any], values: dict[str, Any], size: int
) -> list[Any]:
    """Rows of ``pks`` whose state after ``update(**values)`` breaks a save invariant.

    The database computes the new values (expressions included) without writing them; the
    invariants are then decided in Python on each row with those values set.
    """
    from django.db.models import Value

    invariants = invariants_on(model, "save")
    ctx = _context()
    aliases: dict[str, Any] = {}
    attnames: dict[str, str] = {}
    for name, value in values.items():
        field = cast("models.Field[Any, Any]", model._meta.get_field(name))
        attnames[f"_clearance_new_{name}"] = field.attname
        if hasattr(value, "resolve_expression"):
            aliases[f"_clearance_new_{name}"] = value
        else:
            if isinstance(value, models.Model):
                value = value.pk
            output = cast(Any, field).target_field if field.is_relation else field
            aliases[f"_clearance_new_{name}"] = Value(value, output_field=output)
    offenders: list[Any] = []
    base = model._base_manager.db_manager(db)
    for chunk in _chunks(pks, size):
        for obj in base.filter(pk__in=chunk).annotate(**aliases):
            for alias, attname in attnames.items():
                setattr(obj, attname, getattr(obj, alias))
            row_ctx = ctx.with_object(_as_stored(obj))
            if not all(_evaluate(inv, row_ctx)[0] for inv in invariants):
                offenders.append(obj.pk)
    return offenders


# --------------------------------------------------------------------------------------------
# GuardedQuerySet
# --------------------------------------------------------------------------------------------


class GuardedQuerySet(models.QuerySet[_M]):
    """A queryset whose bulk writes keep the model's invariants.

    ``update()``, ``delete()``, ``bulk_create()`` and ``bulk_update()`` run inside
    ``transaction.atomic()`` (a savepoint when a transaction is open), lock the rows they touch,
    verify every affected row in the database after the write and, when one breaks a model
    invariant, roll back and raise :class:`BulkInvariantViolation` with the offending primary
    keys. A model without invariants pays nothing. Use it as the model's manager::

        objects = GuardedQuerySet.as_manager()
    """

    #: Rows verified per query (and per batch of Python checks).
    guard_chunk_size = CHUNK_SIZE

    def _guarded(self, event: str) -> bool:
        sync_guards()
        if invariants_on(self.model, event):
            return True
        from .verification import dependents_of

        return bool(dependents_of(self.model))

    def _locked_pks(self) -> list[Any]:
        """The primary keys this queryset matches, locked for the rest of the transaction."""
        features = connections[self.db].features
        query = self.order_by()
        if query.query.distinct or query.query.combinator:
            pks = list(query.values_list("pk", flat=True))
            query = self.model._base_manager.db_manager(self.db).filter(pk__in=pks)
        if features.has_select_for_update_of:
            query = query.select_for_update(of=("self",))
        else:
            query = query.select_for_update()
        return list(query.values_list("pk", flat=True))

    def update(self, **kwargs: Any) -> int:
        """Update the rows, then verify them; roll back and raise if one breaks an invariant."""
        if not self._guarded("save"):
            return super().update(**kwargs)
        if self.query.is_sliced:
            raise TypeError("Cannot update a query once a slice has been taken.")
        from .verification import dependents_of, reached_before, verify_dependents

        pks: list[Any] = []
        try:
            with transaction.atomic(using=self.db):
                pks = self._locked_pks()
                deps = dependents_of(self.model)
                before = reached_before(deps, pks, self.db)
                # A plain queryset: the model's _base_manager may be this guarded one.
                base: models.QuerySet[_M] = models.QuerySet(model=self.model, using=self.db)
                count = 0
                for chunk in _chunks(pks, self.guard_chunk_size):
                    count += base.filter(pk__in=chunk).update(**kwargs)
                verify_rows(
                    self.model, pks, "save", using=self.db, chunk_size=self.guard_chunk_size
                )
                if deps:
                    verify_dependents(deps, pks, self.db, before)
        except IntegrityError as exc:
            invariant = _constraint_invariant(self.model, exc)
            if invariant is None:
                raise
            offenders = _simulate_update(self.model, self.db, pks, kwargs, self.guard_chunk_size)
            _raise_bulk(self.model, "save", invariant, _context(), {invariant.name: offenders})
        return count

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        """Verify the rows' delete invariants, then delete them; raise and keep them if not."""
        if not self._guarded("delete"):
            return super().delete()
        from .verification import deleting

        with deleting(), transaction.atomic(using=self.db):
            pks = self._locked_pks()
            verify_rows(self.model, pks, "delete", using=self.db, chunk_size=self.guard_chunk_size)
            with _skipping_verified(self.model, pks):
                return super().delete()

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def bulk_create(
        self,
        objs: Iterable[_M],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> list[_M]:
        """Insert the objects, then verify them; roll back and raise if one breaks one."""
        if not self._guarded("save"):
            return super().bulk_create(
                objs,
                batch_size=batch_size,
                ignore_conflicts=ignore_conflicts,
                update_conflicts=update_conflicts,
                update_fields=update_fields,
                unique_fields=unique_fields,
            )
        objs = list(objs)
        try:
            created = self._bulk_create_verified(
                objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields
            )
        except IntegrityError as exc:
            invariant = _constraint_invariant(self.model, exc)
            if invariant is None:
                raise
            self._check_objects(objs)
            _raise_bulk(self.model, "save", invariant, _context(), {invariant.name: []})
        return created

    bulk_create.alters_data = True  # type: ignore[attr-defined]

    def _bulk_create_verified(
        self,
        objs: list[_M],
        batch_size: int | None,
        ignore_conflicts: bool,
        update_conflicts: bool,
        update_fields: Any,
        unique_fields: Any,
    ) -> list[_M]:
        with transaction.atomic(using=self.db):
            created = super().bulk_create(
                objs,
                batch_size=batch_size,
                ignore_conflicts=ignore_conflicts,
                update_conflicts=update_conflicts,
                update_fields=update_fields,
                unique_fields=unique_fields,
            )
            if created and all(obj.pk is not None for obj in created) and not ignore_conflicts:
                pks = [obj.pk for obj in created]
                verify_rows(
                    self.model, pks, "save", using=self.db, chunk_size=self.guard_chunk_size
                )
                from .verification import dependents_of, verify_dependents

                deps = dependents_of(self.model)
                if deps:
                    verify_dependents(deps, pks, self.db)
            else:
                # The database did not say which rows it wrote: check the objects themselves.
                self._check_objects(created or objs)
        return created

    def _check_objects(self, objs: Sequence[_M]) -> None:
        invariants = invariants_on(self.model, "save")
        ctx = _context()
        violations: dict[str, list[Any]] = {}
        for obj in objs:
            row_ctx = ctx.with_object(_as_stored(obj))
            for invariant in invariants:
                held, _ = _evaluate(invariant, row_ctx)
                if not held:
                    violations.setdefault(invariant.name, []).append(obj.pk)
        if violations:
            first = next(inv for inv in invariants if inv.name in violations)
            _raise_bulk(self.model, "save", first, ctx, violations)

    def bulk_update(
        self, objs: Iterable[_M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Update the objects' ``fields``, then verify the rows; roll back and raise if not."""
        if not self._guarded("save"):
            return super().bulk_update(objs, fields, batch_size=batch_size)
        objs = list(objs)
        try:
            from .verification import dependents_of, reached_before, verify_dependents

            with transaction.atomic(using=self.db):
                pks = [obj.pk for obj in objs if obj.pk is not None]
                deps = dependents_of(self.model)
                before = reached_before(deps, pks, self.db)
                count = super().bulk_update(objs, fields, batch_size=batch_size)
                verify_rows(
                    self.model, pks, "save", using=self.db, chunk_size=self.guard_chunk_size
                )
                if deps:
                    verify_dependents(deps, pks, self.db, before)
        except IntegrityError as exc:
            invariant = _constraint_invariant(self.model, exc)
            if invariant is None:
                raise
            self._check_objects(objs)
            _raise_bulk(self.model, "save", invariant, _context(), {invariant.name: []})
        return count

    bulk_update.alters_data = True  # type: ignore[attr-defined]
