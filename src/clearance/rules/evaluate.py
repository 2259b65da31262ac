"""Python evaluation of a lookup on one object, with the database's semantics.

:class:`LocalLookup` decides one ``where()`` lookup on the object's own row (or a forward
relation) without a query; :func:`compare_values` compares as the database does (NULLs, text
case folding as PostgreSQL's ``UPPER()`` under the connection's collation, code point order),
so that the per-object check and the SQL filter agree.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, connections, models, router, transaction

from .context import Bind, Checker, Context, attribute_name
from .placeholders import Ref, bind_value

PY_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "in",
        "gt",
        "gte",
        "lt",
        "lte",
        "isnull",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "range",
    }
)

NONE_OK = frozenset({"exact", "iexact"})

_PLAIN_LOOKUPS = frozenset({"exact", "in", "gt", "gte", "lt", "lte", "range"})

_DIRECT_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

#: The Python operator of each lookup in _DIRECT_OPS, for the compiled plans' source.
_OP_SOURCE = {"exact": "==", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_TEXT_LOOKUPS = frozenset(
    {"iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith"}
)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class _Nothing:
    """A bound value that matches nothing (an ACTOR or CTX path that resolved to None)."""

    def __repr__(self) -> str:
        return "<nothing>"


NOTHING = _Nothing()

#: How UPPER() folds each character in each PostgreSQL database (``{code point: upper}`` for
#: the characters it changes), or None where it is not character by character; probed once
#: per database (see :func:`_pg_upper_table`).
_PG_UPPER: dict[tuple[str, str], dict[int, str] | None] = {}

# Every code point UPPER() changes. Planes 2 to 16 (ideographs, tags, private use) have no case;
# the test suite checks every code point against the database.
_PG_UPPER_PROBE = """
    SELECT cp, UPPER(CHR(cp)) FROM generate_series(1, 131071) AS cp
    WHERE (cp < 55296 OR cp > 57343) AND UPPER(CHR(cp)) <> CHR(cp)
"""

# Strings whose upper case depends on their neighbours in some locales (Greek accents and
# diphthongs, Lithuanian dot above): a database that folds these otherwise than character by
# character is asked for every fold.
_CONTEXT_SAMPLE = "\u03ac\u03b9 \u03ad\u03c5 \u03cc\u0301 i\u0307 \u1f00\u0345 \u03b1\u0342\u0345"


def _pg_upper_table(alias: str) -> dict[int, str] | None:
    """How PostgreSQL's UPPER() folds each character on ``alias``, asked once per database.

    It depends on the database's locale provider and ``LC_CTYPE``, which Python cannot see: an
    ICU collation applies Unicode's full mapping (``"ß"`` becomes ``"SS"``, as ``str.upper()``),
    a libc UTF-8 locale maps one character to one, by its own tables (``"ᾀ"`` becomes ``"ᾈ"``,
    where ``str.upper()`` gives two characters), the C locale folds ASCII only. A per-object
    check that folded otherwise would allow ``ᾀ`` for ``ᾈ`` where the queryset filter does not
    (or the reverse), so the database is asked for its whole table, with one query (well under
    a second) the first time a case-insensitive lookup is decided in Python.
    """
    conn = connections[alias]
    key = (alias, str(conn.settings_dict.get("NAME")))
    if key in _PG_UPPER:
        return _PG_UPPER[key]
    table: dict[int, str] | None
    try:
        with transaction.atomic(using=alias), conn.cursor() as cursor:
            cursor.execute(_PG_UPPER_PROBE)
            table = dict(cursor.fetchall())
            sample = "".join(map(chr, table)) + _CONTEXT_SAMPLE
            cursor.execute("SELECT UPPER(%s)", [sample])
            (upper,) = cursor.fetchone()
            if upper != sample.translate(table):
                table = None
    except DatabaseError:  # an encoding without these characters: ask for every fold
        table = None
    _PG_UPPER[key] = table
    return table


def fold_case(text: str, alias: str) -> str:
    """``text`` with its case folded as database ``alias`` folds it for ``i...`` lookups.

    SQLite's ``LIKE`` folds ASCII letters only; PostgreSQL compares ``UPPER()`` of both sides,
    with its own mapping (see :func:`_pg_upper_table`).
    """
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return text.translate(_ASCII_LOWER)
    if vendor == "postgresql":
        table = _pg_upper_table(alias)
        if table is not None:
            return text.translate(table)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT UPPER(%s)", [text])
            return cast(str, cursor.fetchone()[0])
    return text.lower()


def _text_match(lookup: str, a: Any, b: Any, alias: str) -> bool:
    a, b = str(a), str(b)
    insensitive = lookup.startswith("i") or (
        lookup != "exact" and connections[alias].vendor == "sqlite"
    )
    if insensitive:
        a, b = fold_case(a, alias), fold_case(b, alias)
    base = lookup[1:] if lookup.startswith("i") else lookup
    if base == "exact":
        return bool(a == b)
    if base == "contains":
        return b in a
    if base == "startswith":
        return bool(a.startswith(b))
    return bool(a.endswith(b))  # endswith


def compare_values(lookup: str, a: Any, b: Any, alias: str) -> bool:
    """Decide ``a <lookup> b`` as the database would (``a`` is the object's value, not None)."""
    if lookup == "exact":
        return bool(a == b)
    if lookup == "in":
        return a in b
    if lookup == "gt":
        return bool(a > b)
    if lookup == "gte":
        return bool(a >= b)
    if lookup == "lt":
        return bool(a < b)
    if lookup == "lte":
        return bool(a <= b)
    if lookup == "range":
        low, high = b
        return bool(low <= a <= high)
    return _text_match(lookup, a, b, alias)


def _integral(lookup: str, value: float | Decimal) -> Any:
    """A fractional bound (``ACTOR.limit / 2``) for an integer column, as the integer that
    selects the same rows: ``> 1.5`` is ``> 1``, ``>= 1.5`` is ``>= 2``; no integer equals 1.5.

    Django's own conversion truncates (``= 1.5`` would match 1); computed once here, the
    per-object check and the filter compare with the same integer.
    """
    if not value.is_finite() if isinstance(value, Decimal) else not math.isfinite(value):
        return NOTHING
    if value == int(value):
        return int(value)
    if lookup in ("gt", "lte"):
        return math.floor(value)
    if lookup in ("gte", "lt"):
        return math.ceil(value)
    return NOTHING  # exact, in: no integer equals it


@dataclass
class Step:
    """Walk one attribute from an object: a local attribute or a forward relation to fetch."""

    attr: str
    fetch: bool  # True: follow a forward relation (may query unless cached)


@dataclass
class LocalLookup:
    """A lookup decided from the object's own attributes (and forward relations)."""

    key: str
    steps: list[Step]
    field: models.Field[Any, Any]
    lookup: str
    value: Any
    related_model: type[models.Model] | None  # set when the value is compared as a relation
    target_attname: str | None
    dynamic: bool = False
    collated: bool = False  # a text range: compared by code point in SQL (CodePointOrder)
    # Shortcuts set up on the first check (see _prepare).
    _prepared: bool = dataclasses.field(default=False, init=False, repr=False)
    _direct_attr: str = dataclasses.field(default="", init=False, repr=False)
    _direct_op: Callable[[Any, Any], Any] | None = dataclasses.field(
        default=None, init=False, repr=False
    )
    _actor_attname: str = dataclasses.field(default="", init=False, repr=False)

    def check(self, obj: Any, ctx: Context) -> bool:
        if not self._prepared:
            self._prepare()
        value = self.value
        if self.dynamic:
            actor = ctx.actor
            attname = self._actor_attname
            if attname and isinstance(actor, self.related_model):  # type: ignore[arg-type]
                # What normalize() gives for a model instance of the related model.
                value = getattr(actor, attname)
                if value is None:
                    return False
            else:
                value = self.normalize(bind_value(value, ctx))
        if value is NOTHING:
            return False
        compare = self._direct_op
        if compare is not None and value is not None:
            a = getattr(obj, self._direct_attr)
            if a is None:
                return False
            try:
                return bool(compare(a, value))
            except TypeError:  # a value not converted yet ("50000" for a decimal)
                return bool(compare(self.field.to_python(a), value))
        a = obj
        for step in self.steps:
            if a is None:
                break
            if step.fetch:
                try:
                    a = getattr(a, step.attr)
                except ObjectDoesNotExist:
                    a = None
            else:
                a = getattr(a, step.attr)
        if self.lookup == "isnull":
            return (a is None) == bool(value)
        if value is None:  # literal None with exact/iexact: IS NULL
            return a is None
        if a is None:
            return False
        if self.lookup in _PLAIN_LOOKUPS:
            try:
                return compare_values(self.lookup, a, value, "")
            except TypeError:
                # An attribute set but not converted yet ("50000" for a decimal): compared as
                # the database will store it.
                return compare_values(self.lookup, self.field.to_python(a), value, "")
        # A text lookup: decided as the database the object comes from decides it.
        alias = getattr(getattr(obj, "_state", None), "db", None) or router.db_for_read(
            type(obj) if obj is not None else self.field.model
        )
        return compare_values(self.lookup, a, value, alias)

    def checker(self) -> Checker:
        """:meth:`check`, specialised for a comparison of one local attribute with a constant
        or with the actor's key (the same answer, ``None`` handling included)."""
        if not self._prepared:
            self._prepare()
        compare, attr, value = self._direct_op, self._direct_attr, self.value
        general = self.check
        related, attname = self.related_model, self._actor_attname
        if compare is not None and self.dynamic and attname and related is not None:

            def check_actor(obj: Any, ctx: Context) -> bool:
                actor = ctx.actor
                if not isinstance(actor, related):
                    return general(obj, ctx)
                key = getattr(actor, attname)
                if key is None:
                    return False
                a = getattr(obj, attr)
                if a is None:
                    return False
                try:
                    return bool(compare(a, key))
                except TypeError:
                    return general(obj, ctx)

            return check_actor
        if compare is None or self.dynamic or value is None or value is NOTHING:
            return general
        to_python = self.field.to_python

        def check(obj: Any, ctx: Context) -> bool:
            a = getattr(obj, attr)
            if a is None:
                return False
            try:
                return bool(compare(a, value))
            except TypeError:  # a value not converted yet ("50000" for a decimal)
                return bool(compare(to_python(a), value))

        return check

    def python_lines(self, bind: Bind) -> list[str] | None:
        """:meth:`checker` as statements (see :meth:`Rule.python_lines
        <clearance.rules.Rule.python_lines>`), or None when it has no such form."""
        if not self._prepared:
            self._prepare()
        compare, attr, value = self._direct_op, self._direct_attr, self.value
        if compare is None or not attribute_name(attr):
            return None
        op = _OP_SOURCE[self.lookup]
        if not self.dynamic:
            if value is None or value is NOTHING:
                return None
            return [
                f"a = obj.{attr}",
                f"ok = False if a is None else (True if a {op} {bind(value)} else False)",
            ]
        related, attname = self.related_model, self._actor_attname
        if not attname or related is None or not attribute_name(attname):
            return None
        return [
            f"if isinstance(actor, {bind(related)}):",
            f"    k = actor.{attname}",
            f"    a = None if k is None else obj.{attr}",
            f"    ok = False if a is None else (True if a {op} k else False)",
            "else:",
            f"    ok = {bind(self.check)}(obj, ctx) is True",
        ]

    def _prepare(self) -> None:
        # The value is ACTOR itself compared as a relation (owner=ACTOR): when the actor is an
        # instance of the related model, its key is read directly.
        value = self.value
        if (
            self.dynamic
            and self.related_model is not None
            and self.target_attname
            and self.lookup not in ("in", "range", "isnull")
            and isinstance(value, Ref)
            and value.root == "ACTOR"
            and not value.path
        ):
            self._actor_attname = self.target_attname
        # One local attribute compared plainly: the same answer as the general path (a None
        # attribute never matches, else bool(attribute <op> value)).
        if len(self.steps) == 1 and not self.steps[0].fetch and self.lookup in _DIRECT_OPS:
            self._direct_attr = self.steps[0].attr
            self._direct_op = _DIRECT_OPS[self.lookup]
        self._prepared = True

    def normalize(self, value: Any) -> Any:
        """Prepare a bound value: model instances become their key; None matches nothing."""
        if value is None:
            return NOTHING
        if self.lookup in ("in", "range"):
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise TypeError(f"{self.key}: expected a collection, got {value!r}")
            if self.lookup == "range":
                items = list(value)
                if len(items) != 2:
                    return NOTHING
                items = [self._key(items[0], "gte"), self._key(items[1], "lte")]
                if any(i is NOTHING for i in items):
                    return NOTHING
                return tuple(items)
            items = [self._key(v) for v in value]
            return frozenset(i for i in items if i is not NOTHING)
        if self.lookup == "isnull":
            return bool(value)
        return self._key(value)

    def _key(self, value: Any, lookup: str | None = None) -> Any:
        if value is None:
            return NOTHING
        if self.related_model is not None:
            if isinstance(value, models.Model):
                if not isinstance(value, self.related_model):
                    raise TypeError(
                        f"{self.key}: expected a {self.related_model._meta.label} instance, "
                        f"got a {value._meta.label}"
                    )
                key = getattr(value, cast(str, self.target_attname))
                return NOTHING if key is None else key
            if hasattr(value, "is_anonymous") or hasattr(value, "has_perm"):
                # An actor that is not a row (anonymous user, job, an object of its own): it
                # owns nothing, whatever key it carries (it is not that user).
                return NOTHING
        if self.lookup in _TEXT_LOOKUPS:
            return value
        if (
            isinstance(value, (float, Decimal))
            and isinstance(self.field, models.IntegerField)
            and not self.field.is_relation
        ):
            return _integral(lookup or self.lookup, value)
        # Convert as the database would (a "3" from a URL compares equal to the integer 3).
        return self.field.to_python(value)


#: The lookups a comparison with another field (``F()``) is decided with in Python.
FIELD_LOOKUPS = frozenset({"exact", "gt", "gte", "lt", "lte"})

_FIELD_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


@dataclass
class FieldPath:
    """``F("parent__priority")`` on one object: the steps to its value (None on a missing row)."""

    path: str
    steps: list[Step]
    field: models.Field[Any, Any]

    def value(self, obj: Any) -> Any:
        current = obj
        for step in self.steps:
            if current is None:
                return None
            if step.fetch:
                try:
                    current = getattr(current, step.attr)
                except ObjectDoesNotExist:
                    return None
            else:
                current = getattr(current, step.attr)
        # Converted as the database stores it (an attribute set to "50000" for a decimal).
        return None if current is None else self.field.to_python(current)

    def chains(self) -> list[list[Step]]:
        return [self.steps]


@dataclass
class FieldConstant:
    """A constant inside an ``F()`` expression (``Value(2)``, or the 2 of ``F("x") * 2``)."""

    constant: Any

    def value(self, obj: Any) -> Any:
        return self.constant

    def chains(self) -> list[list[Step]]:
        return []


@dataclass
class FieldArithmetic:
    """``F("budget__remaining") * 2``: ``+``, ``-`` or ``*`` with SQL's NULL semantics."""

    op: str
    left: Any  # FieldPath | FieldConstant | FieldArithmetic
    right: Any

    def value(self, obj: Any) -> Any:
        left = self.left.value(obj)
        if left is None:
            return None
        right = self.right.value(obj)
        if right is None:
            return None
        return _FIELD_OPERATORS[self.op](left, right)

    def chains(self) -> list[list[Step]]:
        return [*self.left.chains(), *self.right.chains()]


@dataclass
class FieldLookup:
    """A comparison with another field of the object or its forward relations (``F()``).

    Decided in Python by walking both paths (a path that meets a missing row is NULL), where
    a NULL on either side never matches, as SQL's comparison with NULL is never true. The
    filter asks the same question through a subquery (see ``Where.to_q``), so that ``~`` keeps
    exactly the rows for which the comparison does not hold, NULLs included.
    """

    key: str
    steps: list[Step]
    field: models.Field[Any, Any]
    lookup: str
    value: Any  # the Django expression, for SQL
    rhs: Any  # FieldPath | FieldConstant | FieldArithmetic

    def check(self, obj: Any, ctx: Context) -> bool:
        a = FieldPath(self.key, self.steps, self.field).value(obj)
        if a is None:
            return False
        b = self.rhs.value(obj)
        if b is None:
            return False
        return compare_values(self.lookup, a, b, "")

    def value_chains(self) -> list[list[Step]]:
        """The steps of every field the value reads (for prefetching relations)."""
        return cast("list[list[Step]]", self.rhs.chains())
