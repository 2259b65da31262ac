"""Actions, their named rules, the registry that holds them, and autodiscovery of ``authz.py``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, cast

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models

from .decisions import Layer, UnknownAction
from .origin import declared_at
from .rules import Predicate, Rule, predicate
from .scopes import fingerprint_lines as scope_fingerprint_lines
from .scopes import scope_registry, validate_scope_paths

__all__ = [
    "ANYONE",
    "Action",
    "ModelInvariant",
    "NamedRule",
    "PendingRule",
    "Registry",
    "abstract_bases",
    "attach",
    "autodiscover",
    "invariant_hooks",
    "invariants_on",
    "model_invariant",
    "registry",
]


class _Anyone:
    """Marker for an action that any actor may attempt, anonymous ones included."""

    _instance: _Anyone | None = None

    def __new__(cls) -> _Anyone:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANYONE"

    def __reduce__(self) -> str:
        return "ANYONE"


#: Gate 1 for an action anyone may attempt (stated explicitly; there is no default).
ANYONE = _Anyone()

_ACTION_NAME = re.compile(r"^[A-Za-z_][\w]*\.[\w][\w.\-]*$")
_PERMISSION = re.compile(r"^[A-Za-z_][\w]*\.[\w][\w\-]*$")


@dataclass(frozen=True)
class NamedRule:
    """A rule attached to an action or a model, under a name, with a reason for people."""

    name: str
    rule: Rule
    reason: str
    layer: Layer
    declared_at: str = "<unknown>"

    # Both are read for every decision (the trace, the denial's code): computed once.
    @cached_property
    def code(self) -> str:
        """``"<layer>.<name>"``, the code a denial by this rule carries."""
        return f"{self.layer.value}.{self.name}"

    @cached_property
    def expression(self) -> str:
        """The rule's readable text, e.g. ``~where(owner=ACTOR)``."""
        return str(self.rule)


@dataclass(frozen=True)
class ModelInvariant(NamedRule):
    """A rule every instance of a model must satisfy whenever it is written."""

    model: type[models.Model] | None = None
    on: frozenset[str] = frozenset({"save", "delete"})


def coerce_rule(rule: Any, uses_object: bool = True) -> Rule:
    """``rule`` as a :class:`~clearance.rules.Rule` (a plain function becomes a predicate)."""
    if isinstance(rule, Rule):
        return rule
    if callable(rule):
        return cast(Rule, predicate(rule, uses_object=uses_object))
    raise TypeError(f"expected a rule (where(...), a predicate or a function of ctx), got {rule!r}")


def default_reason(fn: Any, layer: Layer, name: str) -> str:
    """The reason a rule gives when none is declared: its function's docstring, or one built
    from the layer and the rule's name."""
    # A function's (or predicate's) own docstring, never the docstring of a rule class.
    own = isinstance(fn, Rule) and "__doc__" not in getattr(fn, "__dict__", {})
    doc = "" if own else (getattr(fn, "__doc__", None) or "").strip()
    if doc:
        return doc.splitlines()[0].strip()
    return f"The {layer.value} rule {name!r} does not allow this."


class Action:
    """Something an actor may do, protected by three gates.

    ``name`` is ``"<app_label>.<verb>"`` and unique. ``permission`` is exactly one Django
    permission (``"app_label.codename"``) or :data:`ANYONE`, stated explicitly. ``model`` is the
    model the action acts on (None for an action about no object). ``permission_model`` states
    that the permission belongs to another model than ``model`` (the system checks otherwise
    report a permission of another model as a mistake).

    ``scope`` says that the permission may also be held within a scope (see
    :class:`~clearance.Scope`): the path of foreign keys from ``model`` to the scope object
    (``"organization"``, ``"repository__organization"``), ``"pk"`` when the object is itself
    the scope object, or a tuple of such paths (gate 1 holds through any of them). Gate 1 then
    holds when the actor holds the permission globally, or through a membership of the
    object's scope object; without an object, through a membership of some scope object.
    """

    def __init__(
        self,
        name: str,
        *,
        permission: str | _Anyone | None = None,
        model: type[models.Model] | str | None = None,
        label: str = "",
        description: str = "",
        register: bool = True,
        permission_model: type[models.Model] | str | None = None,
        scope: str | tuple[str, ...] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _ACTION_NAME.match(name):
            raise ImproperlyConfigured(
                f"Action name {name!r} must look like '<app_label>.<verb>', e.g. 'invoices.approve'"
            )
        if permission is None:
            raise ImproperlyConfigured(
                f"Action {name!r} must name its permission: permission='app_label.codename', "
                "or permission=clearance.ANYONE for an action anyone may attempt"
            )
        if permission is not ANYONE and (
            not isinstance(permission, str) or not _PERMISSION.match(permission)
        ):
            raise ImproperlyConfigured(
                f"Action {name!r}: permission must be one Django permission "
                f"('app_label.codename') or clearance.ANYONE, got {permission!r}"
            )
        if (
            model is not None
            and not isinstance(model, str)
            and not (isinstance(model, type) and issubclass(model, models.Model))
        ):
            raise ImproperlyConfigured(
                f"Action {name!r}: model must be a Django model, got {model!r}"
            )
        scope_paths: tuple[str, ...] = ()
        if scope is not None:
            if permission is ANYONE:
                raise ImproperlyConfigured(
                    f"Action {name!r}: permission=ANYONE holds for everyone, so scope= would "
                    "change nothing; name the permission that is held within the scope"
                )
            scope_paths = validate_scope_paths(name, scope)
        self.name = name
        #: The paths from an object to its scope objects (empty: gate 1 is global only).
        self.scope: tuple[str, ...] = scope_paths
        self.permission = permission
        self._model = model
        self._permission_model = permission_model
        self.label = label or name
        self.description = description
        self.policies: list[NamedRule] = []
        self.invariants: list[NamedRule] = []
        self.declared_at = declared_at()
        self.registry: Registry | None = None
        if register:
            registry.register(self)

    # -- declaration ----------------------------------------------------------------------

    @property
    def model(self) -> type[models.Model] | None:
        """The model this action acts on (resolved lazily from a ``"app_label.Model"`` string)."""
        if isinstance(self._model, str):
            self._model = apps.get_model(self._model)
        return self._model

    @property
    def permission_model(self) -> type[models.Model] | None:
        """The model the permission was stated to belong to, when it is not :attr:`model`."""
        if isinstance(self._permission_model, str):
            self._permission_model = apps.get_model(self._permission_model)
        return self._permission_model

    @property
    def app_label(self) -> str:
        """The part of the name before the dot."""
        return self.name.split(".", 1)[0]

    def policy(
        self,
        name: str | Callable[..., Any] | None = None,
        rule: Rule | Callable[..., Any] | None = None,
        *,
        reason: str | None = None,
        uses_object: bool = True,
    ) -> Any:
        """Add a gate-2 rule: ``action.policy("name", rule, reason=...)`` or as a decorator."""
        return self._attach(Layer.POLICY, self.policies, name, rule, reason, uses_object)

    def invariant(
        self,
        name: str | Callable[..., Any] | None = None,
        rule: Rule | Callable[..., Any] | None = None,
        *,
        reason: str | None = None,
        uses_object: bool = True,
    ) -> Any:
        """Add a gate-3 rule: ``action.invariant("name", rule, reason=...)`` or as a decorator."""
        return self._attach(Layer.INVARIANT, self.invariants, name, rule, reason, uses_object)

    def _attach(
        self,
        layer: Layer,
        target: list[NamedRule],
        name: Any,
        rule: Any,
        reason: str | None,
        uses_object: bool,
    ) -> Any:
        if callable(name) and not isinstance(name, str):
            # Bare decorator: @action.policy
            fn = name
            pred = fn if isinstance(fn, Predicate) else predicate(fn, uses_object=uses_object)
            self._add(
                layer,
                target,
                _rule_name(fn),
                pred,
                reason or default_reason(fn, layer, _rule_name(fn)),
            )
            return pred
        if rule is None:
            # Called decorator: @action.policy(reason=...) or @action.policy("name", reason=...)
            def decorator(fn: Callable[..., Any]) -> Any:
                pred = fn if isinstance(fn, Predicate) else predicate(fn, uses_object=uses_object)
                rule_name = name or _rule_name(fn)
                self._add(
                    layer, target, rule_name, pred, reason or default_reason(fn, layer, rule_name)
                )
                return pred

            return decorator
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.name}: a rule needs a name, got {name!r}")
        coerced = coerce_rule(rule, uses_object)
        self._add(layer, target, name, coerced, reason or default_reason(rule, layer, name))
        return self

    def _add(
        self, layer: Layer, target: list[NamedRule], name: str, rule: Rule, reason: str
    ) -> None:
        if not re.match(r"^[\w][\w\-.]*$", name):
            raise ImproperlyConfigured(
                f"{self.name}: rule name {name!r} must be a plain identifier"
            )
        target.append(NamedRule(name, rule, reason, layer, declared_at()))
        if self.registry is not None:
            self.registry.changed()
        else:
            rule_changes.count += 1

    # -- introspection --------------------------------------------------------------------

    @property
    def rules(self) -> list[NamedRule]:
        """Policies then invariants, in the order they are evaluated."""
        return [*self.policies, *self.invariants]

    @property
    def permission_label(self) -> str:
        """The permission string, or ``"ANYONE"``."""
        return "ANYONE" if self.permission is ANYONE else cast(str, self.permission)

    def model_invariants(self) -> list[ModelInvariant]:
        """The model invariants in force for this action's model."""
        model = self.model
        reg = self.registry or registry
        return reg.invariants_for(model) if model is not None else []

    def fingerprint(self) -> str:
        """A stable hash of the rule set in force for this action (names, kinds, rule text)."""
        reg = self.registry or registry
        return reg.fingerprint(self)

    def __repr__(self) -> str:
        return f"<Action {self.name}>"

    def __str__(self) -> str:
        return self.name


def _rule_name(fn: Any) -> str:
    return cast(str, getattr(fn, "name", None) or getattr(fn, "__name__", None) or repr(fn))


class RuleChanges:
    """A counter of every change to any action's rules, in any registry (the engine rebuilds
    what it compiled from the rules when it moves)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


#: The process-wide :class:`RuleChanges` counter.
rule_changes = RuleChanges()


class Registry:
    """Every declared action and model invariant, enumerable for tooling."""

    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}
        self._invariants: dict[type[models.Model], list[ModelInvariant]] = {}
        self.version = 0
        self._fingerprints: dict[str, tuple[int, str]] = {}
        self._pending: list[PendingRule] = []

    # -- actions --------------------------------------------------------------------------

    def register(self, action: Action) -> None:
        """Add an action; a second action with the same name is a configuration error."""
        existing = self._actions.get(action.name)
        if existing is not None and existing is not action:
            raise ImproperlyConfigured(
                f"Action {action.name!r} is declared twice: at {existing.declared_at} and at "
                f"{action.declared_at}"
            )
        self._actions[action.name] = action
        action.registry = self
        self.changed()
        waiting = [p for p in self._pending if p.action == action.name]
        if waiting:
            self._pending = [p for p in self._pending if p.action != action.name]
            for pending in waiting:
                pending.apply(action)

    def unregister(self, name: str) -> Action:
        """Remove an action (for tests); returns it."""
        action = self._actions.pop(name)
        self.changed()
        return action

    def get(self, name: str | Action) -> Action:
        """The action called ``name``, or :class:`UnknownAction`."""
        if isinstance(name, Action):
            return name
        try:
            return self._actions[name]
        except (KeyError, TypeError):
            raise UnknownAction(name, list(self._actions)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[Action]:
        return iter(sorted(self._actions.values(), key=lambda a: a.name))

    def __len__(self) -> int:
        return len(self._actions)

    @property
    def actions(self) -> list[Action]:
        """Every declared action, sorted by name."""
        return list(self)

    def actions_for(self, model: type[models.Model]) -> list[Action]:
        """Actions whose model is ``model`` (or its concrete model)."""
        concrete = model._meta.concrete_model
        return [a for a in self if a.model is not None and a.model._meta.concrete_model is concrete]

    # -- model invariants -----------------------------------------------------------------

    def add_invariant(self, invariant: ModelInvariant) -> None:
        """Attach a model invariant."""
        assert invariant.model is not None
        self._invariants.setdefault(invariant.model, []).append(invariant)
        self.changed()
        if self is registry and apps.models_ready:
            # Guard the model's save() and delete() now (declared after startup, e.g. in a test).
            for hook in invariant_hooks:
                hook()

    def invariants_for(self, model: type[models.Model]) -> list[ModelInvariant]:
        """Invariants in force for ``model``: its own, its concrete model's, its parents' and
        those of the abstract models it inherits from."""
        found: list[ModelInvariant] = []
        seen: set[type[models.Model]] = set()
        lineage = (model, model._meta.concrete_model, *model._meta.get_parent_list())
        for klass in (*lineage, *abstract_bases(model)):
            if klass is None or klass in seen:
                continue
            seen.add(klass)
            found.extend(self._invariants.get(klass, ()))
        return found

    @property
    def model_invariants(self) -> dict[type[models.Model], list[ModelInvariant]]:
        """Every model invariant, by model."""
        return {model: list(rules) for model, rules in self._invariants.items()}

    # -- bookkeeping ----------------------------------------------------------------------

    def changed(self) -> None:
        """Note a change of the rule set (fingerprints are recomputed)."""
        self.version += 1
        rule_changes.count += 1

    def fingerprint(self, action: Action) -> str:
        """A stable hash of the rules in force for ``action``."""
        cached = self._fingerprints.get(action.name)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        model = action.model
        lines = [
            f"action {action.name}",
            f"model {model._meta.label if model is not None else '-'}",
            f"permission {action.permission_label}",
        ]
        if action.scope:  # only then: the fingerprints of unscoped actions stay as they were
            lines += scope_fingerprint_lines(action)
        lines += [f"{r.layer.value} {r.name} {r.rule}" for r in action.rules]
        lines += [
            f"model_invariant {r.name} {','.join(sorted(r.on))} {r.rule}"
            for r in action.model_invariants()
        ]
        digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
        self._fingerprints[action.name] = (self.version, digest)
        return digest

    def snapshot(self) -> tuple[Any, ...]:
        """Capture the registry's state (restore it with :meth:`restore`)."""
        return (
            dict(self._actions),
            {a.name: (list(a.policies), list(a.invariants)) for a in self._actions.values()},
            {m: list(r) for m, r in self._invariants.items()},
            list(self._pending),
            scope_registry.snapshot(),
        )

    def restore(self, state: tuple[Any, ...]) -> None:
        """Put back a state captured with :meth:`snapshot`."""
        actions, rules, invariants, *rest = state
        self._pending = list(rest[0]) if rest else []
        if len(rest) > 1:
            scope_registry.restore(rest[1])
        self._actions = dict(actions)
        for name, (policies, invs) in rules.items():
            self._actions[name].policies[:] = policies
            self._actions[name].invariants[:] = invs
        self._invariants = {m: list(r) for m, r in invariants.items()}
        self.changed()

    # -- rules attached by action name -----------------------------------------------------

    def defer(self, pending: PendingRule) -> None:
        """Attach ``pending`` to its action now, or as soon as the action is declared."""
        if pending.action in self._actions:
            pending.apply(self._actions[pending.action])
        else:
            self._pending.append(pending)

    @property
    def pending(self) -> list[PendingRule]:
        """Rules attached by name to an action nobody has declared (yet)."""
        return list(self._pending)


#: The process-wide registry that ``authz.py`` modules fill.
registry = Registry()
# A scope declared or removed changes what gate 1 means for the actions within it.
scope_registry.listeners.append(registry.changed)

#: Called after a model invariant is added to :data:`registry` once the models are ready:
#: :mod:`clearance.invariants` installs its write guards here (it imports this module, never
#: the other way round).
invariant_hooks: list[Callable[[], None]] = []

_by_event: dict[tuple[type[models.Model], str], tuple[int, tuple[ModelInvariant, ...]]] = {}


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


@dataclass(frozen=True)
class PendingRule:
    """A rule attached to an action by name, waiting for the action to be declared."""

    action: str
    layer: Layer
    name: str
    rule: Rule
    reason: str | None
    declared_at: str = "<unknown>"

    def apply(self, action: Action) -> None:
        """Add the rule to ``action``, keeping where it was declared."""
        target = action.policies if self.layer is Layer.POLICY else action.invariants
        action._attach(self.layer, target, self.name, self.rule, self.reason, True)
        target[-1] = replace(target[-1], declared_at=self.declared_at)


class _Attachment:
    """The rules :func:`attach` adds to one action, by name."""

    def __init__(self, action: str, registry: Registry) -> None:
        self.action = action
        self._registry = registry

    def policy(
        self, name: str, rule: Rule | Callable[..., Any], *, reason: str | None = None
    ) -> _Attachment:
        """Add a gate-2 rule to the action, now or when it is declared."""
        return self._defer(Layer.POLICY, name, rule, reason)

    def invariant(
        self, name: str, rule: Rule | Callable[..., Any], *, reason: str | None = None
    ) -> _Attachment:
        """Add a gate-3 rule to the action, now or when it is declared."""
        return self._defer(Layer.INVARIANT, name, rule, reason)

    def _defer(
        self, layer: Layer, name: str, rule: Rule | Callable[..., Any], reason: str | None
    ) -> _Attachment:
        if not isinstance(name, str) or not re.match(r"^[\w][\w\-.]*$", name):
            raise ImproperlyConfigured(
                f"{self.action}: rule name {name!r} must be a plain identifier"
            )
        coerced = coerce_rule(rule)
        self._registry.defer(
            PendingRule(
                self.action,
                layer,
                name,
                coerced,
                reason or default_reason(rule, layer, name),
                declared_at(),
            )
        )
        return self


def attach(action: str) -> _Attachment:
    """Add rules to an action by its name, from another app's ``authz`` module.

    The app that declares an action owns it; another app can still refine it, without importing
    the declaring module (and so whichever ``authz`` module is imported first): the rule waits
    until the action is declared. ``.policy()`` and ``.invariant()`` take the arguments of
    :meth:`Action.policy` and :meth:`Action.invariant` and chain.

    ```python
    # billing/authz.py
    from clearance import attach, where

    attach("invoices.approve").policy(
        "not_frozen", ~where(tenant__frozen=True), reason="Frozen tenants approve nothing."
    )
    ```

    A rule attached to an action that is never declared is reported by the system checks
    (``clearance.E005``); it is never silently dropped. ``action`` must look like
    ``"app_label.verb"`` (``ImproperlyConfigured`` otherwise).
    """
    if not isinstance(action, str) or not _ACTION_NAME.match(action):
        raise ImproperlyConfigured(
            f"attach({action!r}): expected an action name like 'invoices.approve'"
        )
    return _Attachment(action, registry)


def abstract_bases(model: type[models.Model]) -> tuple[type[models.Model], ...]:
    """The abstract models ``model`` inherits from (their invariants bind it, as their
    ``Meta.constraints`` do)."""
    return tuple(
        klass
        for klass in model.__mro__[1:]
        if isinstance(klass, type)
        and issubclass(klass, models.Model)
        and klass is not models.Model
        and klass._meta.abstract
    )


def model_invariant(
    model: type[models.Model],
    name: str,
    rule: Rule | Callable[..., Any],
    *,
    reason: str | None = None,
    on: tuple[str, ...] | list[str] | frozenset[str] = ("save", "delete"),
) -> ModelInvariant:
    """Declare a rule every instance of ``model`` must satisfy, whatever the write path.

    Checked on ``save()`` (the new state) and ``delete()``, for superusers and the shell too,
    and after guarded bulk writes. An invariant of an abstract model binds every concrete
    model that inherits from it; a swapped model (``AUTH_USER_MODEL`` and the like) has no
    rows, so declaring one on it is refused.
    """
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise ImproperlyConfigured(f"model_invariant(): expected a model class, got {model!r}")
    if model._meta.swapped:
        raise ImproperlyConfigured(
            f"model_invariant({model._meta.label}, {name!r}): {model._meta.label} is swapped for "
            f"{model._meta.swapped}, so it has no rows to hold the invariant. Declare it on "
            f"{model._meta.swapped} (e.g. get_user_model()), or on an abstract model it inherits."
        )
    events = frozenset(on)
    unknown = events - {"save", "delete"}
    if unknown or not events:
        raise ImproperlyConfigured(
            f"model_invariant({model._meta.label}, {name!r}): on= takes 'save' and/or 'delete', "
            f"got {sorted(on)!r}"
        )
    invariant = ModelInvariant(
        name=name,
        rule=coerce_rule(rule),
        reason=reason or default_reason(rule, Layer.INVARIANT, name),
        layer=Layer.INVARIANT,
        declared_at=declared_at(),
        model=model,
        on=events,
    )
    registry.add_invariant(invariant)
    return invariant


def autodiscover() -> None:
    """Import every installed app's ``authz`` module, as the admin does with ``admin.py``."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("authz")
