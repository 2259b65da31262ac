"""System checks for model invariants and the write paths that could skip them.

* ``clearance.E010``: a model invariant is declared on a swapped model (it has no rows).
* ``clearance.W010``: a model invariant is declared on an abstract model no installed model
  inherits from (it binds nothing).
* ``clearance.W011``: a model with invariants (or whose rows other invariants read) writes
  through a manager that is not a :class:`~clearance.GuardedQuerySet`: queryset ``update()``,
  ``bulk_create()``, ``bulk_update()`` and the related managers Django runs through
  ``_base_manager`` (reverse foreign key ``add()``, ``remove()``, ``set()``) are not verified.
  Django offers no hook on those writes.
* ``clearance.W012``: a model invariant reads who is asking (``ACTOR``, ``ctx.actor``,
  ``ctx.request``): an invariant holds whoever asks, so such a rule is a policy in disguise.

Every id is documented in ``docs/reference/checks.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.core import checks
from django.db import models

from .actions import ModelInvariant
from .checks import TAG, concrete_subclasses, selected_invariants
from .rules import Expr, Predicate, Ref, Where

__all__ = [
    "check_invariant_models",
    "check_invariants_read_the_actor",
    "check_unguarded_managers",
]


@checks.register(TAG)
def check_invariant_models(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E010: an invariant of a swapped model. W010: of an abstract model nothing inherits."""
    messages: list[checks.CheckMessage] = []
    for model, invariants in selected_invariants(app_configs):
        names = ", ".join(repr(inv.name) for inv in invariants)
        label = model._meta.label
        if model._meta.swapped:
            messages.append(
                checks.Error(
                    f"The model invariants {names} are declared on {label}, which is swapped for "
                    f"{model._meta.swapped}: they are enforced on no row.",
                    hint=f"Declare them on {model._meta.swapped}.",
                    obj=model,
                    id="clearance.E010",
                )
            )
        elif model._meta.abstract and not concrete_subclasses(model):
            messages.append(
                checks.Warning(
                    f"The model invariants {names} are declared on the abstract model {label}, "
                    "and no installed model inherits from it: they bind nothing.",
                    hint="Declare them on the concrete model, or install the app that has it.",
                    obj=model,
                    id="clearance.W010",
                )
            )
    return messages


# --------------------------------------------------------------------------------------------
# Managers that write without the guards: clearance.W011
# --------------------------------------------------------------------------------------------


def _guarded(manager: Any) -> bool:
    from .invariants import GuardedQuerySet

    try:
        return isinstance(manager.get_queryset(), GuardedQuerySet)
    except Exception:
        return False


def _uncovered(model: type[models.Model]) -> list[str]:
    """Save invariants of ``model`` that no ``CHECK`` constraint in its Meta enforces."""
    from .constraints import enforced_by_constraints
    from .invariants import invariants_on

    enforced = enforced_by_constraints(model)
    return [inv.name for inv in invariants_on(model, "save") if inv.name not in enforced]


@checks.register(TAG)
def check_unguarded_managers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W011: writes through a manager that is not guarded skip the invariants."""
    from .verification import dependents_of

    labels = {config.label for config in app_configs} if app_configs is not None else None
    messages: list[checks.CheckMessage] = []
    for model in apps.get_models():
        if model._meta.proxy or (labels is not None and model._meta.app_label not in labels):
            continue
        own = _uncovered(model)
        readers = sorted({dep.model._meta.label for dep in dependents_of(model)})
        if not own and not readers:
            continue
        unguarded = [
            name
            for name, manager in (
                ("_default_manager", model._default_manager),
                ("_base_manager", model._base_manager),
            )
            if not _guarded(manager)
        ]
        if not unguarded:
            continue
        label = model._meta.label
        what = (
            f"has the model invariants {', '.join(repr(n) for n in own)}"
            if own
            else f"has rows that the invariants of {', '.join(readers)} read"
        )
        messages.append(
            checks.Warning(
                f"{label} {what}, but its {' and '.join(unguarded)} "
                f"{'is' if len(unguarded) == 1 else 'are'} not a GuardedQuerySet: queryset "
                "update(), bulk_create() and bulk_update(), and the related managers Django runs "
                "through _base_manager (reverse foreign key add(), remove(), set()), write "
                "without checking them.",
                hint=(
                    "Give the model objects = GuardedQuerySet.as_manager() and Meta."
                    'base_manager_name = "objects", or enforce the invariants with '
                    "invariant_constraint() where they fit a CHECK constraint."
                ),
                obj=model,
                id="clearance.W011",
            )
        )
    return messages


# --------------------------------------------------------------------------------------------
# Invariants that read who is asking: clearance.W012
# --------------------------------------------------------------------------------------------

_ASKER_ATTRIBUTES = frozenset({"actor", "request"})


def _reads_the_asker(invariant: ModelInvariant) -> str | None:
    """What in the invariant reads who is asking, or None."""
    for leaf in invariant.rule.leaves():
        if isinstance(leaf, Where):
            for key, value in leaf.lookups.items():
                if _mentions_actor(value):
                    return f"where({key}=ACTOR...)"
        elif isinstance(leaf, Predicate):
            code = getattr(leaf.fn, "__code__", None)
            read = _ASKER_ATTRIBUTES & set(getattr(code, "co_names", ()))
            if read:
                return f"the predicate {leaf.name!r} reads ctx.{sorted(read)[0]}"
    return None


def _mentions_actor(value: Any) -> bool:
    if isinstance(value, Expr):
        return any(_mentions_actor(ref) for ref in value.refs())
    if isinstance(value, Ref):
        return value.root == "ACTOR" or bool(set(value.path) & _ASKER_ATTRIBUTES)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_mentions_actor(v) for v in value)
    return False


@checks.register(TAG)
def check_invariants_read_the_actor(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W012: a model invariant reads ``ACTOR``, ``ctx.actor`` or ``ctx.request``."""
    messages: list[checks.CheckMessage] = []
    for model, invariants in selected_invariants(app_configs):
        for invariant in invariants:
            read = _reads_the_asker(invariant)
            if read is None:
                continue
            messages.append(
                checks.Warning(
                    f"The model invariant {invariant.name!r} of {model._meta.label} reads who is "
                    f"asking ({read}): an invariant holds whoever writes, and a write from the "
                    "shell, a job or a bulk update has no actor, so this rule is a policy in "
                    "disguise.",
                    hint=(
                        "Make it a policy of the actions concerned (Action.policy), or rewrite it "
                        f"without the actor. (declared at {invariant.declared_at})"
                    ),
                    obj=model,
                    id="clearance.W012",
                )
            )
    return messages
