"""The rule set as data, read from the registry that enforces it: actions and the group matrix.

``manage.py clearance actions`` and ``matrix`` print these; they are plain, JSON-friendly
structures, sorted (actions by name, groups by name, rules in evaluation order), with no
timestamps or source paths, so their output can be committed and diffed.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.apps import apps

from .actions import ANYONE, Action, NamedRule, registry

__all__ = ["capability_matrix", "describe_actions", "describe_model_invariants"]


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
    to anonymous visitors) at gate 1. Two queries, whatever the number of actions.
    """
    groups, grants = _group_grants()
    rows = []
    for action in _selected(app_labels):
        anyone = action.permission is ANYONE
        rows.append(
            {
                "name": action.name,
                "label": action.label,
                "permission": action.permission_label,
                "anyone": anyone,
                "superusers": True,
                "groups": {g: anyone or (g, action.permission_label) in grants for g in groups},
                "policies": [r.name for r in action.policies],
                "invariants": [r.name for r in action.invariants],
            }
        )
    return {
        "groups": groups,
        "actions": rows,
        "model_invariants": [
            {"model": inv["model"], "name": inv["name"]}
            for inv in describe_model_invariants(app_labels)
        ],
    }
