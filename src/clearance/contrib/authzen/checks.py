"""System checks of the AuthZEN endpoint (ids ``clearance_authzen.E1xx`` / ``W1xx``).

They read the declared mapping and ``settings.CLEARANCE_AUTHZEN``, so a mapping that names an
unknown action or field is reported when the project starts, not when a caller asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, FieldError
from django.db import models
from django.utils.module_loading import import_string

from ...actions import registry
from ...decisions import UnknownAction
from ...rules import Predicate, Rule
from .conf import authzen_settings, problems
from .mapping import ResourceType, SubjectType, mapping

__all__ = ["TAG", "check_mapping", "check_settings"]

#: The tag of these checks (``manage.py check --tag clearance`` runs them with the others).
TAG = "clearance"


@checks.register(TAG)
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E101: ``CLEARANCE_AUTHZEN`` has an unknown key or a bad value, or names a class or
    function that cannot be imported."""
    found = [
        checks.Error(message, id="clearance_authzen.E101", obj="settings.CLEARANCE_AUTHZEN")
        for message in problems()
    ]
    if found:
        return list(found)
    paths = list(authzen_settings.AUTHENTICATION)
    if authzen_settings.MAY_ASK:
        paths.append(authzen_settings.MAY_ASK)
    for path in paths:
        try:
            import_string(path)
        except ImportError as exc:
            found.append(
                checks.Error(
                    f"CLEARANCE_AUTHZEN names {path!r}, which cannot be imported: {exc}",
                    id="clearance_authzen.E101",
                    obj="settings.CLEARANCE_AUTHZEN",
                )
            )
    return list(found)


def _reads_object_in_python(rule: Rule) -> str | None:
    for leaf in rule.leaves():
        if isinstance(leaf, Predicate) and leaf.uses_object:
            return f"predicate {leaf.name!r} reads the object and has no SQL form"
    return None


def _lookup_problem(model: type[models.Model], lookup: str) -> str | None:
    if lookup == "pk":
        return None
    try:
        model._default_manager.none().filter(**{lookup: None})
    except (FieldError, FieldDoesNotExist, ValueError, TypeError) as exc:
        return str(exc)
    return None


def _subject_errors(subject: SubjectType) -> list[checks.CheckMessage]:
    if subject.model is None:
        return []
    return [
        checks.Error(
            f"AuthZEN subject type {subject.name!r}: lookup {lookup!r} does not resolve on "
            f"{subject.model._meta.label}: {problem}",
            id="clearance_authzen.E102",
            obj=subject.name,
        )
        for lookup in subject.lookup
        if (problem := _lookup_problem(subject.model, lookup)) is not None
    ]


def _property_problem(model: type[models.Model], target: str) -> str | None:
    name, _, lookup = target.partition("__")
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return f"{model._meta.label} has no field {name!r}"
    if field.many_to_many or field.one_to_many:
        return f"{name!r} is a to-many relation, which an unsaved instance cannot hold"
    if field.is_relation:
        related = field.related_model
        assert isinstance(related, type)
        return _lookup_problem(related, lookup or "pk")
    if lookup:
        return f"{name!r} is not a relation, so {target!r} cannot follow it"
    return None


def _resource_errors(resource: ResourceType) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    label = resource.model._meta.label
    for lookup in resource.lookup:
        problem = _lookup_problem(resource.model, lookup)
        if problem is not None:
            found.append(
                checks.Error(
                    f"AuthZEN resource type {resource.name!r}: lookup {lookup!r} does not "
                    f"resolve on {label}: {problem}",
                    id="clearance_authzen.E102",
                    obj=resource.name,
                )
            )
    for name, target in resource.properties.items():
        problem = _property_problem(resource.model, target)
        if problem is not None:
            found.append(
                checks.Error(
                    f"AuthZEN resource type {resource.name!r}: property {name!r} maps to "
                    f"{target!r}: {problem}",
                    id="clearance_authzen.E103",
                    obj=resource.name,
                )
            )
    for name in resource.actions:
        action_name, _ = resource.action_for(name) or ("", False)
        try:
            action = registry.get(action_name)
        except UnknownAction as exc:
            found.append(
                checks.Error(
                    f"AuthZEN resource type {resource.name!r}: action {name!r} maps to an "
                    f"undeclared clearance action. {exc}",
                    id="clearance_authzen.E104",
                    obj=resource.name,
                )
            )
            continue
        model = action.model
        if model is None or model._meta.concrete_model is not resource.model._meta.concrete_model:
            acts_on = model._meta.label if model is not None else "no model"
            found.append(
                checks.Error(
                    f"AuthZEN resource type {resource.name!r}: action {name!r} maps to "
                    f"{action.name!r}, which acts on {acts_on}, not on {label}",
                    id="clearance_authzen.E105",
                    obj=resource.name,
                )
            )
            continue
        for named in action.rules:
            culprit = _reads_object_in_python(named.rule)
            if culprit is not None and resource.stored:
                found.append(
                    checks.Warning(
                        f"AuthZEN resource type {resource.name!r}: a resource search for "
                        f"{name!r} checks rows in Python, one by one: rule {named.name!r} of "
                        f"{action.name!r}: {culprit}",
                        hint="Express the rule with where(...), or declare the predicate "
                        "with uses_object=False if it does not read the object.",
                        id="clearance_authzen.W101",
                        obj=resource.name,
                    )
                )
    return found


@checks.register(TAG)
def check_mapping(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E102: a lookup does not resolve. E103: a property maps to no settable field.
    E104: an action maps to an undeclared clearance action. E105: the clearance action acts on
    another model. W101: a resource search would check rows in Python."""
    found: list[checks.CheckMessage] = []
    for subject in mapping.subjects.values():
        found += _subject_errors(subject)
    for resource in mapping.resources.values():
        found += _resource_errors(resource)
    return found
