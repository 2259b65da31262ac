"""System checks for the declared rule set (``manage.py check``, ids ``clearance.E0xx/W0xx``).

Each check reads the same registry the engine enforces, so a mistake in a declaration is
reported when the project starts, not when the first user is refused (or, worse, allowed).
Every id is documented in ``docs/reference/checks.md``.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models
from django.utils.module_loading import import_string, module_has_submodule

from .actions import ANYONE, Action, ModelInvariant, NamedRule, registry
from .rules import Where, contains_ref
from .scopes import resolve_path, scope_registry

__all__ = [
    "TAG",
    "check_authz_modules",
    "check_backends",
    "check_constraints",
    "check_pending_rules",
    "check_permissions",
    "check_rules",
    "check_scopes",
    "check_settings",
    "concrete_subclasses",
    "selected_invariants",
]

#: The tag of every clearance check: ``manage.py check --tag clearance`` runs them alone.
TAG = "clearance"

#: Where the auth backend that routes ``has_perm(perm, obj)`` through the gates lives.
CLEARANCE_BACKEND = "clearance.backends.ClearanceBackend"

# Backends known to grant object permissions on their own (they answer before clearance can).
_OBJECT_BACKENDS = frozenset(
    {
        "guardian.backends.ObjectPermissionBackend",
        "rules.permissions.ObjectPermissionBackend",
        "bridgekeeper.backends.RulePermissionBackend",
    }
)

# Methods through which a backend could answer ``has_perm(perm, obj)`` with True.
_PERMISSION_METHODS = (
    "has_perm",
    "get_all_permissions",
    "get_user_permissions",
    "get_group_permissions",
    "_get_permissions",
)


def _selected(app_configs: Sequence[AppConfig] | None) -> list[Action]:
    """The actions to check: all, or those of the app labels ``manage.py check`` was given."""
    actions = registry.actions
    if app_configs is None:
        return actions
    labels = {config.label for config in app_configs}
    return [
        action
        for action in actions
        if action.app_label in labels
        or (action.model is not None and action.model._meta.app_label in labels)
    ]


def selected_invariants(
    app_configs: Sequence[AppConfig] | None,
) -> list[tuple[type[models.Model], list[ModelInvariant]]]:
    """The model invariants to check, by model: all, or those of the apps ``check`` was given."""
    items = sorted(registry.model_invariants.items(), key=lambda item: item[0]._meta.label)
    if app_configs is None:
        return items
    labels = {config.label for config in app_configs}
    return [(model, rules) for model, rules in items if model._meta.app_label in labels]


def concrete_subclasses(model: type[models.Model]) -> list[type[models.Model]]:
    """The installed concrete models that inherit from ``model`` (an abstract model)."""
    return [
        m
        for m in apps.get_models()
        if issubclass(m, model) and not m._meta.abstract and not m._meta.proxy
    ]


def _hint_close(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


# --------------------------------------------------------------------------------------------
# Permissions: clearance.E001, clearance.E002
# --------------------------------------------------------------------------------------------


def declared_permissions() -> dict[str, set[type[models.Model]]]:
    """Every permission the installed models declare, ``"app_label.codename"`` -> models.

    Default permissions (``Meta.default_permissions``) and ``Meta.permissions``, as
    ``migrate`` creates them; proxy models declare their own.
    """
    from django.contrib.auth import get_permission_codename

    declared: dict[str, set[type[models.Model]]] = {}
    for model in apps.get_models():
        opts = model._meta
        codenames = [get_permission_codename(verb, opts) for verb in opts.default_permissions]
        codenames += [codename for codename, _name in opts.permissions]
        for codename in codenames:
            declared.setdefault(f"{opts.app_label}.{codename}", set()).add(model)
    return declared


def _same_model(a: type[models.Model], b: type[models.Model]) -> bool:
    return a is b or a._meta.concrete_model is b._meta.concrete_model


@checks.register(TAG)
def check_permissions(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E001: the permission is declared by no installed model. E002: it is another model's."""
    errors: list[checks.CheckMessage] = []
    actions = _selected(app_configs)
    if not actions:
        return errors
    declared = declared_permissions()
    for action in actions:
        if action.permission is ANYONE:
            continue
        perm = action.permission_label
        owners = declared.get(perm)
        if not owners:
            errors.append(
                checks.Error(
                    f"Action {action.name!r} names the permission {perm!r}, which no installed "
                    "model declares, so gate 1 can never pass (superusers aside).",
                    hint=(
                        "Use a default permission (add/change/delete/view_<model>) or one listed "
                        "in a model's Meta.permissions, and check the app label."
                        + _hint_close(perm, declared)
                    ),
                    obj=action,
                    id="clearance.E001",
                )
            )
            continue
        expected = action.permission_model or action.model
        if expected is None:
            continue
        if not any(_same_model(owner, expected) for owner in owners):
            holders = ", ".join(sorted(owner._meta.label for owner in owners))
            if action.permission_model is not None:
                message = (
                    f"Action {action.name!r} states that its permission {perm!r} belongs to "
                    f"{expected._meta.label}, but it is declared by {holders}."
                )
                hint = "Fix permission_model= or the permission."
            else:
                message = (
                    f"Action {action.name!r} acts on {expected._meta.label} but its permission "
                    f"{perm!r} is declared by {holders}."
                )
                hint = (
                    "Use a permission of the action's model, or state the other model with "
                    f"Action(..., permission_model={sorted(owners, key=str)[0]._meta.label!r})."
                )
            errors.append(checks.Error(message, hint=hint, obj=action, id="clearance.E002"))
    return errors


# --------------------------------------------------------------------------------------------
# Rules: clearance.E003, clearance.E004, clearance.W001
# --------------------------------------------------------------------------------------------


class _Probe:
    """Stands in for a placeholder's value while a lookup path is resolved."""


def lookup_problem(model: type[models.Model], key: str, value: Any = None) -> str | None:
    """Why ``where(key=value)`` does not resolve on ``model``, or None when it does.

    The lookup is built by the ORM itself (no query is run), so field names, relations,
    transforms and lookup names are resolved exactly as ``filter()`` would.
    """
    probe = _Probe() if value is None or contains_ref(value) else value
    try:
        model._base_manager.filter(**{key: probe})
    except FieldError as exc:
        return str(exc)
    except Exception:
        # The path resolved; only the probe value was refused.
        return None
    return None


def _where_problems(named: NamedRule, model: type[models.Model]) -> list[str]:
    problems = []
    for leaf in named.rule.leaves():
        if not isinstance(leaf, Where):
            continue
        for key, value in leaf.lookups.items():
            problem = lookup_problem(model, key, value)
            if problem is not None:
                problems.append(f"where({key}=...): {problem}")
    return problems


def _where_errors(
    named: NamedRule, model: type[models.Model] | None, owner: Any, what: str
) -> list[checks.CheckMessage]:
    if model is None:
        if any(isinstance(leaf, Where) for leaf in named.rule.leaves()):
            return [
                checks.Error(
                    f"{what} uses where(), but the action acts on no model, so there is no "
                    "object to look at.",
                    hint=f"Give the action a model=, or write the rule as a predicate. "
                    f"(declared at {named.declared_at})",
                    obj=owner,
                    id="clearance.E003",
                )
            ]
        return []
    return [
        checks.Error(
            f"{what} does not resolve on {model._meta.label}: {problem}",
            hint=f"Fix the field, relation or lookup name (declared at {named.declared_at}).",
            obj=owner,
            id="clearance.E003",
        )
        for problem in _where_problems(named, model)
    ]


def _duplicates(rules: Sequence[NamedRule]) -> dict[str, list[NamedRule]]:
    counts = Counter(rule.name for rule in rules)
    return {
        name: [rule for rule in rules if rule.name == name]
        for name, count in sorted(counts.items())
        if count > 1
    }


@checks.register(TAG)
def check_rules(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E003: a ``where`` lookup does not resolve. E004: duplicate rule names. W001: no policy."""
    messages: list[checks.CheckMessage] = []
    for action in _selected(app_configs):
        for named in action.rules:
            what = f"Action {action.name!r}: {named.layer.value} {named.name!r}"
            messages += _where_errors(named, action.model, action, what)
        for name, rules in _duplicates(action.rules).items():
            where_ = "; ".join(f"{r.code} at {r.declared_at}" for r in rules)
            messages.append(
                checks.Error(
                    f"Action {action.name!r} has {len(rules)} rules named {name!r}; a denial "
                    "must name exactly one rule.",
                    hint=f"Rename all but one: {where_}",
                    obj=action,
                    id="clearance.E004",
                )
            )
        # A scoped action's gate 1 is already about the object: held within its scope object.
        if not action.policies and not action.scope:
            anyone = action.permission is ANYONE
            messages.append(
                checks.Warning(
                    f"Action {action.name!r} has no policy: "
                    + (
                        "anyone, anonymous visitors included, may do it on any object."
                        if anyone
                        else f"whoever holds {action.permission_label} may do it on any object."
                    ),
                    hint="Add a policy (tenant, ownership, state...), or silence this warning "
                    "with SILENCED_SYSTEM_CHECKS = ['clearance.W001'] if gate 1 alone is meant.",
                    obj=action,
                    id="clearance.W001",
                )
            )
    for model, invariants in selected_invariants(app_configs):
        # An abstract model's invariants bind its concrete subclasses: resolve them there.
        targets = concrete_subclasses(model) if model._meta.abstract else [model]
        for named in invariants:
            what = f"Model invariant {named.name!r}"
            for target in targets:
                messages += _where_errors(named, target, model, what)
        for name, rules in _duplicates(invariants).items():
            where_ = "; ".join(r.declared_at for r in rules)
            messages.append(
                checks.Error(
                    f"{model._meta.label} has {len(rules)} model invariants named {name!r}; a "
                    "violation must name exactly one rule.",
                    hint=f"Rename all but one: {where_}",
                    obj=model,
                    id="clearance.E004",
                )
            )
    return messages


# --------------------------------------------------------------------------------------------
# A single-table invariant without its database constraint: clearance.W003
# --------------------------------------------------------------------------------------------


@checks.register(TAG)
def check_constraints(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W003: a model invariant that fits a ``CHECK`` constraint has none in ``Meta``."""
    from .constraints import missing_constraints

    messages: list[checks.CheckMessage] = []
    for model, _invariants in selected_invariants(app_configs):
        label = model._meta.label
        for invariant in missing_constraints(model):
            messages.append(
                checks.Warning(
                    f"The model invariant {invariant.name!r} of {label} fits a database CHECK "
                    f"constraint, but {label}.Meta.constraints has none: raw SQL and writes "
                    "that skip the guards can break it.",
                    hint=(
                        "Add invariant_constraint("
                        f"{invariant.name!r}, <the rule>) to Meta.constraints and run "
                        "makemigrations (clearance.constraints_for(Model) lists them), or "
                        f"silence clearance.W003. (declared at {invariant.declared_at})"
                    ),
                    obj=model,
                    id="clearance.W003",
                )
            )
    return messages


# --------------------------------------------------------------------------------------------
# Rules attached by name to an unknown action: clearance.E005
# --------------------------------------------------------------------------------------------


@checks.register(TAG)
def check_pending_rules(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E005: a rule attached with ``attach(name)`` to an action nobody declared."""
    known = [action.name for action in registry.actions]
    return [
        checks.Error(
            f"The {pending.layer.value} {pending.name!r} is attached to the action "
            f"{pending.action!r}, which no installed app declares: it is never enforced.",
            hint=f"Declared at {pending.declared_at}. Fix the action name, or install the app "
            "that declares it." + _hint_close(pending.action, known),
            obj=pending.action,
            id="clearance.E005",
        )
        for pending in sorted(registry.pending, key=lambda p: (p.action, p.name))
    ]


# --------------------------------------------------------------------------------------------
# Scopes: clearance.E020, clearance.E021
# --------------------------------------------------------------------------------------------


def _scope_models_text() -> str:
    found = []
    for scope in scope_registry:
        try:
            found.append(f"{scope.name} on {scope.model._meta.label}")
        except (LookupError, ValueError):
            found.append(f"{scope.name} on an unknown model")
    return ", ".join(found) or "none"


def _scope_apps(scope: Any) -> set[str]:
    """The app labels of a scope's models (those that resolve)."""
    found = set()
    for attribute in ("model", "membership"):
        try:
            found.add(getattr(scope, attribute)._meta.app_label)
        except (LookupError, ValueError):
            continue
    return found


@checks.register(TAG)
def check_scopes(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E020: a scope does not fit its models. E021: an action's scope path does not lead from
    its model to a declared scope."""
    errors: list[checks.CheckMessage] = []
    labels = None if app_configs is None else {config.label for config in app_configs}
    by_model: dict[Any, list[str]] = {}
    for scope in scope_registry:
        problems = scope.problems()
        if not problems:
            by_model.setdefault(scope.model._meta.concrete_model, []).append(scope.name)
        if labels is not None and not _scope_apps(scope) & labels:
            continue
        errors += [
            checks.Error(
                f"Scope {scope.name!r}: {problem.rstrip('.')}. No membership of it grants "
                "anything: gate 1 denies every actor without the permission globally, with an "
                "error.",
                hint=f"Declared at {scope.declared_at}. Fix the Scope(...) arguments: "
                "membership's user_field and scope_field are foreign keys to the user model "
                "and to the scope model; groups= names its many-to-many to auth.Group, or "
                "role= its field holding the role, and roles= maps values of that field as it "
                "holds them.",
                obj=scope.name,
                id="clearance.E020",
            )
            for problem in problems
        ]
    for model, names in sorted(by_model.items(), key=lambda item: item[0]._meta.label):
        if len(names) > 1:
            errors.append(
                checks.Error(
                    f"Scopes {', '.join(repr(n) for n in names)} are all declared on "
                    f"{model._meta.label}: a path to a {model._meta.label} must reach one scope.",
                    hint="Declare one scope per scope model.",
                    obj=names[0],
                    id="clearance.E020",
                )
            )
    for action in _selected(app_configs):
        if not action.scope:
            continue
        model = action.model
        if model is None:
            errors.append(
                checks.Error(
                    f"{action.name} has scope={action.scope!r} but no model: without an object "
                    "there is no scope object to find.",
                    hint=f"Declared at {action.declared_at}. Give the action a model=, or drop "
                    "scope=.",
                    obj=action,
                    id="clearance.E021",
                )
            )
            continue
        for path in action.scope:
            try:
                resolve_path(model, path)
            except (ImproperlyConfigured, LookupError, ValueError) as exc:
                errors.append(
                    checks.Error(
                        f"{action.name}: {str(exc).rstrip('.')}. Gate 1 denies every actor "
                        "without the permission globally, with an error.",
                        hint=f"Declared at {action.declared_at}. A scope path follows forward "
                        f"foreign keys and one-to-one fields from {model._meta.label} to the "
                        "model of a declared Scope ('organization', "
                        "'repository__organization'), or is 'pk' when the action's model is "
                        f"a scope model. Declared scopes: {_scope_models_text()}.",
                        obj=action,
                        id="clearance.E021",
                    )
                )
    return errors


# --------------------------------------------------------------------------------------------
# No authz module anywhere: clearance.W002
# --------------------------------------------------------------------------------------------


@checks.register(TAG)
def check_authz_modules(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W002: clearance is installed but no installed app has an ``authz`` module."""
    for config in apps.get_app_configs():
        if config.name == "clearance" or config.module is None:
            continue
        if module_has_submodule(config.module, "authz"):
            return []
    return [
        checks.Warning(
            "clearance is installed but no installed app has an authz module, so no action is "
            "declared by autodiscovery and every decision will raise UnknownAction.",
            hint="Declare actions in <app>/authz.py of an app listed in INSTALLED_APPS (the "
            "module must be named authz).",
            id="clearance.W002",
        )
    ]


# --------------------------------------------------------------------------------------------
# Authentication backend order: clearance.E006, clearance.W004
# --------------------------------------------------------------------------------------------


def _is_clearance_backend(path: str) -> bool:
    if path == CLEARANCE_BACKEND:
        return True
    try:
        from .backends import ClearanceBackend
    except ImportError:
        return False
    try:
        cls = import_string(path)
    except ImportError:
        return False
    return isinstance(cls, type) and issubclass(cls, ClearanceBackend)


def _may_answer_objects(path: str) -> bool | None:
    """True: known to grant object permissions; None: cannot tell; False: never does."""
    if path in _OBJECT_BACKENDS:
        return True
    try:
        cls = import_string(path)
    except ImportError:
        return None
    if not isinstance(cls, type) or not hasattr(cls, "has_perm"):
        return False  # Django skips backends that answer no permission at all.
    from django.contrib.auth.backends import BaseBackend, ModelBackend

    # ModelBackend and BaseBackend answer nothing for an object; a subclass that leaves every
    # permission method alone answers nothing either.
    for base in (ModelBackend, BaseBackend):
        if issubclass(cls, base) and all(
            getattr(cls, name, None) is getattr(base, name, None) for name in _PERMISSION_METHODS
        ):
            return False
    return None


@checks.register(TAG)
def check_backends(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E006/W004: ``ClearanceBackend`` comes after a backend that answers object permissions."""
    paths: list[str] = list(getattr(settings, "AUTHENTICATION_BACKENDS", []))
    position = next((i for i, path in enumerate(paths) if _is_clearance_backend(path)), None)
    if position is None:
        return []
    messages: list[checks.CheckMessage] = []
    for path in paths[:position]:
        answers = _may_answer_objects(path)
        if answers is False:
            continue
        if answers:
            messages.append(
                checks.Error(
                    f"{path} comes before {paths[position]} in AUTHENTICATION_BACKENDS and "
                    "grants object permissions itself: user.has_perm(perm, obj) can answer True "
                    "before clearance's gates are asked.",
                    hint=f"Move {paths[position]} before {path}.",
                    id="clearance.E006",
                )
            )
        else:
            messages.append(
                checks.Warning(
                    f"{path} comes before {paths[position]} in AUTHENTICATION_BACKENDS and may "
                    "answer user.has_perm(perm, obj) before clearance's gates are asked.",
                    hint=f"Move {paths[position]} first, or silence clearance.W004 if {path} "
                    "never grants permissions on objects.",
                    id="clearance.W004",
                )
            )
    return messages


# --------------------------------------------------------------------------------------------
# The CLEARANCE settings: clearance.E101, clearance.E102
# --------------------------------------------------------------------------------------------


@checks.register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E101: ``CLEARANCE`` is not a dict, or names an unknown setting. E102: an invalid value."""
    from .conf import DEFAULTS, setting_problems

    return [
        checks.Error(
            message,
            hint=(
                "See the settings reference (docs/reference/settings.md)."
                if name in DEFAULTS
                else "Remove it, or correct its name."
            ),
            id="clearance.E102" if name in DEFAULTS else "clearance.E101",
        )
        for name, message in setting_problems()
    ]
