"""The rule set as data, read from the registry that enforces it: actions and the group matrix.

``manage.py clearance actions`` and ``matrix`` print these; they are plain, JSON-friendly
structures, sorted (actions by name, groups by name, rules in evaluation order), with no
timestamps or source paths, so their output can be committed and diffed.

Scopes (:class:`~clearance.Scope`) appear in both: an action's scope paths, the declared scopes
(their membership model and how a membership grants permissions), and, in the matrix, which
groups or roles grant each scoped action's permission within which scope.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from .actions import ANYONE, Action, NamedRule, registry
from .scopes import Scope, resolve_path, scope_registry

__all__ = [
    "capability_matrix",
    "describe_actions",
    "describe_model_invariants",
    "describe_scopes",
    "scope_grants",
    "scope_paths",
]


def _selected(app_labels: Collection[str]) -> list[Action]:
    if not app_labels:
        return registry.actions
    return [
        a
        for a in registry.actions
        if a.app_label in app_labels
        or (a.model is not None and a.model._meta.app_label in app_labels)
    ]


def _rule(named: NamedRule) -> dict[str, str]:
    return {"name": named.name, "expression": named.expression, "reason": named.reason}


def describe_actions(app_labels: Collection[str] = ()) -> list[dict[str, Any]]:
    """Every action (of the given apps, or all): its permission, policies and invariants."""
    return [
        {
            "name": action.name,
            "label": action.label,
            "model": action.model._meta.label if action.model is not None else None,
            "permission": action.permission_label,
            "permission_model": (
                action.permission_model._meta.label if action.permission_model else None
            ),
            "scope": list(action.scope),
            "policies": [_rule(r) for r in action.policies],
            "invariants": [_rule(r) for r in action.invariants],
        }
        for action in _selected(app_labels)
    ]


def describe_model_invariants(app_labels: Collection[str] = ()) -> list[dict[str, Any]]:
    """Every model invariant (of the given apps, or all), by model label."""
    out = []
    for model, invariants in sorted(
        registry.model_invariants.items(), key=lambda item: item[0]._meta.label
    ):
        if app_labels and model._meta.app_label not in app_labels:
            continue
        for inv in invariants:
            out.append({"model": model._meta.label, **_rule(inv), "on": sorted(inv.on)})
    return out


def _model_label(scope: Scope, attribute: str) -> str:
    try:
        return str(getattr(scope, attribute)._meta.label)
    except (LookupError, ValueError):  # a model that is not installed: the checks say so
        return "(not installed)"


def _scope_label(scope: Scope) -> str:
    try:
        return scope.label
    except (LookupError, ValueError):
        return scope.name


def _scope_field(scope: Scope) -> str | None:
    try:
        return scope.scope_field
    except (ImproperlyConfigured, LookupError, ValueError):  # the system checks say why
        return None


def describe_scopes(scopes: Collection[Scope] | None = None) -> list[dict[str, Any]]:
    """The declared scopes (or ``scopes``), by name: the scope model, the membership model and
    its fields, and how a membership grants permissions (``groups``, the membership's
    many-to-many to ``auth.Group``, or ``role`` and ``roles``, role -> group names)."""
    chosen = sorted(scope_registry if scopes is None else scopes, key=lambda s: s.name)
    return [
        {
            "name": scope.name,
            "label": _scope_label(scope),
            "model": _model_label(scope, "model"),
            "membership": _model_label(scope, "membership"),
            "user_field": scope.user_field,
            "scope_field": _scope_field(scope),
            "groups": scope.groups,
            "role": scope.role,
            "roles": {str(value): list(names) for value, names in scope.roles.items()},
        }
        for scope in chosen
    ]


def scope_paths(action: Action) -> list[tuple[str, Scope | None, str]]:
    """``(path, the scope it reaches, "")`` for each scope path of ``action``, or
    ``(path, None, the problem)`` for a path that reaches no declared scope."""
    found: list[tuple[str, Scope | None, str]] = []
    for path in action.scope:
        if action.model is None:
            found.append((path, None, "an action with scope= needs a model"))
            continue
        try:
            found.append((path, resolve_path(action.model, path).scope, ""))
        except (ImproperlyConfigured, LookupError, ValueError) as exc:
            found.append((path, None, str(exc)))
    return found


def scope_grants(action: Action, holders: Collection[str]) -> list[dict[str, Any]]:
    """Who holds ``action``'s permission within each scope its paths reach, given the names of
    the groups that hold the permission (``holders``).

    One entry per scope, in the order of the paths: its name, the paths that reach it, and the
    groups whose permission a membership grants there: for a scope whose memberships carry
    groups, every group holding the permission (any of them may be put on a membership); for
    a role field, the roles whose groups hold it, and those groups. A path that reaches no
    declared scope is listed with ``scope`` None and the problem (the system checks report it
    too).
    """
    entries: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for path, scope, problem in scope_paths(action):
        if scope is None:
            out.append(
                {
                    "scope": None,
                    "paths": [path],
                    "problem": problem,
                    "grants": None,
                    "groups": [],
                    "roles": [],
                }
            )
            continue
        if scope.name in entries:
            entries[scope.name]["paths"].append(path)
            continue
        if scope.groups is not None:
            groups, roles = sorted(holders), []
        else:
            roles = [
                str(value)
                for value, names in scope.roles.items()
                if any(name in holders for name in names)
            ]
            groups = sorted(
                {name for names in scope.roles.values() for name in names if name in holders}
            )
        entry = {
            "scope": scope.name,
            "paths": [path],
            "grants": "groups" if scope.groups is not None else "role",
            "groups": groups,
            "roles": roles,
        }
        entries[scope.name] = entry
        out.append(entry)
    return out


def _group_grants() -> tuple[list[str], set[tuple[str, str]]]:
    """All group names, and the (group, "app_label.codename") pairs granted to them."""
    if not apps.is_installed("django.contrib.auth"):
        return [], set()
    from django.contrib.auth.models import Group

    names = sorted(Group.objects.values_list("name", flat=True))
    through = Group.permissions.through
    grants = {
        (group, f"{app_label}.{codename}")
        for group, app_label, codename in through.objects.values_list(
            "group__name", "permission__content_type__app_label", "permission__codename"
        )
    }
    return names, grants


def capability_matrix(app_labels: Collection[str] = ()) -> dict[str, Any]:
    """Actions by groups: which groups hold each action's permission (gate 1), and the rules
    (gates 2 and 3) that then refine it.

    Active superusers hold every permission; an ``ANYONE`` action is open to every group (and
    to anonymous visitors) at gate 1. A group holding the permission grants it everywhere to its
    members (``user.groups``); for a scoped action, ``within`` says which groups or roles grant
    it within each scope, to the memberships that carry them (:func:`scope_grants`), and
    ``scopes`` describes the scopes the selected actions reach. Two queries, whatever the
    number of actions.
    """
    groups, grants = _group_grants()
    rows = []
    reached: dict[str, Scope] = {}
    for action in _selected(app_labels):
        anyone = action.permission is ANYONE
        perm = action.permission_label
        within = scope_grants(action, {g for g in groups if (g, perm) in grants})
        for entry in within:
            if entry["scope"] is not None:
                reached[entry["scope"]] = scope_registry.get(entry["scope"])
        rows.append(
            {
                "name": action.name,
                "label": action.label,
                "permission": perm,
                "anyone": anyone,
                "superusers": True,
                "groups": {g: anyone or (g, perm) in grants for g in groups},
                "scope": list(action.scope),
                "within": within,
                "policies": [r.name for r in action.policies],
                "invariants": [r.name for r in action.invariants],
            }
        )
    return {
        "groups": groups,
        "scopes": describe_scopes(reached.values()),
        "actions": rows,
        "model_invariants": [
            {"model": inv["model"], "name": inv["name"]}
            for inv in describe_model_invariants(app_labels)
        ],
    }
