"""Rules: ``where`` (ORM lookups), ``predicate`` (Python), placeholders and their algebra.

A rule answers one question about one decision: does it hold? Every rule can be evaluated on a
single object in Python (:meth:`Rule.evaluate`), and ``where`` rules also compile to a ``Q`` for
querysets (:meth:`Rule.to_q`), with the same answer, NULLs included.

Per-object evaluation reads local fields and foreign-key ids from the object without touching
the database (``where(owner=ACTOR)`` compares ``owner_id`` with ``actor.pk``). A lookup that
crosses a to-many relation (``tenant__memberships__user=ACTOR``) costs one query, and when it
is tied to the actor, the set of matching ids is computed once and cached on the actor object
(as Django caches ``_perm_cache``), so the next decision for the same actor object is free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import operator
import reprlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, cast

from django.core.exceptions import FieldDoesNotExist, FieldError, ObjectDoesNotExist
from django.db import DatabaseError, NotSupportedError, connections, models, router, transaction
from django.db.models import F, Func, Q
from django.db.models import lookups as django_lookups
from django.db.models.expressions import Combinable

if TYPE_CHECKING:
    from .actions import Action

__all__ = [
    "ACTOR",
    "CTX",
    "Context",
    "Predicate",
    "PredicateResultError",
    "Ref",
    "Rule",
    "Where",
    "predicate",
    "unfilterable_reason",
    "where",
]

#: The attribute on an actor object where per-actor results are cached (like ``_perm_cache``).
ACTOR_CACHE_ATTR = "_clearance_cache"


# --------------------------------------------------------------------------------------------
# Decision context
# --------------------------------------------------------------------------------------------


class Context:
    """Everything a rule may look at while one decision is made.

    ``actor`` (the user or job asking), ``action`` (the :class:`~clearance.Action`), ``obj``
    (the object acted on, or None), ``now`` (an aware datetime fixed for the decision),
    ``request`` (the HTTP request, when there is one) and ``extra`` (the keyword arguments given
    to ``authorize``; ``CTX.<name>`` reads them).
    """

    __slots__ = ("action", "actor", "extra", "fresh", "memo", "now", "obj", "request")

    def __init__(
        self,
        actor: Any,
        action: Action | None,
        obj: Any = None,
        *,
        now: dt.datetime,
        request: Any = None,
        extra: Mapping[str, Any] | None = None,
        memo: dict[Any, Any] | None = None,
        fresh: bool = False,
    ) -> None:
        self.actor = actor
        self.action = action
        self.obj = obj
        self.now = now
        self.request = request
        self.extra: Mapping[str, Any] = extra if extra is not None else {}
        self.memo: dict[Any, Any] = memo if memo is not None else {}
        self.fresh = fresh

    def with_object(self, obj: Any) -> Context:
        """The same context for another object (shares the per-call memo)."""
        return Context(
            self.actor,
            self.action,
            obj,
            now=self.now,
            request=self.request,
            extra=self.extra,
            memo=self.memo,
            fresh=self.fresh,
        )

    def __repr__(self) -> str:
        return f"<Context actor={self.actor!r} action={self.action!r} obj={self.obj!r}>"


# --------------------------------------------------------------------------------------------
# Placeholders
# --------------------------------------------------------------------------------------------


class Ref:
    """A placeholder bound at decision time: ``ACTOR``, ``ACTOR.<attr path>``, ``CTX.<name>``."""

    __slots__ = ("_path", "_root")
    _root: str
    _path: tuple[str, ...]

    def __init__(self, root: str, path: tuple[str, ...] = ()) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Ref:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Ref(self._root, (*self._path, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("placeholders are immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self._root, self._path))

    @property
    def root(self) -> str:
        """``"ACTOR"`` or ``"CTX"``."""
        return cast(str, object.__getattribute__(self, "_root"))

    @property
    def path(self) -> tuple[str, ...]:
        """The attribute path after the root."""
        return cast("tuple[str, ...]", object.__getattribute__(self, "_path"))

    def resolve(self, ctx: Context) -> Any:
        """The value this placeholder stands for in ``ctx``; None if the path meets a None."""
        path = self._path
        if self._root == "ACTOR":
            value = ctx.actor
        else:
            if not path:
                raise TypeError("CTX must be followed by a name, e.g. CTX.tenant")
            name, path = path[0], path[1:]
            if name in ctx.extra:
                value = ctx.extra[name]
            elif name in _CTX_ATTRIBUTES:
                value = getattr(ctx, name)
            else:
                raise LookupError(
                    f"CTX.{name} has no value: pass {name}=... to authorize() (given: "
                    f"{', '.join(sorted(ctx.extra)) or 'nothing'})"
                )
        for attr in path:
            if value is None:
                return None
            value = getattr(value, attr)
        return value

    def __repr__(self) -> str:
        return ".".join((self._root, *self._path))

    __str__ = __repr__


_CTX_ATTRIBUTES = frozenset({"now", "request", "obj", "actor", "action"})

#: The actor of the decision (``ACTOR.pk``, ``ACTOR.profile.tenant_id``, ...).
ACTOR = Ref("ACTOR")
#: A value from the decision's context: ``CTX.<name>`` reads ``authorize(..., name=value)``.
CTX = Ref("CTX")


def contains_ref(value: Any, root: str | None = None) -> bool:
    """Whether ``value`` is, or a list/tuple/set holds, a placeholder (of ``root`` if given)."""
    if isinstance(value, Ref):
        return root is None or value.root == root
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(contains_ref(v, root) for v in value)
    return False


def _reads_object(value: Any) -> bool:
    """Whether a rule's value reads the object through the context (``CTX.obj...``)."""
    if isinstance(value, Ref):
        return value.root == "CTX" and value.path[:1] == ("obj",)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_reads_object(v) for v in value)
    return False


def _bind(value: Any, ctx: Context) -> Any:
    if isinstance(value, Ref):
        return value.resolve(ctx)
    if isinstance(value, (list, tuple, set, frozenset)) and contains_ref(value):
        return type(value)(_bind(v, ctx) for v in value)
    return value


def _show(value: Any) -> str:
    """A deterministic, readable rendering of a rule's value."""
    if isinstance(value, Ref):
        return repr(value)
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(_show(v) for v in value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, models.Model):
        return f"<{value._meta.label} pk={value.pk!r}>"
    return repr(value)


# --------------------------------------------------------------------------------------------
# Rule algebra
# --------------------------------------------------------------------------------------------


class RuleNotFilterable(Exception):
    """Internal: a rule (``.rule``) cannot become SQL."""

    def __init__(self, rule: Rule, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(detail)


class Rule:
    """Base class of every rule. Compose rules with ``&``, ``|`` and ``~``."""

    #: Whether evaluating this rule reads the object (False: it can be decided once per call).
    uses_object: bool = True
    _precedence = 3

    def evaluate(self, ctx: Context) -> bool:
        """Decide the rule for ``ctx.obj`` in Python."""
        raise NotImplementedError

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        """Compile the rule to a ``Q`` on ``model`` (or a constant True/False)."""
        raise NotImplementedError

    def leaves(self) -> Iterator[Rule]:
        """Every ``where`` and ``predicate`` inside this rule."""
        yield self

    @property
    def filterable(self) -> bool:
        """Whether :meth:`to_q` can compile this rule (nothing inside reads the object)."""
        return unfilterable_reason(self) is None

    def __and__(self, other: Rule) -> Rule:
        return All(self, _as_rule(other))

    def __or__(self, other: Rule) -> Rule:
        return Any_(self, _as_rule(other))

    def __invert__(self) -> Rule:
        return Not(self)

    def _wrapped(self, parent_precedence: int) -> str:
        text = str(self)
        return f"({text})" if self._precedence < parent_precedence else text


def unfilterable_reason(rule: Rule) -> str | None:
    """Why ``rule`` has no SQL form, or None: a predicate that reads the object, or a
    ``where()`` whose value reads it through ``CTX.obj`` (there is no object in a filter).
    """
    for leaf in rule.leaves():
        if isinstance(leaf, Predicate) and leaf.uses_object:
            return f"predicate {leaf.name!r} reads the object and has no SQL form"
        if isinstance(leaf, Where) and leaf.object_keys:
            key = leaf.object_keys[0]
            return (
                f"where({key}={_show(leaf.lookups[key])}) reads the object through CTX.obj, "
                "and a filter has no object"
            )
    return None


def _as_rule(value: Any) -> Rule:
    if isinstance(value, Rule):
        return value
    if callable(value):
        return Predicate(value)
    raise TypeError(f"expected a rule (where(...), a predicate), got {value!r}")


class All(Rule):
    """Every rule holds (``a & b``). Evaluation stops at the first that does not."""

    _precedence = 1

    def __init__(self, *rules: Rule) -> None:
        flat: list[Rule] = []
        for rule in rules:
            flat.extend(rule.rules if isinstance(rule, All) else (rule,))
        self.rules: tuple[Rule, ...] = tuple(flat)
        self.uses_object = any(r.uses_object for r in self.rules)

    def evaluate(self, ctx: Context) -> bool:
        return all(rule.evaluate(ctx) for rule in self.rules)

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        result: Q | bool = True
        for rule in self.rules:
            q = rule.to_q(ctx, model)
            if q is False:
                return False
            if q is True:
                continue
            result = q if result is True else cast(Q, result) & q
        return result

    def leaves(self) -> Iterator[Rule]:
        for rule in self.rules:
            yield from rule.leaves()

    def __str__(self) -> str:
        return " & ".join(r._wrapped(2) for r in self.rules)


class Any_(Rule):
    """At least one rule holds (``a | b``). Evaluation stops at the first that does."""

    _precedence = 0

    def __init__(self, *rules: Rule) -> None:
        flat: list[Rule] = []
        for rule in rules:
            flat.extend(rule.rules if isinstance(rule, Any_) else (rule,))
        self.rules: tuple[Rule, ...] = tuple(flat)
        self.uses_object = any(r.uses_object for r in self.rules)

    def evaluate(self, ctx: Context) -> bool:
        return any(rule.evaluate(ctx) for rule in self.rules)

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        result: Q | bool = False
        for rule in self.rules:
            q = rule.to_q(ctx, model)
            if q is True:
                return True
            if q is False:
                continue
            result = q if result is False else cast(Q, result) | q
        return result

    def leaves(self) -> Iterator[Rule]:
        for rule in self.rules:
            yield from rule.leaves()

    def __str__(self) -> str:
        return " | ".join(r._wrapped(1) for r in self.rules)


class Not(Rule):
    """The rule does not hold (``~a``)."""

    _precedence = 2

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.uses_object = rule.uses_object

    def evaluate(self, ctx: Context) -> bool:
        return not self.rule.evaluate(ctx)

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        q = self.rule.to_q(ctx, model)
        if isinstance(q, bool):
            return not q
        return ~q

    def leaves(self) -> Iterator[Rule]:
        return self.rule.leaves()

    def __invert__(self) -> Rule:
        return self.rule

    def __str__(self) -> str:
        return "~" + self.rule._wrapped(3)


# --------------------------------------------------------------------------------------------
# Predicates
# --------------------------------------------------------------------------------------------


class Predicate(Rule):
    """A rule written as a Python function of one argument, the :class:`Context`.

    A predicate that does not read the object (``uses_object=False``) is decided once per
    ``authorized()`` call and folds to all-or-nothing; one that reads it cannot be filtered.
    """

    def __init__(
        self, fn: Callable[[Context], Any], *, uses_object: bool = True, name: str | None = None
    ) -> None:
        if not callable(fn):
            raise TypeError(f"predicate() needs a callable, got {fn!r}")
        self.fn = fn
        self.uses_object = uses_object
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        functools.update_wrapper(self, fn)

    def __call__(self, ctx: Context) -> bool:
        return self._result(self.fn(ctx))

    def evaluate(self, ctx: Context) -> bool:
        if self.uses_object:
            value = self.fn(ctx)
            if value is True or value is False:
                return value
            return self._result(value)
        key = ("predicate", self)
        memo = ctx.memo
        if key not in memo:
            memo[key] = self._result(self.fn(ctx.with_object(_HiddenObject(self.name))))
        return cast(bool, memo[key])

    def _result(self, value: Any) -> bool:
        """``value`` when it is True or False; anything else raises (the rule then denies).

        A reason string, a number or a non-empty queryset is truthy, and a rule that returned
        one by mistake would allow. Gate 1 insists on ``has_perm(...) is True``; so do rules.
        """
        if value is True or value is False:
            return value
        for watcher in tuple(predicate_result_watchers):
            watcher(self, value)
        raise PredicateResultError(
            f"predicate {self.name!r} returned {describe_result(value)}, not True or False: "
            "a rule holds only when it returns exactly True"
        )

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        if self.uses_object:
            raise RuleNotFilterable(
                self, f"predicate {self.name!r} reads the object and has no SQL form"
            )
        return self.evaluate(ctx)

    def __str__(self) -> str:
        return f"{self.name}()"


class PredicateResultError(TypeError):
    """A predicate returned something other than True or False; the rule denies."""


#: Called with (predicate, value) whenever a predicate returns something other than True or
#: False, before the rule denies; ``clearance.testing`` and the pytest plugin listen here.
predicate_result_watchers: list[Callable[[Predicate, Any], None]] = []


def describe_result(value: Any) -> str:
    """A short rendering of what a predicate returned, with its type; never runs a query."""
    if isinstance(value, models.QuerySet):
        text = f"<QuerySet of {value.model._meta.label}>"
    elif isinstance(value, models.Model):
        text = f"<{value._meta.label} pk={value.pk!r}>"
    else:
        text = reprlib.repr(value)
    return f"{text} (a {type(value).__name__})"


class _HiddenObject:
    """``ctx.obj`` for a predicate declared ``uses_object=False``: using it raises.

    Such a predicate is decided once per call: once for a whole queryset, where there is no
    object, and once for a page of ``authorize_many``. One that read the object anyway would
    make the filter apply its answer for no object to every row (``ctx.obj is None or ...``
    listed every row), wider than ``authorize()``. An error instead denies on both sides.
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _refuse(self) -> NoReturn:
        raise TypeError(
            f"predicate {object.__getattribute__(self, '_name')!r} is declared "
            "uses_object=False but reads ctx.obj: drop uses_object=False (authorized() then "
            "raises NotFilterable) or write the condition with where()"
        )

    def __getattr__(self, name: str) -> Any:
        self._refuse()

    def __bool__(self) -> bool:
        self._refuse()

    def __eq__(self, other: object) -> bool:
        self._refuse()

    def __hash__(self) -> int:
        self._refuse()

    def __repr__(self) -> str:
        return "<no object: the predicate is declared uses_object=False>"


def predicate(
    fn: Callable[[Context], Any] | None = None,
    *,
    uses_object: bool = True,
    name: str | None = None,
) -> Any:
    """Wrap a function of ``ctx`` as a rule; usable bare (``@predicate``) or called.

    ``uses_object=False`` declares that the function does not read ``ctx.obj``, which lets
    ``authorized()`` decide it once and filter the rest in SQL.
    """
    if fn is None:
        return lambda f: Predicate(f, uses_object=uses_object, name=name)
    return Predicate(fn, uses_object=uses_object, name=name)


# --------------------------------------------------------------------------------------------
# where(): ORM lookups
# --------------------------------------------------------------------------------------------

_PY_LOOKUPS = frozenset(
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

_NONE_OK = frozenset({"exact", "iexact"})
_PLAIN_LOOKUPS = frozenset({"exact", "in", "gt", "gte", "lt", "lte", "range"})
_DIRECT_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
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


def _compare(lookup: str, a: Any, b: Any, alias: str) -> bool:
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


@dataclass
class _Step:
    """Walk one attribute from an object: a local attribute or a forward relation to fetch."""

    attr: str
    fetch: bool  # True: follow a forward relation (may query unless cached)


@dataclass
class _LocalLookup:
    """A lookup decided from the object's own attributes (and forward relations)."""

    key: str
    steps: list[_Step]
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
                value = self.normalize(_bind(value, ctx))
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
                return _compare(self.lookup, a, value, "")
            except TypeError:
                # An attribute set but not converted yet ("50000" for a decimal): compared as
                # the database will store it.
                return _compare(self.lookup, self.field.to_python(a), value, "")
        # A text lookup: decided as the database the object comes from decides it.
        alias = getattr(getattr(obj, "_state", None), "db", None) or router.db_for_read(
            type(obj) if obj is not None else self.field.model
        )
        return _compare(self.lookup, a, value, alias)

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
            items = [self._key(v) for v in value]
            if self.lookup == "range":
                if len(items) != 2 or any(i is NOTHING for i in items):
                    return NOTHING
                return tuple(items)
            return frozenset(i for i in items if i is not NOTHING)
        if self.lookup == "isnull":
            return bool(value)
        return self._key(value)

    def _key(self, value: Any) -> Any:
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
                # An actor that is not a row (anonymous user, job): it owns nothing.
                key = getattr(value, "pk", None)
                return NOTHING if key is None else key
        if self.lookup in _TEXT_LOOKUPS:
            return value
        # Convert as the database would (a "3" from a URL compares equal to the integer 3).
        return self.field.to_python(value)


@dataclass(eq=False)  # hashed by identity: the group itself keys the caches
class _ManyGroup:
    """Lookups that cross a to-many relation from the same single-valued prefix.

    Decided as "the anchor (the object, or the row its foreign keys lead to) is among the rows
    of ``anchor_model`` matching the lookups", which is one query, or a set cached on the actor.
    """

    prefix_steps: list[_Step]
    anchor_attr: str  # attribute on the last object of the prefix holding the anchor value
    anchor_model: type[models.Model]
    anchor_field: str
    prefix: str  # ORM path of the prefix ("" for the object itself)
    lookups: dict[str, Any] = field(default_factory=dict)
    # actor_tied, computed on the first check (the lookups are complete by then).
    _tied: bool | None = field(default=None, init=False, repr=False)
    # The lookup's key when the group is one lookup whose value is ACTOR itself (the common
    # case: a warm check is then one set membership test), "" when not; None until computed.
    _actor_only: str | None = field(default=None, init=False, repr=False)

    @property
    def actor_tied(self) -> bool:
        return any(
            contains_ref(v, "ACTOR") and k.rsplit("__", 1)[-1] not in _NOT_BOUNDING
            for k, v in self.lookups.items()
        )

    def _actor_key(self, bound: dict[str, Any]) -> tuple[Any, ...]:
        """The key of this group's answer in the actor's cache.

        The bound values in the group's own lookup order (the keys never change), frozen only
        when a value cannot be hashed as it is.
        """
        values = tuple(bound.values())
        try:
            hash(values)
        except TypeError:
            return (self, freeze(bound))
        return (self, values)

    def bound(self, ctx: Context) -> dict[str, Any] | None:
        out = {}
        for key, value in self.lookups.items():
            bound = _bind(value, ctx)
            if isinstance(value, Ref):
                if bound is None:
                    return None  # matches nothing
                bound = _row_key(bound)
                if bound is None:
                    return None
            elif isinstance(value, (list, tuple, set, frozenset)) and contains_ref(value):
                # watchers__in=[ACTOR, CTX.user]: as for a local "in", a placeholder that is
                # None or not a row (an anonymous user) is no candidate; none left, no match.
                items = [
                    _row_key(_bind(raw, ctx)) if isinstance(raw, Ref) else raw for raw in value
                ]
                bound = [item for item in items if item is not None]
                if not bound:
                    return None
            out[key] = bound
        return out

    def matching(self, bound: dict[str, Any]) -> models.QuerySet[Any]:
        manager = self.anchor_model._base_manager
        return cast("models.QuerySet[Any]", manager.filter(**bound).values(self.anchor_field))

    def to_q(self, ctx: Context) -> Q | bool:
        bound = self.bound(ctx)
        if bound is None:
            return False
        target = f"{self.prefix}__in" if self.prefix else "pk__in"
        return Q(**{target: self.matching(bound)})

    def anchor(self, obj: Any) -> Any:
        current = obj
        for step in self.prefix_steps:
            if current is None:
                return None
            try:
                current = getattr(current, step.attr)
            except ObjectDoesNotExist:
                return None
        if current is None:
            return None
        return getattr(current, self.anchor_attr)

    def _only_actor_key(self) -> str:
        if len(self.lookups) != 1 or not self.actor_tied:
            return ""
        ((key, value),) = self.lookups.items()
        if isinstance(value, Ref) and value.root == "ACTOR" and not value.path:
            return key
        return ""

    def check(self, obj: Any, ctx: Context) -> bool:
        anchor = self.anchor(obj) if self.prefix_steps else getattr(obj, self.anchor_attr)
        if anchor is None:
            return False
        only = self._actor_only
        if only is None:
            only = self._actor_only = self._only_actor_key()
        actor = ctx.actor
        if only and not ctx.fresh and actor is not None:
            # What the general path below does for bound == {only: actor's pk}, same cache key.
            pk = _row_key(actor)
            if pk is None:
                return False
            cache = getattr(actor, ACTOR_CACHE_ATTR, None)
            if cache is None:
                cache = _actor_cache(actor)
            key = (self, (pk,))
            ids = cache.get(key)
            if ids is None:
                ids = frozenset(self.matching({only: pk}).values_list(self.anchor_field, flat=True))
                cache[key] = ids
            return anchor in ids
        bound = self.bound(ctx)
        if bound is None:
            return False
        tied = self._tied
        if tied is None:
            tied = self._tied = self.actor_tied
        if tied and not ctx.fresh and ctx.actor is not None:
            cache = _actor_cache(ctx.actor)
            key = self._actor_key(bound)
            ids = cache.get(key)
            if ids is None:
                ids = frozenset(self.matching(bound).values_list(self.anchor_field, flat=True))
                cache[key] = ids
            return anchor in ids
        memo_key = ("many", self, freeze(bound))
        batch = ctx.memo.get(memo_key)
        if batch is not None:
            domain, hits = batch
            if anchor in domain:
                return anchor in hits
        single = (memo_key, anchor)
        if single not in ctx.memo:
            ctx.memo[single] = self.matching(bound).filter(**{self.anchor_field: anchor}).exists()
        return cast(bool, ctx.memo[single])

    def prefetch(self, objects: Iterable[Any], ctx: Context) -> None:
        """Answer this group for many objects with one query (used by ``authorize_many``)."""
        bound = self.bound(ctx)
        if bound is None:
            return
        if self.actor_tied and not ctx.fresh and ctx.actor is not None:
            self.check_any(ctx, bound)
            return
        anchors = {a for a in (self.anchor(o) for o in objects) if a is not None}
        if not anchors:
            return
        hits = frozenset(
            self.matching(bound)
            .filter(**{f"{self.anchor_field}__in": anchors})
            .values_list(self.anchor_field, flat=True)
        )
        self.remember(ctx, bound, frozenset(anchors), hits)

    def remember(
        self, ctx: Context, bound: dict[str, Any], anchors: frozenset[Any], hits: frozenset[Any]
    ) -> None:
        """Record this group's answer for ``anchors`` (``hits`` matched) for this decision.

        ``check`` then answers for those anchors without a query. ``perform()`` uses it to hand
        over the answer it read in the statement that locks the row.
        """
        ctx.memo[("many", self, freeze(bound))] = (anchors, hits)

    def check_any(self, ctx: Context, bound: dict[str, Any]) -> None:
        cache = _actor_cache(ctx.actor)
        key = self._actor_key(bound)
        if key not in cache:
            cache[key] = frozenset(self.matching(bound).values_list(self.anchor_field, flat=True))


_NOT_BOUNDING = frozenset({"gt", "gte", "lt", "lte", "range", "contains", "icontains", "isnull"})


def _row_key(value: Any) -> Any:
    if isinstance(value, models.Model):
        return value.pk
    if hasattr(value, "is_anonymous") or hasattr(value, "has_perm"):
        return getattr(value, "pk", None)
    return value


def freeze(value: Any) -> Any:
    """A hashable stand-in for a lookup's bound value (model instances by label and pk)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(freeze(v) for v in value)
    if isinstance(value, models.Model):
        return (value._meta.label, value.pk)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _actor_cache(actor: Any) -> dict[Any, Any]:
    # getattr, not __dict__: request.user is a SimpleLazyObject that forwards attributes.
    cache = getattr(actor, ACTOR_CACHE_ATTR, None)
    if cache is None:
        cache = {}
        # An actor that takes no attributes gets a cache for this call only.
        with contextlib.suppress(AttributeError):
            setattr(actor, ACTOR_CACHE_ATTR, cache)
    return cast("dict[Any, Any]", cache)


def clear_actor_cache(actor: Any) -> None:
    """Forget what was cached on ``actor`` (to-many results); the next decision re-queries."""
    with contextlib.suppress(AttributeError):
        delattr(actor, ACTOR_CACHE_ATTR)


@dataclass
class _DbLookup:
    """A lookup Python cannot decide (a transform, an expression): asked of the database."""

    key: str
    value: Any
    joins: bool = False  # the key crosses a forward relation

    def check(self, obj: Any, ctx: Context) -> bool:
        if obj.pk is None:
            raise ValueError(
                f"where({self.key}=...) can only be decided in the database, and the object "
                "is not saved"
            )
        q = self.q(ctx)
        if isinstance(q, bool):
            return q
        batch = ctx.memo.get(("db", id(self)))
        if batch is not None and batch[0] == q and obj.pk in batch[1]:
            return obj.pk in batch[2]
        manager = type(obj)._base_manager
        return bool(manager.filter(pk=obj.pk).filter(q).exists())

    def prefetch(self, objects: Iterable[Any], ctx: Context) -> None:
        """Decide this lookup for many saved objects with one query (``authorize_many``)."""
        objs = [obj for obj in objects if obj.pk is not None]
        q = self.q(ctx)
        if not objs or isinstance(q, bool):
            return
        pks = frozenset(obj.pk for obj in objs)
        manager = type(objs[0])._base_manager
        hits = frozenset(manager.filter(pk__in=pks).filter(q).values_list("pk", flat=True))
        ctx.memo[("db", id(self))] = (q, pks, hits)

    def q(self, ctx: Context) -> Q | bool:
        value = _bind(self.value, ctx)
        if isinstance(self.value, Ref):
            value = _row_key(value)
            if value is None:
                return False
        return Q(**{self.key: value})


@dataclass
class _Plan:
    local: list[Any]  # _LocalLookup | _DbLookup
    groups: list[_ManyGroup]


class Where(Rule):
    """A rule made of Django ORM lookups; see :func:`where`."""

    def __init__(self, **lookups: Any) -> None:
        if not lookups:
            raise TypeError("where() needs at least one lookup, e.g. where(owner=ACTOR)")
        for key, value in lookups.items():
            last = key.rsplit("__", 1)[-1]
            if value is None and "__" in key and last in _PY_LOOKUPS and last not in _NONE_OK:
                raise ValueError(f"where({key}=None): None only works with exact or iexact")
        self.lookups: dict[str, Any] = dict(lookups)
        self.uses_object = True
        #: The lookups whose value reads the object through ``CTX.obj`` (no SQL form).
        self.object_keys: tuple[str, ...] = tuple(
            key for key, value in lookups.items() if _reads_object(value)
        )
        self._plans: dict[type[models.Model], _Plan] = {}

    # -- compilation ---------------------------------------------------------------------

    def plan(self, model: type[models.Model]) -> _Plan:
        """The compiled evaluation plan of this rule on ``model`` (cached per model)."""
        try:
            return self._plans[model]
        except KeyError:
            pass
        local: list[Any] = []
        groups: dict[str, _ManyGroup] = {}
        for key, value in self.lookups.items():
            compiled = _compile_lookup(model, key, value)
            if isinstance(compiled, _ManyGroup):
                group = groups.get(compiled.prefix)
                if group is None:
                    groups[compiled.prefix] = group = compiled
                else:
                    group.lookups.update(compiled.lookups)
            else:
                local.append(compiled)
        plan = _Plan(local, list(groups.values()))
        self._plans[model] = plan
        return plan

    # -- evaluation ----------------------------------------------------------------------

    def evaluate(self, ctx: Context) -> bool:
        obj = ctx.obj
        if obj is None:
            raise TypeError(f"{self} needs an object to decide on, and none was given")
        plan = self._plans.get(type(obj)) or self.plan(type(obj))
        for lookup in plan.local:
            if not lookup.check(obj, ctx):
                return False
        for group in plan.groups:  # noqa: SIM110 (a loop costs less than all() and a generator)
            if not group.check(obj, ctx):
                return False
        return True

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        if self.object_keys:
            # CTX.obj is None in a filter: binding it would match nothing, and a negation
            # everything, wider than the per-object check.
            raise RuleNotFilterable(self, cast(str, unfilterable_reason(self)))
        plan = self.plan(model)
        result: Q | bool = True
        for lookup in plan.local:
            if isinstance(lookup, _DbLookup):
                q = lookup.q(ctx)
                if lookup.joins and isinstance(q, Q):
                    # Same join hazard as in _first_hop_subquery; the value may be an
                    # expression on this model, so the subquery is over this model itself.
                    q = Q(pk__in=model._base_manager.filter(q).values("pk"))
            else:
                value = _bound_value(lookup, ctx)
                if value is NOTHING:
                    q = False
                elif any(step.fetch for step in lookup.steps):
                    first, rest = lookup.key.split("__", 1)
                    q = _first_hop_subquery(
                        model,
                        first,
                        _lookup_q(lookup, rest, value),
                        missing=_matches_missing(lookup, value),
                    )
                else:
                    q = _lookup_q(lookup, lookup.key, value)
            if q is False:
                return False
            if q is not True:
                result = q if result is True else cast(Q, result) & q
        for group in plan.groups:
            q = group.to_q(ctx)
            if isinstance(q, Q) and group.prefix_steps:
                ((key, value),) = cast("list[tuple[str, Any]]", q.children)
                first, rest = key.split("__", 1)
                q = _first_hop_subquery(model, first, Q(**{rest: value}))
            if q is False:
                return False
            if q is not True:
                result = q if result is True else cast(Q, result) & q
        return result

    def groups(self, model: type[models.Model]) -> list[_ManyGroup]:
        """The to-many lookup groups of this rule on ``model``."""
        return self.plan(model).groups

    def db_lookups(self, model: type[models.Model]) -> list[_DbLookup]:
        """The lookups of this rule on ``model`` that only the database can decide."""
        return [lookup for lookup in self.plan(model).local if isinstance(lookup, _DbLookup)]

    def related_paths(self, model: type[models.Model]) -> set[str]:
        """The forward relations that deciding this rule on one object follows (``owner``)."""
        plan = self.plan(model)
        steps = [getattr(lookup, "steps", []) for lookup in plan.local]
        steps += [group.prefix_steps for group in plan.groups]
        paths = {"__".join(step.attr for step in chain if step.fetch) for chain in steps}
        paths.discard("")
        return paths

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={_show(v)}" for k, v in self.lookups.items())
        return f"where({inner})"


def _matches_missing(lookup: _LocalLookup, value: Any) -> bool:
    """Whether the bound lookup holds where its path meets no row (``IS NULL`` semantics).

    ``where(owner__last_login=None)`` and ``where(owner__last_login__isnull=True)`` hold for a
    document without an owner, in Django's ``filter()`` (a LEFT JOIN meets NULL) and in the
    per-object check (a path that meets None is None).
    """
    if lookup.lookup == "isnull":
        return value is True
    return value is None and lookup.lookup in _NONE_OK


def _first_hop_subquery(
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


def _bound_value(lookup: _LocalLookup, ctx: Context) -> Any:
    """The lookup's value bound for ``ctx``, ready for a ``Q``; NOTHING when it matches nothing."""
    value = lookup.value
    if isinstance(value, Ref) or contains_ref(value):
        value = lookup.normalize(_bind(value, ctx))
        if value is NOTHING:
            return NOTHING
        if lookup.lookup == "in" and not value:
            return NOTHING
        if isinstance(value, frozenset):
            value = sorted(value, key=repr)
    return value


def _lookup_q(lookup: _LocalLookup, key: str, value: Any) -> Q:
    """``Q(key=value)``; a text range compares by code point, as Python does (see
    :class:`CodePointOrder`), and holds for no NULL, under a negation too.
    """
    if not lookup.collated:
        return Q(**{key: value})
    path = key.rsplit("__", 1)[0]
    compare = _RANGE_LOOKUP_CLASSES[lookup.lookup](CodePointOrder(F(path)), value)
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

_RANGE_LOOKUP_CLASSES: dict[str, Any] = {
    "gt": django_lookups.GreaterThan,
    "gte": django_lookups.GreaterThanOrEqual,
    "lt": django_lookups.LessThan,
    "lte": django_lookups.LessThanOrEqual,
    "range": django_lookups.Range,
}


def _compile_lookup(model: type[models.Model], key: str, value: Any) -> Any:
    parts = key.split("__")
    opts = model._meta
    steps: list[_Step] = []
    path: list[str] = []
    i = 0
    while i < len(parts):
        name = parts[i]
        if name == "pk":
            name = cast(models.Field[Any, Any], opts.pk).name
        try:
            fld = opts.get_field(name)
        except FieldDoesNotExist:
            if i == 0:
                raise FieldError(f"where({key}=...): {opts.label} has no field {name!r}") from None
            break
        is_many = fld.many_to_many or fld.one_to_many or (fld.one_to_one and not fld.concrete)
        if fld.is_relation and is_many:
            # Everything from here on is asked of the database, anchored at the prefix: the
            # object itself, or the row its chain of foreign keys leads to.
            rest_key = "__".join(parts[i:])
            if not path:
                return _ManyGroup(
                    prefix_steps=[],
                    anchor_attr="pk",
                    anchor_model=opts.model,
                    anchor_field="pk",
                    prefix="",
                    lookups={rest_key: value},
                )
            fk = _forward_field(model, path)
            return _ManyGroup(
                prefix_steps=steps[:-1],
                anchor_attr=fk.attname,
                anchor_model=cast(type[models.Model], fk.related_model),
                anchor_field=fk.target_field.name,
                prefix="__".join(path),
                lookups={rest_key: value},
            )
        if fld.is_relation:
            rest = parts[i + 1 :]
            target = fld.target_field  # type: ignore[union-attr]
            if not rest or (len(rest) == 1 and rest[0] in _PY_LOOKUPS):
                lookup = rest[0] if rest else "exact"
                steps.append(_Step(fld.attname, fetch=False))  # type: ignore[union-attr]
                return _local(key, steps, target, lookup, value, fld.related_model)
            if rest[0] in (target.name, "pk" if target.primary_key else None) and (
                len(rest) == 1 or (len(rest) == 2 and rest[1] in _PY_LOOKUPS)
            ):
                lookup = rest[1] if len(rest) == 2 else "exact"
                steps.append(_Step(fld.attname, fetch=False))  # type: ignore[union-attr]
                return _local(key, steps, target, lookup, value, None)
            steps.append(_Step(fld.name, fetch=True))
            path.append(fld.name)
            opts = fld.related_model._meta  # type: ignore[union-attr]
            i += 1
            continue
        rest = parts[i + 1 :]
        if not rest or (len(rest) == 1 and rest[0] in _PY_LOOKUPS):
            steps.append(_Step(fld.attname, fetch=False))  # type: ignore[union-attr]
            return _local(key, steps, fld, rest[0] if rest else "exact", value, None)
        break
    # A transform, an unknown lookup, or an expression: the database decides.
    _validate_db_lookup(model, key)
    return _DbLookup(key, value, joins=bool(path))


def _forward_field(model: type[models.Model], path: list[str]) -> Any:
    opts = model._meta
    fld: Any = None
    for name in path:
        fld = opts.get_field(name)
        opts = fld.related_model._meta
    return fld


def _validate_db_lookup(model: type[models.Model], key: str) -> None:
    try:
        model._base_manager.filter(**{key: _ProbeValue()}).query  # noqa: B018
    except FieldError:
        raise
    except Exception:  # value errors from the probe are fine: the path resolved
        return


class _ProbeValue:
    pass


def _local(
    key: str,
    steps: list[_Step],
    fld: Any,
    lookup: str,
    value: Any,
    related_model: Any,
) -> _LocalLookup | _DbLookup:
    if isinstance(value, (Combinable, models.QuerySet)):
        return _DbLookup(key, value, joins=any(step.fetch for step in steps))
    compiled = _LocalLookup(
        key=key,
        steps=steps,
        field=fld,
        lookup=lookup,
        value=value,
        related_model=related_model,
        target_attname=fld.attname if related_model is not None else None,
        dynamic=contains_ref(value),
        collated=lookup in _RANGE_LOOKUP_CLASSES
        and isinstance(fld, (models.CharField, models.TextField)),
    )
    if not compiled.dynamic:
        if value is None:
            if lookup not in ("exact", "iexact"):
                raise ValueError(f"where({key}=None): None only works with exact or iexact")
            compiled.value = None
        elif lookup in ("in", "range"):
            normalized = compiled.normalize(value)
            if normalized is NOTHING:
                normalized = frozenset() if lookup == "in" else NOTHING
            compiled.value = normalized
        elif lookup == "isnull":
            compiled.value = bool(value)
        else:
            compiled.value = compiled.normalize(value)
    return compiled


def where(**lookups: Any) -> Where:
    """A rule written as Django ORM lookups, e.g. ``where(tenant__memberships__user=ACTOR)``.

    Values may be literals or placeholders (``ACTOR``, ``ACTOR.<attr>``, ``CTX.<name>``). A
    placeholder that resolves to None matches nothing (an anonymous actor owns no invoice); a
    literal None means ``IS NULL``. Lookups that cross the same to-many relation in one
    ``where()`` must hold for the same related row, as in one ``filter()`` call.
    """
    return Where(**lookups)
