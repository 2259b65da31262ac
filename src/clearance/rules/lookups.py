"""``where()``: a rule written as Django ORM lookups, planned once per model.

:meth:`Where.plan` splits the lookups into local ones (decided on the object, see
:mod:`clearance.rules.evaluate`), ones only the database can decide (an expression, a
queryset) and groups that cross a to-many relation (one query, cached on the actor object when
tied to the actor; :func:`clear_actor_cache` forgets it). :meth:`Where.to_q` compiles the same
plan to a ``Q`` (:mod:`clearance.rules.sql`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import FieldDoesNotExist, FieldError, ObjectDoesNotExist
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.expressions import Combinable, CombinedExpression, Subquery

from .context import Bind, Checker, Context, attribute_name
from .evaluate import (
    FIELD_LOOKUPS,
    NONE_OK,
    NOTHING,
    PY_LOOKUPS,
    FieldArithmetic,
    FieldConstant,
    FieldLookup,
    FieldPath,
    LocalLookup,
    Step,
)
from .placeholders import (
    Ref,
    bind_value,
    contains_ref,
    is_placeholder,
    reads_object,
    show_value,
)
from .sql import (
    RANGE_LOOKUP_CLASSES,
    bound_value,
    first_hop_subquery,
    lookup_q,
    matches_missing,
    validate_db_lookup,
)
from .tree import Rule, RuleNotFilterable, check_path, unfilterable_reason

#: The attribute on an actor object where per-actor results are cached (like ``_perm_cache``).
ACTOR_CACHE_ATTR = "_clearance_cache"


@dataclass(eq=False)  # hashed by identity: the group itself keys the caches
class _ManyGroup:
    """Lookups that cross a to-many relation from the same single-valued prefix.

    Decided as "the anchor (the object, or the row its foreign keys lead to) is among the rows
    of ``anchor_model`` matching the lookups", which is one query, or a set cached on the actor.
    """

    prefix_steps: list[Step]
    anchor_attr: str  # attribute on the last object of the prefix holding the anchor value
    anchor_model: type[models.Model]
    anchor_field: str
    prefix: str  # ORM path of the prefix ("" for the object itself)
    lookups: dict[str, Any] = field(default_factory=dict)
    # actor_tied, computed on the first check (the lookups are complete by then).
    _tied: bool | None = field(default=None, init=False, repr=False)
    # The lookup's key when the group is one lookup whose value is ACTOR itself (the common
    # case: a warm check is then one set membership test), "" when not; None until computed.
    _actor_only: str | None = field(default=None, init=False, repr=False)

    @property
    def actor_tied(self) -> bool:
        return any(
            contains_ref(v, "ACTOR") and k.rsplit("__", 1)[-1] not in _NOT_BOUNDING
            for k, v in self.lookups.items()
        )

    def _actor_key(self, bound: dict[str, Any]) -> tuple[Any, ...]:
        """The key of this group's answer in the actor's cache.

        The bound values in the group's own lookup order (the keys never change), frozen only
        when a value cannot be hashed as it is.
        """
        values = tuple(bound.values())
        try:
            hash(values)
        except TypeError:
            return (self, freeze(bound))
        return (self, values)

    def checker(self) -> Checker:
        """:meth:`check`, with a shorter road to the warm answer of a group tied to the actor
        alone (``tenant__memberships__user=ACTOR``): the set already cached on the actor."""
        only = self._actor_only
        if only is None:
            only = self._actor_only = self._only_actor_key()
        general = self.check
        if not only or self.prefix_steps:
            return general
        anchor_attr = self.anchor_attr

        def check(obj: Any, ctx: Context) -> bool:
            actor = ctx.actor
            if ctx.fresh:
                return general(obj, ctx)
            cache = getattr(actor, ACTOR_CACHE_ATTR, None)
            ids = None if cache is None else cache.get((self, (getattr(actor, "pk", None),)))
            if ids is None:
                return general(obj, ctx)
            anchor = getattr(obj, anchor_attr)
            return anchor is not None and anchor in ids

        return check

    def python_lines(self, bind: Bind) -> list[str] | None:
        """The warm answer of :meth:`checker` as statements (see :meth:`Rule.python_lines
        <clearance.rules.Rule.python_lines>`), or None when it has no such form."""
        only = self._actor_only
        if only is None:
            only = self._actor_only = self._only_actor_key()
        if not only or self.prefix_steps or not attribute_name(self.anchor_attr):
            return None
        return [
            "ids = None",
            "if not ctx.fresh:",
            f"    cache = getattr(actor, {ACTOR_CACHE_ATTR!r}, None)",
            "    if cache is not None:",
            f"        ids = cache.get(({bind(self)}, (getattr(actor, 'pk', None),)))",
            "if ids is None:",
            f"    ok = {bind(self.check)}(obj, ctx) is True",
            "else:",
            f"    a = obj.{self.anchor_attr}",
            "    ok = a is not None and a in ids",
        ]

    def bound(self, ctx: Context) -> dict[str, Any] | None:
        out = {}
        for key, value in self.lookups.items():
            bound = bind_value(value, ctx)
            if is_placeholder(value):
                if bound is None:
                    return None  # matches nothing
                bound = _row_key(bound)
                if bound is None:
                    return None
            elif isinstance(value, (list, tuple, set, frozenset)) and contains_ref(value):
                # watchers__in=[ACTOR, CTX.user]: as for a local "in", a placeholder that is
                # None or not a row (an anonymous user) is no candidate; none left, no match.
                items = [
                    _row_key(bind_value(raw, ctx)) if is_placeholder(raw) else raw for raw in value
                ]
                bound = [item for item in items if item is not None]
                if not bound:
                    return None
            out[key] = bound
        return out

    def matching(self, bound: dict[str, Any]) -> models.QuerySet[Any]:
        manager = self.anchor_model._base_manager
        return cast("models.QuerySet[Any]", manager.filter(**bound).values(self.anchor_field))

    def to_q(self, ctx: Context) -> Q | bool:
        bound = self.bound(ctx)
        if bound is None:
            return False
        target = f"{self.prefix}__in" if self.prefix else "pk__in"
        return Q(**{target: self.matching(bound)})

    def anchor(self, obj: Any) -> Any:
        current = obj
        for step in self.prefix_steps:
            if current is None:
                return None
            try:
                current = getattr(current, step.attr)
            except ObjectDoesNotExist:
                return None
        if current is None:
            return None
        return getattr(current, self.anchor_attr)

    def _only_actor_key(self) -> str:
        if len(self.lookups) != 1 or not self.actor_tied:
            return ""
        ((key, value),) = self.lookups.items()
        if isinstance(value, Ref) and value.root == "ACTOR" and not value.path:
            return key
        return ""

    def check(self, obj: Any, ctx: Context) -> bool:
        anchor = self.anchor(obj) if self.prefix_steps else getattr(obj, self.anchor_attr)
        if anchor is None:
            return False
        only = self._actor_only
        if only is None:
            only = self._actor_only = self._only_actor_key()
        actor = ctx.actor
        if only and not ctx.fresh and actor is not None:
            # What the general path below does for bound == {only: actor's pk}, same cache key.
            pk = _row_key(actor)
            if pk is None:
                return False
            cache = getattr(actor, ACTOR_CACHE_ATTR, None)
            if cache is None:
                cache = _actor_cache(actor)
            key = (self, (pk,))
            ids = cache.get(key)
            if ids is None:
                ids = frozenset(self.matching({only: pk}).values_list(self.anchor_field, flat=True))
                cache[key] = ids
            return anchor in ids
        bound = self.bound(ctx)
        if bound is None:
            return False
        tied = self._tied
        if tied is None:
            tied = self._tied = self.actor_tied
        if tied and not ctx.fresh and ctx.actor is not None:
            cache = _actor_cache(ctx.actor)
            key = self._actor_key(bound)
            ids = cache.get(key)
            if ids is None:
                ids = frozenset(self.matching(bound).values_list(self.anchor_field, flat=True))
                cache[key] = ids
            return anchor in ids
        memo_key = ("many", self, freeze(bound))
        batch = ctx.memo.get(memo_key)
        if batch is not None:
            domain, hits = batch
            if anchor in domain:
                return anchor in hits
        single = (memo_key, anchor)
        if single not in ctx.memo:
            ctx.memo[single] = self.matching(bound).filter(**{self.anchor_field: anchor}).exists()
        return cast(bool, ctx.memo[single])

    def prefetch(self, objects: Iterable[Any], ctx: Context) -> None:
        """Answer this group for many objects with one query (used by ``authorize_many``)."""
        bound = self.bound(ctx)
        if bound is None:
            return
        if self.actor_tied and not ctx.fresh and ctx.actor is not None:
            self.check_any(ctx, bound)
            return
        anchors = {a for a in (self.anchor(o) for o in objects) if a is not None}
        if not anchors:
            return
        hits = frozenset(
            self.matching(bound)
            .filter(**{f"{self.anchor_field}__in": anchors})
            .values_list(self.anchor_field, flat=True)
        )
        self.remember(ctx, bound, frozenset(anchors), hits)

    def remember(
        self, ctx: Context, bound: dict[str, Any], anchors: frozenset[Any], hits: frozenset[Any]
    ) -> None:
        """Record this group's answer for ``anchors`` (``hits`` matched) for this decision.

        ``check`` then answers for those anchors without a query. ``perform()`` uses it to hand
        over the answer it read in the statement that locks the row.
        """
        ctx.memo[("many", self, freeze(bound))] = (anchors, hits)

    def check_any(self, ctx: Context, bound: dict[str, Any]) -> None:
        cache = _actor_cache(ctx.actor)
        key = self._actor_key(bound)
        if key not in cache:
            cache[key] = frozenset(self.matching(bound).values_list(self.anchor_field, flat=True))


_NOT_BOUNDING = frozenset({"gt", "gte", "lt", "lte", "range", "contains", "icontains", "isnull"})


def _row_key(value: Any) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if hasattr(value, "is_anonymous") or hasattr(value, "has_perm"):
        return None  # an actor that is not a row owns nothing, whatever key it carries
    return value


def freeze(value: Any) -> Any:
    """A hashable stand-in for a lookup's bound value (model instances by label and pk)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    if isinstance(value, models.Model):
        return (value._meta.label, value.pk)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _actor_cache(actor: Any) -> dict[Any, Any]:
    # getattr, not __dict__: request.user is a SimpleLazyObject that forwards attributes.
    cache = getattr(actor, ACTOR_CACHE_ATTR, None)
    if cache is None:
        cache = {}
        # An actor that takes no attributes gets a cache for this call only.
        with contextlib.suppress(AttributeError):
            setattr(actor, ACTOR_CACHE_ATTR, cache)
    return cast("dict[Any, Any]", cache)


def clear_actor_cache(actor: Any) -> None:
    """Forget what was cached on ``actor``; the next decision asks the database again.

    That is the rows of the to-many lookups tied to the actor
    (``where(tenant__memberships__user=ACTOR)``) and the actor's memberships of each scope
    (:class:`~clearance.Scope`), both kept on the actor object as Django keeps
    ``_perm_cache``. Call it after changing the actor's memberships within one request (or
    load the user again); Django's own ``_perm_cache`` is left alone.
    """
    with contextlib.suppress(AttributeError):
        delattr(actor, ACTOR_CACHE_ATTR)


@dataclass
class _DbLookup:
    """A lookup Python cannot decide (a transform, an expression): asked of the database."""

    key: str
    value: Any
    joins: bool = False  # the key crosses a forward relation

    def check(self, obj: Any, ctx: Context) -> bool:
        if obj.pk is None:
            raise ValueError(
                f"where({self.key}=...) can only be decided in the database, and the object "
                "is not saved"
            )
        q = self.q(ctx)
        if isinstance(q, bool):
            return q
        batch = ctx.memo.get(("db", id(self)))
        if batch is not None and batch[0] == q and obj.pk in batch[1]:
            return obj.pk in batch[2]
        manager = type(obj)._base_manager
        return bool(manager.filter(pk=obj.pk).filter(q).exists())

    def prefetch(self, objects: Iterable[Any], ctx: Context) -> None:
        """Decide this lookup for many saved objects with one query (``authorize_many``)."""
        objs = [obj for obj in objects if obj.pk is not None]
        q = self.q(ctx)
        if not objs or isinstance(q, bool):
            return
        pks = frozenset(obj.pk for obj in objs)
        manager = type(objs[0])._base_manager
        hits = frozenset(manager.filter(pk__in=pks).filter(q).values_list("pk", flat=True))
        ctx.memo[("db", id(self))] = (q, pks, hits)

    def q(self, ctx: Context) -> Q | bool:
        value = bind_value(self.value, ctx)
        if is_placeholder(self.value):
            value = _row_key(value)
            if value is None:
                return False
        return Q(**{self.key: value})


@dataclass
class _Plan:
    local: list[Any]  # LocalLookup | _DbLookup
    groups: list[_ManyGroup]


class Where(Rule):
    """A rule made of Django ORM lookups; see :func:`where`."""

    def __init__(self, **lookups: Any) -> None:
        if not lookups:
            raise TypeError("where() needs at least one lookup, e.g. where(owner=ACTOR)")
        for key, value in lookups.items():
            last = key.rsplit("__", 1)[-1]
            if value is None and "__" in key and last in PY_LOOKUPS and last not in NONE_OK:
                raise ValueError(f"where({key}=None): None only works with exact or iexact")
            inside = _bound_inside(value)
            if inside is not None:
                what = "the row" if isinstance(inside, models.Model) else "the placeholder"
                raise TypeError(
                    f"where({key}=...): {what} {inside!r} cannot be used inside a database "
                    "expression (F(), Value(), a function). Compare the field with F() and "
                    "constants, or with placeholders and constants (CTX.level + 1), or write "
                    "a predicate"
                )
        self.lookups: dict[str, Any] = dict(lookups)
        self.uses_object = True
        #: The lookups whose value reads the object through ``CTX.obj`` (no SQL form).
        self.object_keys: tuple[str, ...] = tuple(
            key for key, value in lookups.items() if reads_object(value)
        )
        self._plans: dict[type[models.Model], _Plan] = {}

    # -- compilation ---------------------------------------------------------------------

    def plan(self, model: type[models.Model]) -> _Plan:
        """The compiled evaluation plan of this rule on ``model`` (cached per model)."""
        try:
            return self._plans[model]
        except KeyError:
            pass
        local: list[Any] = []
        groups: dict[str, _ManyGroup] = {}
        for key, value in self.lookups.items():
            compiled = plan_lookup(model, key, value)
            if isinstance(compiled, _ManyGroup):
                group = groups.get(compiled.prefix)
                if group is None:
                    groups[compiled.prefix] = group = compiled
                else:
                    group.lookups.update(compiled.lookups)
            else:
                local.append(compiled)
        plan = _Plan(local, list(groups.values()))
        self._plans[model] = plan
        return plan

    # -- evaluation ----------------------------------------------------------------------

    def checker(self, model: type[models.Model]) -> Checker:
        plan = self.plan(model)
        checks: list[Checker] = [
            lookup.checker() if isinstance(lookup, LocalLookup) else lookup.check
            for lookup in plan.local
        ]
        checks += [group.checker() for group in plan.groups]
        if len(checks) == 1:
            return checks[0]

        def check(obj: Any, ctx: Context) -> bool:
            for one in checks:  # noqa: SIM110 (a loop costs less than all() and a generator)
                if not one(obj, ctx):
                    return False
            return True

        return check

    def python_lines(self, model: type[models.Model], bind: Bind) -> list[str] | None:
        plan = self.plan(model)
        blocks: list[list[str]] = []
        for lookup in [*plan.local, *plan.groups]:
            has_lines = isinstance(lookup, (LocalLookup, _ManyGroup))
            lines = lookup.python_lines(bind) if has_lines else None
            if lines is None:
                lines = [f"ok = {bind(lookup.check)}(obj, ctx) is True"]
            blocks.append(lines)
        if not blocks:
            return ["ok = True"]
        out = blocks[-1]
        for block in reversed(blocks[:-1]):  # each next check only when the previous held
            out = [*block, "if ok:", *("    " + line for line in out)]
        return out

    def evaluate(self, ctx: Context) -> bool:
        obj = ctx.obj
        if obj is None:
            raise TypeError(f"{self} needs an object to decide on, and none was given")
        plan = self._plans.get(type(obj)) or self.plan(type(obj))
        for lookup in plan.local:
            if not lookup.check(obj, ctx):
                return False
        for group in plan.groups:  # noqa: SIM110 (a loop costs less than all() and a generator)
            if not group.check(obj, ctx):
                return False
        return True

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        if self.object_keys:
            # CTX.obj is None in a filter: binding it would match nothing, and a negation
            # everything, wider than the per-object check.
            raise RuleNotFilterable(self, cast(str, unfilterable_reason(self)))
        plan = self.plan(model)
        result: Q | bool = True
        for lookup in plan.local:
            if isinstance(lookup, _DbLookup):
                q = lookup.q(ctx)
                if lookup.joins and isinstance(q, Q):
                    # Same join hazard as in first_hop_subquery; the value may be an
                    # expression on this model, so the subquery is over this model itself.
                    q = Q(pk__in=model._base_manager.filter(q).values("pk"))
            elif isinstance(lookup, FieldLookup):
                # The rows where the comparison is true, as a subquery: a NULL on either side
                # (a missing row on a path) is in no subquery, and ~ keeps it, as in Python.
                inner = model._base_manager.filter(**{lookup.key: lookup.value})
                q = Q(pk__in=inner.values("pk"))
            else:
                value = bound_value(lookup, ctx)
                if value is NOTHING:
                    q = False
                elif any(step.fetch for step in lookup.steps):
                    first, rest = lookup.key.split("__", 1)
                    q = first_hop_subquery(
                        model,
                        first,
                        lookup_q(lookup, rest, value),
                        missing=matches_missing(lookup, value),
                    )
                else:
                    q = lookup_q(lookup, lookup.key, value)
            if q is False:
                return False
            if q is not True:
                result = q if result is True else cast(Q, result) & q
        for group in plan.groups:
            q = group.to_q(ctx)
            if isinstance(q, Q) and group.prefix_steps:
                ((key, value),) = cast("list[tuple[str, Any]]", q.children)
                first, rest = key.split("__", 1)
                q = first_hop_subquery(model, first, Q(**{rest: value}))
            if q is False:
                return False
            if q is not True:
                result = q if result is True else cast(Q, result) & q
        return result

    def groups(self, model: type[models.Model]) -> list[_ManyGroup]:
        """The to-many lookup groups of this rule on ``model``."""
        return self.plan(model).groups

    def db_lookups(self, model: type[models.Model]) -> list[_DbLookup]:
        """The lookups of this rule on ``model`` that only the database can decide."""
        return [lookup for lookup in self.plan(model).local if isinstance(lookup, _DbLookup)]

    def related_paths(self, model: type[models.Model]) -> set[str]:
        """The forward relations that deciding this rule on one object follows (``owner``)."""
        plan = self.plan(model)
        steps = [getattr(lookup, "steps", []) for lookup in plan.local]
        steps += [
            chain
            for lookup in plan.local
            if isinstance(lookup, FieldLookup)
            for chain in lookup.value_chains()
        ]
        steps += [group.prefix_steps for group in plan.groups]
        paths = {"__".join(step.attr for step in chain if step.fetch) for chain in steps}
        paths.discard("")
        return paths

    def through(self, path: str) -> Rule:
        """This rule on a model that reaches the one it was written for by ``path``: every
        lookup key (and every ``F()`` path) re-rooted under it, ``owner=ACTOR`` becoming
        ``repository__owner=ACTOR`` (see :meth:`Rule.through`)."""
        check_path(path)
        if self.object_keys:
            key = self.object_keys[0]
            raise TypeError(
                f"where({key}={show_value(self.lookups[key])}) reads the decision's object "
                f"through CTX.obj, which through({path!r}) would change: write the lookup "
                "with an F() instead"
            )
        return Where(
            **{f"{path}__{key}": reroot(value, path, key) for key, value in self.lookups.items()}
        )

    def no_sql_reason(self) -> str | None:
        if not self.object_keys:
            return None
        key = self.object_keys[0]
        return (
            f"where({key}={show_value(self.lookups[key])}) reads the object through CTX.obj, "
            "and a filter has no object"
        )

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={show_value(v)}" for k, v in self.lookups.items())
        return f"where({inner})"


def plan_lookup(model: type[models.Model], key: str, value: Any) -> Any:
    """The compiled form of ``where(key=value)`` on ``model``: a local lookup, one only the
    database can decide, or a to-many group."""
    parts = key.split("__")
    opts = model._meta
    steps: list[Step] = []
    path: list[str] = []
    i = 0
    while i < len(parts):
        name = parts[i]
        if name == "pk":
            name = cast("models.Field[Any, Any]", opts.pk).name
        try:
            fld = opts.get_field(name)
        except FieldDoesNotExist:
            if i == 0:
                raise FieldError(f"where({key}=...): {opts.label} has no field {name!r}") from None
            break
        is_many = fld.many_to_many or fld.one_to_many or (fld.one_to_one and not fld.concrete)
        if fld.is_relation and is_many:
            # Everything from here on is asked of the database, anchored at the prefix: the
            # object itself, or the row its chain of foreign keys leads to.
            rest_key = "__".join(parts[i:])
            if not path:
                return _ManyGroup(
                    prefix_steps=[],
                    anchor_attr="pk",
                    anchor_model=opts.model,
                    anchor_field="pk",
                    prefix="",
                    lookups={rest_key: value},
                )
            fk = _forward_field(model, path)
            return _ManyGroup(
                prefix_steps=steps[:-1],
                anchor_attr=fk.attname,
                anchor_model=cast(type[models.Model], fk.related_model),
                anchor_field=fk.target_field.name,
                prefix="__".join(path),
                lookups={rest_key: value},
            )
        if fld.is_relation:
            rest = parts[i + 1 :]
            target = fld.target_field  # type: ignore[union-attr]
            if not rest or (len(rest) == 1 and rest[0] in PY_LOOKUPS):
                lookup = rest[0] if rest else "exact"
                steps.append(Step(fld.attname, fetch=False))  # type: ignore[union-attr]
                return local_lookup(key, steps, target, lookup, value, fld.related_model, model)
            if rest[0] in (target.name, "pk" if target.primary_key else None) and (
                len(rest) == 1 or (len(rest) == 2 and rest[1] in PY_LOOKUPS)
            ):
                lookup = rest[1] if len(rest) == 2 else "exact"
                steps.append(Step(fld.attname, fetch=False))  # type: ignore[union-attr]
                return local_lookup(key, steps, target, lookup, value, None, model)
            steps.append(Step(fld.name, fetch=True))
            path.append(fld.name)
            opts = fld.related_model._meta  # type: ignore[union-attr]
            i += 1
            continue
        rest = parts[i + 1 :]
        if not rest or (len(rest) == 1 and rest[0] in PY_LOOKUPS):
            steps.append(Step(fld.attname, fetch=False))  # type: ignore[union-attr]
            return local_lookup(key, steps, fld, rest[0] if rest else "exact", value, None, model)
        break
    # A transform, an unknown lookup, or an expression: the database decides.
    validate_db_lookup(model, key)
    return _DbLookup(key, value, joins=bool(path))


def _forward_field(model: type[models.Model], path: list[str]) -> Any:
    opts = model._meta
    fld: Any = None
    for name in path:
        fld = opts.get_field(name)
        opts = fld.related_model._meta
    return fld


def local_lookup(
    key: str,
    steps: list[Step],
    fld: Any,
    lookup: str,
    value: Any,
    related_model: Any,
    model: type[models.Model] | None = None,
) -> LocalLookup | FieldLookup | _DbLookup:
    """A lookup on the object's own row (or a forward relation): checked in Python, or by the
    database when the value is an expression Python does not know, or a queryset."""
    if isinstance(value, Combinable) and model is not None and lookup in FIELD_LOOKUPS:
        rhs = field_expression(model, value)
        text = isinstance(fld, (models.CharField, models.TextField))
        if rhs is not None and not (text and lookup != "exact"):
            return FieldLookup(key, steps, fld, lookup, value, rhs)
    if isinstance(value, (Combinable, models.QuerySet)):
        return _DbLookup(key, value, joins=any(step.fetch for step in steps))
    compiled = LocalLookup(
        key=key,
        steps=steps,
        field=fld,
        lookup=lookup,
        value=value,
        related_model=related_model,
        target_attname=fld.attname if related_model is not None else None,
        dynamic=contains_ref(value),
        collated=lookup in RANGE_LOOKUP_CLASSES
        and isinstance(fld, (models.CharField, models.TextField)),
    )
    if not compiled.dynamic:
        if value is None:
            if lookup not in ("exact", "iexact"):
                raise ValueError(f"where({key}=None): None only works with exact or iexact")
            compiled.value = None
        elif lookup in ("in", "range"):
            normalized = compiled.normalize(value)
            if normalized is NOTHING:
                normalized = frozenset() if lookup == "in" else NOTHING
            compiled.value = normalized
        elif lookup == "isnull":
            compiled.value = bool(value)
        else:
            compiled.value = compiled.normalize(value)
    return compiled


def reroot(value: Any, path: str, key: str = "") -> Any:
    """``value`` with every ``F()`` path inside it prefixed by ``path`` (``F("budget")`` becomes
    ``F("repository__budget")``); placeholders, constants and querysets stay as they are."""
    if type(value) is F:
        return F(f"{path}__{cast(Any, value).name}")
    if isinstance(value, Subquery):
        raise TypeError(
            f"where({key}=...): a subquery's outer references cannot be re-rooted through "
            f"{path!r}; write the rule for this model"
        )
    if isinstance(value, F):  # OuterRef and other kinds of reference
        raise TypeError(f"where({key}={value!r}) cannot be re-rooted through {path!r}")
    sources = getattr(value, "get_source_expressions", None)
    if isinstance(value, Combinable) and sources is not None and sources():
        clone = cast(Any, value).copy()
        clone.set_source_expressions(
            [None if s is None else reroot(s, path, key) for s in sources()]
        )
        return clone
    return value


_FIELD_CONNECTORS = frozenset({"+", "-", "*"})


def _bound_inside(value: Any) -> Any:
    """The placeholder or model instance inside the database expression ``value`` (``F("x") +
    CTX.level``, ``Value(ACTOR)``), or None. Such a value would reach the database as it is."""
    if is_placeholder(value) or not hasattr(type(value), "resolve_expression"):
        return None
    stack = [value]
    while stack:
        node = stack.pop()
        if is_placeholder(node):
            return node
        if isinstance(node, Value):
            if contains_ref(node.value) or isinstance(node.value, models.Model):
                return node.value
            continue
        if hasattr(type(node), "get_source_expressions"):
            stack.extend(s for s in node.get_source_expressions() if s is not None)
    return None


def field_expression(model: type[models.Model], expr: Any) -> Any:
    """``F()`` (and ``+``, ``-``, ``*`` on it, with constants) as Python can evaluate it on an
    object of ``model``, or None when only the database can (a division, a function, a path
    across a to-many relation)."""
    if type(expr) is F:
        return field_path(model, cast(Any, expr).name)
    if type(expr) is Value:
        # where() refuses a placeholder or a row inside a Value(): a constant is all it holds.
        return FieldConstant(expr.value)
    if isinstance(expr, CombinedExpression) and expr.connector in _FIELD_CONNECTORS:
        left = field_expression(model, expr.lhs)
        right = field_expression(model, expr.rhs)
        if left is None or right is None:
            return None
        return FieldArithmetic(expr.connector, left, right)
    return None


def field_path(model: type[models.Model], path: str) -> FieldPath | None:
    """``F(path)`` on ``model`` as steps through forward relations, or None when it is not one
    (a to-many relation, a transform, an unknown name)."""
    opts = model._meta
    steps: list[Step] = []
    parts = path.split("__")
    for i, name in enumerate(parts):
        if name == "pk":
            name = cast("models.Field[Any, Any]", opts.pk).name
        try:
            fld: Any = opts.get_field(name)
        except FieldDoesNotExist:
            return None
        last = i == len(parts) - 1
        if not fld.concrete or fld.many_to_many:
            return None
        if fld.is_relation:
            if last:
                steps.append(Step(fld.attname, fetch=False))
                return FieldPath(path, steps, fld.target_field)
            steps.append(Step(fld.name, fetch=True))
            opts = fld.related_model._meta
            continue
        if not last:
            return None
        steps.append(Step(fld.attname, fetch=False))
        return FieldPath(path, steps, fld)
    return None


def where(**lookups: Any) -> Where:
    """A rule written as Django ORM lookups, e.g. ``where(tenant__memberships__user=ACTOR)``.

    Values may be literals or placeholders (``ACTOR``, ``ACTOR.<attr>``, ``CTX.<name>``). A
    placeholder that resolves to None matches nothing (an anonymous actor owns no invoice); a
    literal None means ``IS NULL``. Lookups that cross the same to-many relation in one
    ``where()`` must hold for the same related row, as in one ``filter()`` call.

    Placeholders combine with constants through ``+ - * /`` (``CTX.now - timedelta(days=30)``,
    ``ACTOR.limit * 2``); an operand that is None matches nothing. ``F("relation__field")``
    (with ``+ - *``) compares with another field of the object or its forward relations, where
    a NULL on either side never matches; such an expression holds fields and constants, never
    a placeholder (``F("x") + CTX.level`` raises ``TypeError``). :meth:`Rule.through
    <clearance.rules.Rule.through>` uses the rule on a related model.
    """
    return Where(**lookups)
