"""Model invariants as database ``CHECK`` constraints, so that even raw SQL cannot break them.

A model invariant fits a ``CheckConstraint`` when it is made only of ``where()`` lookups on the
model's own columns, with literal values or ``F()`` references to other columns: no
placeholders (``ACTOR``, ``CTX``), no Python predicates, no relations to other tables, and it
is checked on ``save``. :func:`constraints_for` lists those constraints for a model;
:func:`invariant_constraint` builds one for ``Meta.constraints``, where the model class does
not exist yet::

    POSITIVE_WHEN_PAID = ~where(state="paid") | where(amount__gt=0)

    class Invoice(models.Model):
        ...
        class Meta:
            constraints = [invariant_constraint("paid_is_final", POSITIVE_WHEN_PAID)]

    # authz.py
    model_invariant(Invoice, "paid_is_final", POSITIVE_WHEN_PAID, reason="...")

The database treats a condition that is unknown (a NULL compared) as passing, as SQL does; the
guards in Python treat it as failing, so on nullable columns the guards are the stricter of
the two.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.exceptions import FieldError
from django.db import models
from django.db.models import Q
from django.db.models.expressions import Combinable, Subquery

from .actions import ModelInvariant, invariants_on, registry
from .rules import All, Any_, Not, Ref, Rule, Where, contains_ref

__all__ = [
    "constraint_condition",
    "constraint_name",
    "constraints_for",
    "enforced_by_constraints",
    "invariant_constraint",
    "missing_constraints",
]

#: PostgreSQL's limit on identifiers; longer constraint names are shortened with a hash.
MAX_NAME_LENGTH = 63


def constraint_condition(rule: Rule) -> Q | None:
    """The rule as a ``Q`` that needs no model and no actor, or None when it has no such form."""
    if isinstance(rule, Where):
        for value in rule.lookups.values():
            if isinstance(value, Ref) or contains_ref(value) or isinstance(value, models.QuerySet):
                return None
            if isinstance(value, Combinable) and _reads_other_tables(value):
                return None
        return Q(**rule.lookups)
    if isinstance(rule, Not):
        inner = constraint_condition(rule.rule)
        return None if inner is None else ~inner
    if isinstance(rule, (All, Any_)):
        parts = [constraint_condition(r) for r in rule.rules]
        if any(p is None for p in parts):
            return None
        combined = parts[0]
        assert combined is not None
        for part in parts[1:]:
            assert part is not None
            combined = combined & part if isinstance(rule, All) else combined | part
        return combined
    return None


def _reads_other_tables(expression: Any) -> bool:
    flatten = getattr(expression, "flatten", None)
    nodes = list(flatten()) if callable(flatten) else [expression]
    return any(isinstance(node, (Subquery, models.QuerySet)) for node in nodes)


def constraint_name(model_name: str, invariant: str) -> str:
    """``clearance_<model>_<invariant>``, shortened with a hash beyond 63 characters."""
    name = f"clearance_{model_name.lower()}_{invariant}"
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME_LENGTH - 9]}_{digest}"


def invariant_constraint(
    name: str,
    rule: Rule,
    *,
    reason: str | None = None,
    constraint_name: str | None = None,
) -> models.CheckConstraint:
    """A ``CheckConstraint`` for the model invariant ``name``, for use in ``Meta.constraints``.

    Named ``clearance_<model>_<name>`` (through Django's ``%(class)s``); ``reason`` becomes the
    message model validation shows. Raises ``ValueError`` for a rule that has no SQL form.
    """
    condition = constraint_condition(rule)
    if condition is None:
        raise ValueError(
            f"The invariant {name!r} ({rule}) cannot be a database constraint: only where() "
            "lookups with literal values or F() on the model's own columns can"
        )
    return models.CheckConstraint(
        condition=condition,
        name=constraint_name or f"clearance_%(class)s_{name}",
        violation_error_code=f"invariant.{name}",
        **({"violation_error_message": reason} if reason else {}),
    )


def _single_table(model: type[models.Model], condition: Q) -> bool:
    try:
        query = model._base_manager.filter(condition).query
    except (FieldError, ValueError, TypeError):
        return False
    # A lookup such as fk__isnull=False names the related table but reads only the foreign
    # key column: Django keeps the join in alias_map, unused (a reference count of 0).
    return sum(1 for alias in query.alias_map if query.alias_refcount.get(alias)) == 1


def expected_constraint(
    model: type[models.Model], invariant: ModelInvariant
) -> models.CheckConstraint | None:
    """The ``CheckConstraint`` that would enforce ``invariant`` on ``model``, or None."""
    if "save" not in invariant.on:
        return None
    condition = constraint_condition(invariant.rule)
    if condition is None or not _single_table(model, condition):
        return None
    return models.CheckConstraint(
        condition=condition,
        name=constraint_name(model._meta.model_name or model.__name__, invariant.name),
        violation_error_code=f"invariant.{invariant.name}",
        violation_error_message=invariant.reason,
    )


def _own_invariants(model: type[models.Model]) -> list[ModelInvariant]:
    if model._meta.proxy or model._meta.abstract:
        return []
    return list(registry.model_invariants.get(model, []))


def constraints_for(model: type[models.Model]) -> list[models.CheckConstraint]:
    """The ``CheckConstraint`` of every model invariant of ``model`` that fits one.

    Only invariants declared on ``model`` itself (a concrete model), checked on save, made of
    ``where()`` lookups on its own table with no placeholders. Each is named
    ``clearance_<model>_<invariant>`` and carries the invariant's reason as its message.
    """
    found = []
    for invariant in _own_invariants(model):
        constraint = expected_constraint(model, invariant)
        if constraint is not None:
            found.append(constraint)
    return found


def constraint_matches(constraint: Any, expected: models.CheckConstraint) -> bool:
    """Whether ``constraint`` is ``expected`` (same name or same condition)."""
    return isinstance(constraint, models.CheckConstraint) and (
        constraint.name == expected.name or constraint.condition == expected.condition
    )


def enforced_by_constraints(model: type[models.Model]) -> set[str]:
    """Names of the save invariants of ``model`` (inherited ones included) that a matching
    ``CheckConstraint`` in its concrete model's ``Meta.constraints`` enforces."""
    concrete = model._meta.concrete_model or model
    present = list(concrete._meta.constraints)
    names = set()
    for invariant in invariants_on(model, "save"):
        expected = expected_constraint(concrete, invariant)
        if expected is not None and any(constraint_matches(c, expected) for c in present):
            names.add(invariant.name)
    return names


def missing_constraints(model: type[models.Model]) -> list[ModelInvariant]:
    """Invariants of ``model`` that fit a ``CheckConstraint`` and have none in its Meta.

    A constraint matches when it has the expected name or the same condition.
    """
    present = list(model._meta.constraints)
    missing = []
    for invariant in _own_invariants(model):
        expected = expected_constraint(model, invariant)
        if expected is not None and not any(constraint_matches(c, expected) for c in present):
            missing.append(invariant)
    return missing
