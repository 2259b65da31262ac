"""Finding the object a person names: a primary key, or a natural key such as an invoice number.

``manage.py clearance explain`` and the console's explain page take the object as people write
it. :func:`find_object` reads, for a model:

- ``app_label.Model:PK``: the primary key (the model must be the expected one);
- ``pk=VALUE``: the primary key;
- ``FIELD=VALUE``: the model's natural key, the field named in ``CLEARANCE["NATURAL_KEYS"]``
  (e.g. ``number=INV-0010``);
- ``VALUE``: the primary key or the natural key.

A bare ``VALUE`` never picks an object silently: when it is the primary key of one object and
the natural key of another, or the natural key of several objects (a number unique per tenant
only), :class:`ObjectNotFound` says so and lists them, and the explicit forms above choose.
A natural key that itself looks like ``app_label.Model:...`` is written ``FIELD=VALUE``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DataError, models, transaction

from .conf import clearance_settings

__all__ = ["ObjectNotFound", "find_object", "natural_key_field"]

#: ``app_label.Model:pk``.
_LABELLED = re.compile(r"^(?P<label>\w+\.\w+):(?P<pk>.*)$", re.DOTALL)

_T = TypeVar("_T")

#: How many objects an ambiguity lists.
_LISTED = 5


class ObjectNotFound(LookupError):
    """No single object answers to what was written (none, several, or a malformed name).

    The message says which, for people.
    """


def natural_key_field(model: type[models.Model]) -> str | None:
    """The field ``CLEARANCE["NATURAL_KEYS"]`` names for ``model`` (or for the model it is a
    proxy of), or None."""
    keys: dict[str, str] = clearance_settings.NATURAL_KEYS or {}
    field = keys.get(model._meta.label)
    if field is not None:
        return field
    for label, name in keys.items():  # a proxy's concrete model, a label in another case
        try:
            named = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if named._meta.concrete_model is model._meta.concrete_model:
            return name
    return None


def find_object(
    model: type[models.Model], text: str, objects: models.QuerySet[Any] | None = None
) -> models.Model:
    """The one object of ``model`` that ``text`` names, among ``objects`` (default: all).

    Raises :class:`ObjectNotFound` with a message for people when there is none, or several.
    """
    queryset: models.QuerySet[Any] = objects if objects is not None else model._base_manager.all()
    label = model._meta.label
    natural = natural_key_field(model)

    labelled = _LABELLED.match(text)
    if labelled:
        try:
            given = apps.get_model(labelled["label"])
        except (LookupError, ValueError):
            raise ObjectNotFound(f"{text!r}: no installed model {labelled['label']!r}.") from None
        if given._meta.concrete_model is not model._meta.concrete_model:
            raise ObjectNotFound(f"{text!r}: expected a {label} object, not {given._meta.label}.")
        if not labelled["pk"]:
            raise ObjectNotFound(f"{text!r}: write the primary key after the colon.")
        return _by_pk(queryset, label, labelled["pk"])

    field, sep, value = text.partition("=")
    if sep and field == "pk":
        return _by_pk(queryset, label, value)
    if sep and natural is not None and field == natural:
        found = _by_natural_key(queryset, natural, value)
        if not found:
            raise ObjectNotFound(f"There is no {label} with {natural} {value!r}.")
        return _one(found, label, natural, value)

    if natural is None:
        return _by_pk(queryset, label, text)
    by_pk = _pk_match(queryset, text)
    by_key = _by_natural_key(queryset, natural, text)
    if by_pk is not None and by_key and any(obj.pk != by_pk.pk for obj in by_key):
        other = next(obj for obj in by_key if obj.pk != by_pk.pk)
        raise ObjectNotFound(
            f"{text!r} is the primary key of {_name(by_pk)} and the {natural} of "
            f"{_name(other)}: write pk={text} or {natural}={text}."
        )
    if by_pk is not None:
        return by_pk
    if not by_key:
        raise ObjectNotFound(f"There is no {label} with primary key or {natural} {text!r}.")
    return _one(by_key, label, natural, text)


#: What a value the model's field cannot hold raises: no object has that value.
_NOT_A_VALUE = (ValueError, TypeError, ValidationError, DataError)


def _run(query: Callable[[], _T], queryset: models.QuerySet[Any], value: str) -> _T:
    """``query()`` in a savepoint, so that a value the database refuses leaves the caller's
    transaction usable; a NUL character (no text column holds one, and PostgreSQL refuses the
    query) is refused before asking."""
    if "\x00" in value:
        raise ValueError(f"{value!r} holds a NUL character")
    with transaction.atomic(using=queryset.db):
        return query()


def _pk_match(queryset: models.QuerySet[Any], value: str) -> models.Model | None:
    """The object whose primary key is ``value``; None when none is (or cannot be)."""
    try:
        found: models.Model | None = _run(
            lambda: queryset.filter(pk=value).first(), queryset, value
        )
    except _NOT_A_VALUE:
        return None
    return found


def _by_pk(queryset: models.QuerySet[Any], label: str, value: str) -> models.Model:
    try:
        obj: models.Model = _run(lambda: queryset.get(pk=value), queryset, value)
    except queryset.model.DoesNotExist:
        raise ObjectNotFound(f"There is no {label} with primary key {value!r}.") from None
    except _NOT_A_VALUE:
        raise ObjectNotFound(
            f"{value!r} is not a primary key of {label}. (CLEARANCE['NATURAL_KEYS'] can name "
            "a field, such as a number, to find its objects by.)"
        ) from None
    return obj


def _by_natural_key(queryset: models.QuerySet[Any], field: str, value: str) -> list[models.Model]:
    """Up to one more object than an ambiguity lists, whose ``field`` is ``value``."""
    try:
        return _run(
            lambda: list(queryset.filter(**{field: value}).order_by("pk")[: _LISTED + 1]),
            queryset,
            value,
        )
    except _NOT_A_VALUE:
        return []


def _one(found: list[models.Model], label: str, field: str, value: str) -> models.Model:
    if len(found) == 1:
        return found[0]
    listed = ", ".join(_name(obj) for obj in found[:_LISTED])
    more = ", ..." if len(found) > _LISTED else ""
    count = f"{len(found)}" if len(found) <= _LISTED else f"More than {_LISTED}"
    raise ObjectNotFound(
        f"{count} {label} objects have {field} {value!r} ({listed}{more}): name one by its "
        f"primary key, e.g. pk={found[0].pk}."
    )


def _name(obj: models.Model) -> str:
    return f"{obj._meta.label}:{obj.pk} ({obj})"
