"""Verify rows in the database after a write the objects in memory cannot vouch for.

The ``pre_save`` guard decides a model's invariants on the instance before Django writes it.
That is only sound when the row will hold exactly what the instance holds and the rules read
nothing else. Where it is not, the write runs inside a savepoint, the affected rows are read
back with the same compiled rules ``authorized()`` filters with (one query per model), and the
savepoint is rolled back with an :class:`~clearance.InvariantViolation` naming the broken
invariants when one does not hold:

* ``save(update_fields=[...])``: the other columns of the row may differ from the instance;
* a field set to an expression (``F("balance") - 10``, ``Value("closed")``, a database default);
* an invariant that reads another table, a relation or a column only the database can compare
  (``where(tenant__active=True)``, ``where(members__isnull=False)``, ``where(a__lte=F("b"))``)
  or that is a Python predicate (decided on the row re-read from the database);
* writes to rows that other models' invariants read: the parent row of a multi-table child,
  the tables an invariant reaches through its relations, and the rows ``on_delete=SET_NULL``,
  ``SET_DEFAULT`` and ``SET(...)`` update;
* many-to-many ``add()``, ``remove()``, ``set()`` and ``clear()``, from either side.

A ``save()`` of a model whose invariants only read the instance's own columns, with plain
values, costs no query beyond Django's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

from django.apps import apps
from django.db import models, router, transaction
from django.db.models.signals import m2m_changed, post_delete, pre_delete

from .actions import ModelInvariant, invariants_on, registry
from .decisions import InvariantViolation
from .rules import Where
from .write_checks import verify_rows

__all__ = [
    "Dependency",
    "dependents_of",
    "install",
    "reads_only_own_columns",
    "verify_changed",
]

#: ``on_delete`` behaviours that write nothing to the referring rows (or delete them).
_NOT_UPDATING = (models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING)


@dataclass(frozen=True)
class Dependency:
    """Rows of ``model`` whose invariants read rows of another model, reached by ``path``.

    ``model.objects.filter(<path>__in=pks)`` are the rows to verify after a write to ``pks``.
    ``stable`` is True when that answer depends only on ``model``'s own columns (one forward
    hop), so it is the same before and after the write and need not be asked twice.
    ``on_delete`` marks a foreign key whose ``on_delete`` updates the rows: only deleting the
    referenced rows concerns them. ``through`` is set for the rows of a many-to-many relation's
    intermediate model: ``path`` is then its column that holds ``model``'s key.
    """

    model: type[models.Model]
    path: str
    stable: bool
    on_delete: bool = False
    through: type[models.Model] | None = None

    def reached(self, pks: Iterable[Any], using: str) -> set[Any]:
        """Primary keys of the rows of :attr:`model` that reach ``pks`` through the path."""
        keys = [pk for pk in pks if pk is not None]
        if not keys:
            return set()
        if self.through is not None:
            links: models.QuerySet[models.Model] = models.QuerySet(self.through, using=using)
            return set(links.filter(pk__in=keys).values_list(self.path, flat=True))
        rows: models.QuerySet[models.Model] = models.QuerySet(model=self.model, using=using)
        return set(rows.filter(**{f"{self.path}__in": keys}).values_list("pk", flat=True))


# --------------------------------------------------------------------------------------------
# Which invariants the instance can vouch for
# --------------------------------------------------------------------------------------------

_own_columns: dict[tuple[Any, type[models.Model]], bool] = {}


def reads_only_own_columns(invariant: ModelInvariant, model: type[models.Model]) -> bool:
    """Whether Python decides ``invariant`` from the instance's own column values alone.

    True for ``where()`` rules (combined with ``&``, ``|``, ``~``) whose lookups compare the
    model's own columns (a foreign key's value included) with values or placeholders. False
    for predicates, relations followed, to-many lookups, lookups only the database can decide
    and generated columns: those are verified on the row after the write.
    """
    key = (invariant.rule, model)
    cached = _own_columns.get(key)
    if cached is None:
        cached = _own_columns[key] = _reads_only_own_columns(invariant, model)
    return cached


def _reads_only_own_columns(invariant: ModelInvariant, model: type[models.Model]) -> bool:
    for leaf in invariant.rule.leaves():
        if not isinstance(leaf, Where):
            return False
        try:
            if leaf.groups(model) or leaf.db_lookups(model) or leaf.related_paths(model):
                return False
        except Exception:
            return False
        for key in leaf.lookups:
            name = key.split("__", 1)[0]
            try:
                fld = model._meta.get_field("pk" if name == "pk" else name)
            except Exception:
                if name == "pk":
                    continue
                return False
            if isinstance(fld, models.GeneratedField):
                return False
    return True


def _has_expressions(instance: models.Model) -> bool:
    values = instance.__dict__
    return any(
        hasattr(values.get(f.attname), "resolve_expression") for f in instance._meta.concrete_fields
    )


# --------------------------------------------------------------------------------------------
# Which rows other invariants read
# --------------------------------------------------------------------------------------------

_dependencies: dict[type[models.Model], list[Dependency]] = {}
_dependents_cache: dict[tuple[type[models.Model], str], tuple[Dependency, ...]] = {}
_built_version = -1


def _concrete(model: type[models.Model]) -> type[models.Model]:
    return model._meta.concrete_model or model


def _hops(model: type[models.Model], key: str) -> Iterator[tuple[type[models.Model], str, bool]]:
    """(related model, ORM path, stable) for each relation a lookup ``key`` reads through."""
    opts = model._meta
    path: list[str] = []
    parts = key.split("__")
    for i, name in enumerate(parts):
        try:
            fld = opts.get_field(cast(Any, opts.pk).name if name == "pk" else name)
        except Exception:
            return
        if not fld.is_relation or fld.related_model is None:
            return
        related = fld.related_model
        forward = bool(fld.concrete and not fld.many_to_many)
        rest = parts[i + 1 :]
        if forward and _reads_key_only(cast(Any, fld), related, rest):
            return  # the foreign key's own column is compared: nothing else is read
        path.append(fld.name)
        yield related, "__".join(path), forward and len(path) == 1
        opts = related._meta


def _reads_key_only(fld: Any, related: type[models.Model], rest: list[str]) -> bool:
    if not rest:
        return True
    if rest[0] in (fld.target_field.name, "pk"):
        return len(rest) == 1 or (len(rest) == 2 and _is_lookup(related, rest[1]))
    return len(rest) == 1 and _is_lookup(related, rest[0])


def _fields_read(invariants: Iterable[ModelInvariant]) -> set[str] | None:
    """The first segment of every lookup the invariants make; None when a predicate may read
    anything."""
    read: set[str] = set()
    for invariant in invariants:
        for leaf in invariant.rule.leaves():
            if not isinstance(leaf, Where):
                return None
            read.update(key.split("__", 1)[0] for key in leaf.lookups)
    return read


def _through_link(model: type[models.Model], name: str) -> tuple[type[models.Model], str] | None:
    """(intermediate model, its column holding ``model``'s key) for a many-to-many ``name``."""
    try:
        fld: Any = model._meta.get_field(name)
    except Exception:
        return None
    if not fld.many_to_many:
        return None
    declared_here = isinstance(fld, models.ManyToManyField)  # not "concrete" on Django 6
    if declared_here:  # the ManyToManyField itself
        through, column = fld.remote_field.through, fld.m2m_field_name()
    else:  # the other side's field, seen from here
        through, column = fld.through, fld.field.m2m_reverse_field_name()
    return through, through._meta.get_field(column).attname


def _is_lookup(model: type[models.Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except Exception:
        return True
    return False


def _build() -> None:
    global _built_version
    found: dict[type[models.Model], list[Dependency]] = {}

    def add(source: type[models.Model], dep: Dependency) -> None:
        deps = found.setdefault(_concrete(source), [])
        if dep not in deps:
            deps.append(dep)

    for model in apps.get_models():
        if model._meta.proxy:
            continue
        invariants = invariants_on(model, "save")
        if not invariants:
            continue
        for parent in model._meta.get_parent_list():
            add(parent, Dependency(model, "pk", True))
        for invariant in invariants:
            for leaf in invariant.rule.leaves():
                if isinstance(leaf, Where):
                    for key in leaf.lookups:
                        for related, path, stable in _hops(model, key):
                            add(related, Dependency(model, path, stable))
                        link = _through_link(model, key.split("__", 1)[0])
                        if link is not None:
                            add(link[0], Dependency(model, link[1], False, through=link[0]))
        read = _fields_read(invariants)
        for fld in model._meta.concrete_fields:
            remote = getattr(fld, "remote_field", None)
            on_delete = getattr(remote, "on_delete", None)
            if remote is None or on_delete is None or on_delete in _NOT_UPDATING:
                continue
            if read is not None and fld.name not in read and fld.attname not in read:
                continue  # no invariant reads the key an on_delete would change
            target = cast(type[models.Model], fld.related_model)
            add(target, Dependency(model, fld.name, True, on_delete=True))
    _dependencies.clear()
    _dependencies.update(found)
    _dependents_cache.clear()
    _built_version = registry.version


def _sync() -> None:
    if registry.version != _built_version:
        _build()


def dependents_of(model: type[models.Model], event: str = "save") -> tuple[Dependency, ...]:
    """What to verify after rows of ``model`` are written: other models' rows that read them.

    Includes what reads the model's parent rows (a multi-table child writes those too), and
    leaves out the model's own lineage (its own invariants are verified as its own), except
    through a relation to the model itself (a row's children read it). For
    ``event="delete"``, also the rows an ``on_delete`` updates.
    """
    _sync()
    key = (model, event)
    cached = _dependents_cache.get(key)
    if cached is not None:
        return cached
    concrete = _concrete(model)
    lineage = {concrete, *model._meta.get_parent_list()}
    deps: list[Dependency] = []
    for source in lineage:
        for dep in _dependencies.get(source, ()):
            if dep.on_delete and event != "delete":
                continue
            # The lineage's own rows are the written ones, unless reached through a relation.
            own_row = _concrete(dep.model) in lineage and _is_parent_link(dep)
            if not own_row and dep not in deps:
                deps.append(dep)
    result = tuple(deps)
    _dependents_cache[key] = result
    return result


def _is_parent_link(dep: Dependency) -> bool:
    """Whether ``dep`` reaches the written rows themselves (a multi-table child's parent)."""
    first = dep.path.split("__", 1)[0]
    if first == "pk":
        return True
    try:
        fld: Any = dep.model._meta.get_field(first)
    except Exception:
        return False
    return bool(getattr(fld.remote_field, "parent_link", False))


def sources() -> set[type[models.Model]]:
    """Models whose rows some other model's invariants read (concrete models)."""
    _sync()
    return set(_dependencies)


# --------------------------------------------------------------------------------------------
# Verifying what a write reached
# --------------------------------------------------------------------------------------------


def reached_before(
    deps: Sequence[Dependency], pks: Iterable[Any], using: str
) -> dict[type[models.Model], set[Any]]:
    """The rows the unstable dependencies reach from ``pks`` before a write changes them."""
    keys = list(pks)
    before: dict[type[models.Model], set[Any]] = {}
    for dep in deps:
        if not dep.stable:
            before.setdefault(dep.model, set()).update(dep.reached(keys, using))
    return before


def verify_dependents(
    deps: Sequence[Dependency],
    pks: Iterable[Any],
    using: str,
    before: dict[type[models.Model], set[Any]] | None = None,
) -> None:
    """Verify the rows ``deps`` reach from ``pks`` now, and those they reached ``before``."""
    keys = list(pks)
    rows: dict[type[models.Model], set[Any]] = {}
    for model, found in (before or {}).items():
        rows[model] = set(found)
    for dep in deps:
        rows.setdefault(dep.model, set()).update(dep.reached(keys, using))
    for model, found in rows.items():
        if found:
            verify_rows(model, sorted(found, key=str), "save", using=using)


def _needs_row_check(model: type[models.Model]) -> bool:
    return any(not reads_only_own_columns(inv, model) for inv in invariants_on(model, "save"))


def verify_changed(model: type[models.Model], pks: Iterable[Any], using: str) -> None:
    """Rows of ``model`` changed in a way their columns do not show (a relation changed).

    Verifies their own invariants that read beyond their columns, and the rows of other
    models that read them.
    """
    keys = [pk for pk in pks if pk is not None]
    if not keys:
        return
    if _needs_row_check(model):
        verify_rows(model, keys, "save", using=using, single=len(keys) == 1)
    deps = dependents_of(model)
    if deps:
        verify_dependents(deps, keys, using)


# --------------------------------------------------------------------------------------------
# save()
# --------------------------------------------------------------------------------------------

#: The instance whose save is verified after the write (the pre_save guard leaves it alone).
_verifying_after: ContextVar[int | None] = ContextVar("clearance_verifying_after", default=None)


def verified_after_write(instance: models.Model) -> bool:
    """Whether ``instance``'s save is being verified in the database after the write."""
    return _verifying_after.get() == id(instance)


_SAVE_BASE_PARAMETERS = ("raw", "force_insert", "force_update", "using", "update_fields")


def guard_save(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a model's ``save_base()``: verify the written rows when the instance cannot."""

    @functools.wraps(method)
    def save_base(self: models.Model, *args: Any, **kwargs: Any) -> Any:
        options = dict(zip(_SAVE_BASE_PARAMETERS, args, strict=False))
        options.update(kwargs)
        model = type(self)
        own = invariants_on(model, "save")
        deps = dependents_of(model)
        if options.get("raw") or not (own or deps):
            return method(self, *args, **kwargs)
        verify_own = bool(own) and (
            options.get("update_fields") is not None
            or _has_expressions(self)
            or not all(reads_only_own_columns(inv, model) for inv in own)
        )
        if not verify_own and not deps:
            # The instance holds the whole new row: the pre_save guard decides, no query.
            return method(self, *args, **kwargs)
        using = options.get("using") or router.db_for_write(model, instance=self)
        adding = self._state.adding or self.pk is None
        kept = dict(self.__dict__) if adding else None
        token = _verifying_after.set(id(self)) if verify_own else None
        try:
            with transaction.atomic(using=using):
                before = {} if adding else reached_before(deps, [self.pk], using)
                result = method(self, *args, **kwargs)
                if verify_own:
                    verify_rows(model, [self.pk], "save", using=using, single=True, unsaved=adding)
                if deps:
                    verify_dependents(deps, [self.pk], using, before)
        except InvariantViolation:
            if kept is not None:
                # The refused row was never written: the instance is unsaved again.
                self.__dict__.update(kept)
                self._state.adding = True
            raise
        finally:
            if token is not None:
                _verifying_after.reset(token)
        return result

    save_base._clearance_guard = True  # type: ignore[attr-defined]
    return save_base


def _wrap_save(model: type[models.Model]) -> None:
    own = model.__dict__.get("save_base")
    if getattr(own, "_clearance_guard", False):
        return
    if own is None and getattr(model.save_base, "_clearance_guard", False):
        return
    model.save_base = guard_save(model.save_base)  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------
# delete(): rows that read the deleted rows, on_delete updates
# --------------------------------------------------------------------------------------------


@dataclass
class _Deletion:
    """What one delete (one ``origin``) reaches: rows deleted and rows to verify after."""

    origin: Any
    deleting: set[tuple[type[models.Model], Any]] = field(default_factory=set)
    pending: dict[tuple[type[models.Model], Any], dict[type[models.Model], set[Any]]] = field(
        default_factory=dict
    )
    deleted_any: bool = False


_deletion: ContextVar[_Deletion | None] = ContextVar("clearance_deletion", default=None)


def _current_deletion(origin: Any, *, starting: bool) -> _Deletion:
    current = _deletion.get()
    if current is None or current.origin is not origin or (starting and current.deleted_any):
        current = _Deletion(origin)
        _deletion.set(current)
    return current


def note_deleting(instance: models.Model, origin: Any) -> None:
    """Record that ``instance`` is deleted by the delete from ``origin`` (not verified after)."""
    deletion = _current_deletion(origin, starting=True)
    deletion.deleting.add((_concrete(type(instance)), instance.pk))


def _on_source_pre_delete(
    sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any
) -> None:
    deletion = _current_deletion(kwargs.get("origin"), starting=True)
    deletion.deleting.add((_concrete(sender), instance.pk))
    deps = dependents_of(sender, "delete")
    if deps:
        reached: dict[type[models.Model], set[Any]] = {}
        for dep in deps:
            reached.setdefault(dep.model, set()).update(dep.reached([instance.pk], using))
        deletion.pending[(_concrete(sender), instance.pk)] = reached


def _on_source_post_delete(
    sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any
) -> None:
    deletion = _current_deletion(kwargs.get("origin"), starting=False)
    deletion.deleted_any = True
    reached = deletion.pending.pop((_concrete(sender), instance.pk), None)
    if not reached:
        return
    for model, pks in reached.items():
        concrete = _concrete(model)
        left = [pk for pk in pks if (concrete, pk) not in deletion.deleting]
        if left:
            verify_rows(model, sorted(left, key=str), "save", using=using)


@contextmanager
def deleting() -> Iterator[None]:
    """Forget the bookkeeping of a delete once it is over (refused or not)."""
    token = _deletion.set(None)
    try:
        yield
    finally:
        _deletion.reset(token)


# --------------------------------------------------------------------------------------------
# Many-to-many
# --------------------------------------------------------------------------------------------


def _m2m_field(through: type[models.Model], source: type[models.Model]) -> Any:
    for fld in source._meta.many_to_many:
        if cast(Any, fld).remote_field.through is through:
            return fld
    return None


def _on_m2m_changed(
    sender: type[models.Model],
    instance: models.Model,
    action: str,
    reverse: bool,
    model: type[models.Model],
    pk_set: set[Any] | None,
    using: str,
    **kwargs: Any,
) -> None:
    if action == "pre_clear":
        if not (invariants_on(model, "save") or dependents_of(model)):
            return
        owner = model if reverse else type(instance)
        fld = _m2m_field(sender, owner)
        if fld is None:
            return
        mine, theirs = (
            (fld.m2m_reverse_field_name(), fld.m2m_field_name())
            if reverse
            else (fld.m2m_field_name(), fld.m2m_reverse_field_name())
        )
        rows = models.QuerySet(model=sender, using=using).filter(**{mine: instance.pk})
        attname = cast(Any, sender._meta.get_field(theirs)).attname
        _cleared[(sender, id(instance))] = set(rows.values_list(attname, flat=True))
        return
    if not action.startswith("post_"):
        return
    related = pk_set
    if action == "post_clear":
        related = _cleared.pop((sender, id(instance)), set())
    verify_changed(type(instance), [instance.pk], using)
    if related:
        verify_changed(model, related, using)


_cleared: dict[tuple[Any, int], set[Any]] = {}


# --------------------------------------------------------------------------------------------
# Installing
# --------------------------------------------------------------------------------------------


def install(guarded: set[type[models.Model]]) -> set[type[models.Model]]:
    """Guard ``save()`` of ``guarded`` models and of the models other invariants read.

    Returns the models whose deletes must run in a savepoint (the readers' sources).
    """
    _build()
    m2m_changed.connect(_on_m2m_changed, dispatch_uid="clearance.verification.m2m")
    source_models = set(_dependencies)
    with_sources = set()
    for model in apps.get_models(include_auto_created=True):
        lineage = {_concrete(model), *model._meta.get_parent_list()}
        reads = bool(lineage & source_models)
        if model in guarded or dependents_of(model):
            _wrap_save(model)
        if model in guarded or reads:
            pre_delete.connect(
                _on_source_pre_delete,
                sender=model,
                weak=False,
                dispatch_uid=f"clearance.verification.pre_delete.{model._meta.label}",
            )
        if reads:
            with_sources.add(model)
            post_delete.connect(
                _on_source_post_delete,
                sender=model,
                weak=False,
                dispatch_uid=f"clearance.verification.post_delete.{model._meta.label}",
            )
    return with_sources
