"""The declared mapping between AuthZEN's vocabulary and the project's actors, models and actions.

A project declares, in an ``authz.py`` module (autodiscovered like every rule)::

    from clearance.contrib import authzen

    authzen.subject("user", lookup="email")                      # a user found by a field
    authzen.subject("job", actors={"nightly": SystemActor("nightly", permissions=[...])})
    authzen.resource(
        "invoice",
        Invoice,
        lookup="number",                                          # resource.id is the number
        properties={"tenant": "tenant__slug", "amount": "amount"},
        actions={
            "can_read": "invoices.view",
            "can_approve": "invoices.approve",
            "can_create": authzen.creation("invoices.create"),   # decided on an unsaved instance
        },
    )

Nothing undeclared is reachable: an unknown subject type, resource type or action name is an
error the caller is told about, never an allow.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    MultipleObjectsReturned,
    ObjectDoesNotExist,
    ValidationError,
)
from django.db import models
from django.db.models import Q

__all__ = [
    "Creation",
    "Declarations",
    "ResourceType",
    "SubjectType",
    "Unresolvable",
    "creation",
    "mapping",
    "resource",
    "subject",
]


class Unresolvable(Exception):
    """A subject or resource named in a request cannot be turned into an actor or an object.

    ``status`` is the HTTP-like status the answer carries (404 for "not found", 400 for a value
    that does not fit the declared field).
    """

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Creation:
    """Marks a mapped action as a creation: it is decided on an unsaved instance built from the
    resource's properties (the state that would be written); ``resource.id`` is not looked up.
    """

    action: str


def creation(action: str) -> Creation:
    """Declare that an AuthZEN action creates a resource: ``creation("invoices.create")``."""
    return Creation(action)


def _lookups(lookup: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(lookup, str):
        return (lookup,)
    found = tuple(lookup)
    if not found or not all(isinstance(item, str) and item for item in found):
        raise ImproperlyConfigured(f"lookup must be a field name or a list of them, got {lookup!r}")
    return found


def _by_any(lookups: tuple[str, ...], value: str) -> Q:
    condition = Q()
    for lookup in lookups:
        condition |= Q(**{lookup: value})
    return condition


def _one(queryset: models.QuerySet[Any], lookups: tuple[str, ...], value: str) -> Any:
    """The one row that ``value`` names through any of ``lookups``, or None."""
    try:
        return queryset.filter(_by_any(lookups, value)).distinct().get()
    except (ObjectDoesNotExist, MultipleObjectsReturned, ValidationError, ValueError, TypeError):
        # Missing, ambiguous, or not a value the field can hold: nothing is named.
        return None


def _value_of(obj: Any, path: str) -> Any:
    value = obj
    for part in path.split("__"):
        if value is None:
            return None
        value = getattr(value, part, None)
    return value


@dataclass(frozen=True)
class SubjectType:
    """A declared subject type: how ``subject.id`` becomes an actor.

    Either ``model``/``lookup`` (a row found by one of the lookup fields, e.g. a user by email)
    or ``actors`` (a fixed table of named actors, e.g. :class:`~clearance.SystemActor` jobs).
    """

    name: str
    model: type[models.Model] | None = None
    lookup: tuple[str, ...] = ("pk",)
    actors: Mapping[str, Any] | None = None
    queryset: models.QuerySet[Any] | None = None

    def base_queryset(self) -> models.QuerySet[Any]:
        """The rows a subject id may name (the declared queryset, or every row)."""
        if self.queryset is not None:
            rows: models.QuerySet[Any] = self.queryset.all()
            return rows
        assert self.model is not None
        every: models.QuerySet[Any] = self.model._default_manager.all()
        return every

    def resolve(self, subject_id: str) -> Any:
        """The actor ``subject_id`` names, or None."""
        if self.actors is not None:
            return self.actors.get(subject_id)
        return _one(self.base_queryset(), self.lookup, subject_id)

    def id_of(self, actor: Any) -> str:
        """The id a search result gives ``actor`` (the first lookup field's value)."""
        if self.actors is not None:
            for key, value in self.actors.items():
                if value is actor or value == actor:
                    return key
            return ""
        value = _value_of(actor, self.lookup[0] if self.lookup[0] != "pk" else "pk")
        return "" if value is None else str(value)


@dataclass(frozen=True)
class ResourceType:
    """A declared resource type: a model, how ``resource.id`` finds a row, which properties a
    caller may state, and which AuthZEN action names it answers (``actions``).

    ``stored=False`` declares that the caller describes the resource (the Todo interop's
    stateless style): every action is decided on an unsaved instance built from ``id`` and
    ``properties``, and nothing is looked up. Use it only for callers you trust with the state.
    """

    name: str
    model: type[models.Model]
    lookup: tuple[str, ...] = ("pk",)
    properties: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str | Creation] = field(default_factory=dict)
    stored: bool = True
    queryset: models.QuerySet[Any] | None = None

    def base_queryset(self) -> models.QuerySet[Any]:
        """The rows a resource id may name (the declared queryset, or every row)."""
        if self.queryset is not None:
            rows: models.QuerySet[Any] = self.queryset.all()
            return rows
        every: models.QuerySet[Any] = self.model._default_manager.all()
        return every

    def action_for(self, name: str) -> tuple[str, bool] | None:
        """``(clearance action name, creates)`` for the AuthZEN action ``name``, or None."""
        target = self.actions.get(name)
        if target is None:
            return None
        if isinstance(target, Creation):
            return target.action, True
        return target, False

    def load(self, resource_id: str) -> Any:
        """The stored row ``resource_id`` names, or None."""
        return _one(self.base_queryset(), self.lookup, resource_id)

    def id_of(self, obj: Any) -> str:
        """The id a search result gives ``obj``: its first lookup field."""
        value = _value_of(obj, self.lookup[0])
        return "" if value is None else str(value)

    def build(self, resource_id: str | None, properties: Mapping[str, Any]) -> Any:
        """An unsaved instance carrying ``resource_id`` (when the lookup is a plain field of the
        model) and the declared ``properties``; undeclared properties are ignored."""
        obj = self.model()
        lookup = self.lookup[0]
        if resource_id is not None and lookup != "pk" and "__" not in lookup:
            self._set(obj, lookup, resource_id, f"resource.id {resource_id!r}")
        self.apply(obj, properties)
        return obj

    def changed(self, obj: Any, properties: Mapping[str, Any]) -> Any | None:
        """A copy of ``obj`` with the declared ``properties`` applied, or None when the request
        states none of them (nothing would change)."""
        if not any(name in properties for name in self.properties):
            return None
        after = copy.copy(obj)
        self.apply(after, properties)
        return after

    def apply(self, obj: Any, properties: Mapping[str, Any]) -> None:
        """Set the declared properties present in ``properties`` on ``obj``."""
        for name, target in self.properties.items():
            if name in properties:
                self._set(obj, target, properties[name], f"resource.properties.{name}")

    def _set(self, obj: Any, target: str, value: Any, where: str) -> None:
        name, _, lookup = target.partition("__")
        try:
            model_field = self.model._meta.get_field(name)
        except FieldDoesNotExist:  # reported by the system checks
            label = self.model._meta.label
            raise Unresolvable(f"{where} maps to no field of {label}", 400) from None
        if model_field.many_to_many or model_field.one_to_many:
            raise Unresolvable(f"{where} maps to a to-many relation, which cannot be stated", 400)
        if model_field.is_relation and (model_field.many_to_one or model_field.one_to_one):
            related = model_field.related_model
            assert isinstance(related, type)
            if value is None:
                setattr(obj, name, None)
                return
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise Unresolvable(f"{where} must be a string", 400)
            found = _one(related._default_manager.all(), (lookup or "pk",), str(value))
            if found is None:
                raise Unresolvable(f"{where}: no {related._meta.verbose_name} matches {value!r}")
            setattr(obj, name, found)
            return
        if lookup:
            raise Unresolvable(f"{where} maps to {target!r}, which is not a relation", 400)
        if isinstance(value, (dict, list)):
            raise Unresolvable(f"{where} must be a single value", 400)
        try:
            assert isinstance(model_field, models.Field)
            setattr(obj, model_field.attname, model_field.to_python(value))
        except ValidationError as exc:
            raise Unresolvable(f"{where}: {'; '.join(exc.messages)}", 400) from None


class Declarations:
    """Every declared subject and resource type (one process-wide instance: :data:`mapping`)."""

    def __init__(self) -> None:
        self.subjects: dict[str, SubjectType] = {}
        self.resources: dict[str, ResourceType] = {}

    def subject(
        self,
        name: str,
        model: type[models.Model] | None = None,
        *,
        lookup: str | Iterable[str] = "pk",
        actors: Mapping[str, Any] | None = None,
        queryset: models.QuerySet[Any] | None = None,
    ) -> SubjectType:
        """Declare a subject type (see the module documentation)."""
        _check_name("subject", name, self.subjects)
        if actors is not None:
            if model is not None or queryset is not None:
                raise ImproperlyConfigured(
                    f"AuthZEN subject type {name!r}: give actors=, or a model/queryset, not both"
                )
            declared = SubjectType(name, None, ("pk",), dict(actors), None)
        else:
            if model is None:
                model = queryset.model if queryset is not None else get_user_model()
            declared = SubjectType(name, model, _lookups(lookup), None, queryset)
        self.subjects[name] = declared
        return declared

    def resource(
        self,
        name: str,
        model: type[models.Model],
        *,
        lookup: str | Iterable[str] = "pk",
        properties: Mapping[str, str] | None = None,
        actions: Mapping[str, str | Creation],
        stored: bool = True,
        queryset: models.QuerySet[Any] | None = None,
    ) -> ResourceType:
        """Declare a resource type (see the module documentation)."""
        _check_name("resource", name, self.resources)
        if not (isinstance(model, type) and issubclass(model, models.Model)):
            raise ImproperlyConfigured(f"AuthZEN resource type {name!r}: model must be a model")
        if not actions:
            raise ImproperlyConfigured(
                f"AuthZEN resource type {name!r} maps no action: give actions={{name: action}}"
            )
        for action_name, target in actions.items():
            if not isinstance(action_name, str) or not action_name:
                raise ImproperlyConfigured(f"AuthZEN resource type {name!r}: bad action name")
            if not isinstance(target, (str, Creation)):
                raise ImproperlyConfigured(
                    f"AuthZEN resource type {name!r}: action {action_name!r} must map to a "
                    f"clearance action name or authzen.creation(...), got {target!r}"
                )
        declared = ResourceType(
            name,
            model,
            _lookups(lookup),
            dict(properties or {}),
            dict(actions),
            stored,
            queryset,
        )
        self.resources[name] = declared
        return declared

    def snapshot(self) -> tuple[dict[str, SubjectType], dict[str, ResourceType]]:
        """Capture the declarations (restore them with :meth:`restore`)."""
        return dict(self.subjects), dict(self.resources)

    def restore(self, state: tuple[dict[str, SubjectType], dict[str, ResourceType]]) -> None:
        """Put back declarations captured with :meth:`snapshot`."""
        self.subjects, self.resources = dict(state[0]), dict(state[1])


def _check_name(kind: str, name: str, existing: Mapping[str, Any]) -> None:
    if not isinstance(name, str) or not name:
        raise ImproperlyConfigured(f"An AuthZEN {kind} type needs a non-empty name, got {name!r}")
    if name in existing:
        raise ImproperlyConfigured(f"AuthZEN {kind} type {name!r} is declared twice")


#: The process-wide mapping the ``authz.py`` modules fill.
mapping = Declarations()


def subject(
    name: str,
    model: type[models.Model] | None = None,
    *,
    lookup: str | Iterable[str] = "pk",
    actors: Mapping[str, Any] | None = None,
    queryset: models.QuerySet[Any] | None = None,
) -> SubjectType:
    """Declare an AuthZEN subject type.

    ``authzen.subject("user", lookup="email")`` finds a user (the project's user model unless
    ``model`` or ``queryset`` says otherwise) whose email is ``subject.id``; ``lookup`` may list
    several fields, the id then has to name exactly one row through any of them.
    ``authzen.subject("job", actors={"nightly": SystemActor(...)})`` answers from a fixed table.
    """
    return mapping.subject(name, model, lookup=lookup, actors=actors, queryset=queryset)


def resource(
    name: str,
    model: type[models.Model],
    *,
    lookup: str | Iterable[str] = "pk",
    properties: Mapping[str, str] | None = None,
    actions: Mapping[str, str | Creation],
    stored: bool = True,
    queryset: models.QuerySet[Any] | None = None,
) -> ResourceType:
    """Declare an AuthZEN resource type.

    ``lookup`` names the field(s) ``resource.id`` is matched against. ``properties`` maps the
    property names a caller may state to fields (``"amount"``) or to a related row found by one
    of its fields (``"tenant__slug"``); any other property is ignored. ``actions`` maps AuthZEN
    action names to clearance actions on ``model``; wrap a creation in :func:`creation`.
    """
    return mapping.resource(
        name,
        model,
        lookup=lookup,
        properties=properties,
        actions=actions,
        stored=stored,
        queryset=queryset,
    )
