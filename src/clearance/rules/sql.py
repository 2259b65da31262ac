"""SQL compilation of lookups: the ``Q`` a bound lookup becomes, and the pieces it needs.

Text ranges compare by code point (:class:`CodePointOrder`), as Python does; a lookup through a
forward relation becomes a subquery on its first hop (:func:`first_hop_subquery`).
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import FieldError
from django.db import NotSupportedError, models
from django.db.models import F, Func, Q
from django.db.models import lookups as django_lookups

from .context import Context
from .evaluate import NONE_OK, NOTHING, LocalLookup
from .placeholders import bind_value, contains_ref


def matches_missing(lookup: LocalLookup, value: Any) -> bool:
    """Whether the bound lookup holds where its path meets no row (``IS NULL`` semantics).

    ``where(owner__last_login=None)`` and ``where(owner__last_login__isnull=True)`` hold for a
    document without an owner, in Django's ``filter()`` (a LEFT JOIN meets NULL) and in the
    per-object check (a path that meets None is None).
    """
    if lookup.lookup == "isnull":
        return value is True
    return value is None and lookup.lookup in NONE_OK


def first_hop_subquery(
    model: type[models.Model], first: str, inner_q: Q, *, missing: bool = False
) -> Q:
    """``Q(fk__rest=value)`` as ``Q(fk__in=<rows of the related model where rest=value>)``.

    ``inner_q`` is the lookup relative to the related model (``rest=value``). A lookup through a
    forward relation (``owner__username="x"``) would make Django join the related table.
    Under a negation Django guards the join with ``IS NOT NULL`` only when the
    join is LEFT OUTER at the moment the negated lookup is built; when a sibling branch of the
    same tree already made it INNER (``where(owner=ACTOR, state=...) | ~where(owner__username=
    "x")``), the guard is left out, ``NOT (username = 'x')`` is NULL for a row without owner,
    and the row is dropped, while the per-object check (a path that meets None does not match,
    so its negation holds) keeps it. Comparing the row's own foreign-key column with a
    subquery needs no join, and Django guards a nullable column under negation every time
    (seen with Django 5.2; the subquery form is right on every version). It also keeps the
    outer query free of joins.

    A NULL key is in no subquery, so a lookup that holds where the path meets no row
    (``missing``: ``=None``, ``isnull=True``) also matches a NULL first hop; later hops are
    joined inside the subquery, where Django's LEFT JOIN gives the same answer.
    """
    fk = cast(Any, model._meta.get_field(first))
    inner = fk.related_model._base_manager.filter(inner_q).values(fk.target_field.name)
    result = Q(**{f"{first}__in": inner})
    if missing:
        result |= Q(**{f"{first}__isnull": True})
    return result


def bound_value(lookup: LocalLookup, ctx: Context) -> Any:
    """The lookup's value bound for ``ctx``, ready for a ``Q``; NOTHING when it matches nothing."""
    value = lookup.value
    if contains_ref(value):
        value = lookup.normalize(bind_value(value, ctx))
        if value is NOTHING:
            return NOTHING
        if lookup.lookup == "in" and not value:
            return NOTHING
        if isinstance(value, frozenset):
            value = sorted(value, key=repr)
    return value


def lookup_q(lookup: LocalLookup, key: str, value: Any) -> Q:
    """``Q(key=value)``; a text range compares by code point, as Python does (see
    :class:`CodePointOrder`), and holds for no NULL, under a negation too.
    """
    if not lookup.collated:
        return Q(**{key: value})
    path = key.rsplit("__", 1)[0]
    compare = RANGE_LOOKUP_CLASSES[lookup.lookup](CodePointOrder(F(path)), value)
    return Q(**{f"{path}__isnull": False}) & Q(compare)


class CodePointOrder(Func):
    """A text expression compared by code point, as Python compares ``str``.

    A database compares text by its collation: under ICU ``en-US`` or ``en_US.UTF-8``,
    ``'apple' < 'M'``; by code point (``C``, SQLite's ``BINARY``, Python), ``'M' < 'apple'``.
    ``where(title__lt="M")`` means the same on every database: the code point order, in the
    filter as in the per-object check, which needs no query. On PostgreSQL ``COLLATE "C"``
    (byte order of UTF-8, that is code point order), on SQLite ``COLLATE BINARY``; other
    databases raise ``NotSupportedError`` when such a filter runs (fail closed).
    """

    arity = 1

    def as_sql(
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        collation = _CODE_POINT_COLLATIONS.get(connection.vendor)
        if collation is None:
            raise NotSupportedError(
                "clearance compares text ranges by code point and knows no code point "
                f"collation on {connection.vendor}"
            )
        return super().as_sql(
            compiler, connection, template=f"%(expressions)s COLLATE {collation}", **extra_context
        )


_CODE_POINT_COLLATIONS = {"postgresql": '"C"', "sqlite": "BINARY"}

RANGE_LOOKUP_CLASSES: dict[str, Any] = {
    "gt": django_lookups.GreaterThan,
    "gte": django_lookups.GreaterThanOrEqual,
    "lt": django_lookups.LessThan,
    "lte": django_lookups.LessThanOrEqual,
    "range": django_lookups.Range,
}


def validate_db_lookup(model: type[models.Model], key: str) -> None:
    """Raise ``FieldError`` when Django cannot resolve the lookup ``key`` on ``model``."""
    try:
        model._base_manager.filter(**{key: _ProbeValue()}).query  # noqa: B018
    except FieldError:
        raise
    except Exception:  # value errors from the probe are fine: the path resolved
        return


class _ProbeValue:
    pass
