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
sinks like every other. The guards decide with :mod:`clearance.write_checks` (one instance, or
stored rows) and :mod:`clearance.verification` (rows re-read after a write); ``acting``,
``check_instance`` and ``verify_rows`` are importable from here as well.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.apps import apps
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models.signals import pre_delete, pre_save

from .actions import ModelInvariant, abstract_bases, invariant_hooks, invariants_on, registry
from .constraints import constraint_matches, expected_constraint
from .verification import (
    deleting,
    dependents_of,
    install,
    reached_before,
    verified_after_write,
    verify_dependents,
)
from .write_checks import (
    CHUNK_SIZE,
    BulkInvariantViolation,
    acting,
    as_stored,
    check_instance,
    chunks,
    evaluate_invariant,
    raise_bulk,
    verify_rows,
    write_context,
)

if TYPE_CHECKING:
    pass

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

#: Rows whose delete invariants were already verified in the database, by concrete model.
_verified_deletes: ContextVar[dict[type[models.Model], frozenset[Any]] | None] = ContextVar(
    "clearance_verified_deletes", default=None
)


# --------------------------------------------------------------------------------------------
# save() and delete() on one instance
# --------------------------------------------------------------------------------------------


def _on_pre_save(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    sync_guards()
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
# A database constraint refused the write first
# --------------------------------------------------------------------------------------------


def _constraint_invariant(model: type[models.Model], exc: IntegrityError) -> ModelInvariant | None:
    """The invariant whose ``CheckConstraint`` the database reported in ``exc``, if any.

    The driver's diagnostics decide first (psycopg's ``diag.constraint_name``); otherwise the
    message must name the constraint as a whole word: ``clearance_ticket_capped`` is not the
    constraint a message about ``clearance_ticket_capped_when_closed`` reports.
    """
    text = str(exc)
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    reported = getattr(diag, "constraint_name", None)
    candidates: list[tuple[ModelInvariant, set[str]]] = []
    for invariant in invariants_on(model, "save"):
        expected = expected_constraint(
            cast(type[models.Model], model._meta.concrete_model), invariant
        )
        if expected is None:
            continue
        names = {expected.name} | {
            c.name for c in model._meta.constraints if constraint_matches(c, expected)
        }
        if reported in names:
            return invariant
        candidates.append((invariant, names))
    for invariant, names in candidates:
        if any(re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text) for name in names):
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
    ctx = write_context()
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
    for chunk in chunks(pks, size):
        for obj in base.filter(pk__in=chunk).annotate(**aliases):
            for alias, attname in attnames.items():
                setattr(obj, attname, getattr(obj, alias))
            row_ctx = ctx.with_object(as_stored(obj))
            if not all(evaluate_invariant(inv, row_ctx)[0] for inv in invariants):
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
        pks: list[Any] = []
        try:
            with transaction.atomic(using=self.db):
                pks = self._locked_pks()
                deps = dependents_of(self.model)
                before = reached_before(deps, pks, self.db)
                # A plain queryset: the model's _base_manager may be this guarded one.
                base: models.QuerySet[_M] = models.QuerySet(model=self.model, using=self.db)
                count = 0
                for chunk in chunks(pks, self.guard_chunk_size):
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
            raise_bulk(self.model, "save", invariant, write_context(), {invariant.name: offenders})
        return count

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        """Verify the rows' delete invariants, then delete them; raise and keep them if not."""
        if not self._guarded("delete"):
            return super().delete()
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
            raise_bulk(self.model, "save", invariant, write_context(), {invariant.name: []})
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
                deps = dependents_of(self.model)
                if deps:
                    verify_dependents(deps, pks, self.db)
            else:
                # The database did not say which rows it wrote: check the objects themselves.
                self._check_objects(created or objs)
        return created

    def _check_objects(self, objs: Sequence[_M]) -> None:
        invariants = invariants_on(self.model, "save")
        ctx = write_context()
        violations: dict[str, list[Any]] = {}
        for obj in objs:
            row_ctx = ctx.with_object(as_stored(obj))
            for invariant in invariants:
                held, _ = evaluate_invariant(invariant, row_ctx)
                if not held:
                    violations.setdefault(invariant.name, []).append(obj.pk)
        if violations:
            first = next(inv for inv in invariants if inv.name in violations)
            raise_bulk(self.model, "save", first, ctx, violations)

    def bulk_update(
        self, objs: Iterable[_M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Update the objects' ``fields``, then verify the rows; roll back and raise if not."""
        if not self._guarded("save"):
            return super().bulk_update(objs, fields, batch_size=batch_size)
        objs = list(objs)
        try:
            with transaction.atomic(using=self.db):
                pks = [obj.pk for obj in objs if obj.pk is not None]
                # Django writes each batch through this queryset's update(), which verifies the
                # batch's rows and the rows of other models they reach: what is left is to verify
                # every row again once all the batches are written (a row of an early batch may
                # read a row of a later one).
                count = super().bulk_update(objs, fields, batch_size=batch_size)
                verify_rows(
                    self.model, pks, "save", using=self.db, chunk_size=self.guard_chunk_size
                )
        except IntegrityError as exc:
            invariant = _constraint_invariant(self.model, exc)
            if invariant is None:
                raise
            self._check_objects(objs)
            raise_bulk(self.model, "save", invariant, write_context(), {invariant.name: []})
        return count

    bulk_update.alters_data = True  # type: ignore[attr-defined]


# A model invariant declared after startup (e.g. in a test) is guarded at once.
invariant_hooks.append(install_guards)
