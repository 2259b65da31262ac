"""The rule tree and its algebra: :class:`Rule`, ``&`` (:class:`All`), ``|`` (:class:`Any_`),
``~`` (:class:`Not`), and the Python leaf, :func:`predicate`.

Every rule answers in Python (:meth:`Rule.evaluate`) and, when nothing inside reads the object,
as a ``Q`` (:meth:`Rule.to_q`); :func:`unfilterable_reason` says why a rule has no SQL form.
A plain function combined with a rule becomes a predicate, so the predicate lives here too.
"""

from __future__ import annotations

import functools
import reprlib
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import Q

from .context import Bind, Checker, Context


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

    def checker(self, model: type[models.Model]) -> Checker:
        """A function ``check(obj, ctx)`` giving what :meth:`evaluate` gives when ``obj`` (which
        is ``ctx.obj``) is an instance of exactly ``model``. The engine's compiled plans call
        it; rules override it with a shorter road to the same answer."""
        evaluate = self.evaluate

        def check(obj: Any, ctx: Context) -> bool:
            return evaluate(ctx)

        return check

    def python_lines(self, model: type[models.Model], bind: Bind) -> list[str] | None:
        """Statements that set ``ok`` to what :meth:`checker` gives, for the engine's compiled
        plans (variables ``obj``, ``actor`` and ``ctx``; ``bind(value)`` names a constant), or
        None when the rule has no such form. A ``TypeError`` they raise means "ask the checker".
        """
        return None

    def leaves(self) -> Iterator[Rule]:
        """Every ``where`` and ``predicate`` inside this rule."""
        yield self

    def no_sql_reason(self) -> str | None:
        """Why this leaf has no SQL form (it reads the object), or None; see
        :func:`unfilterable_reason` for a whole rule."""
        return None

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

    def through(self, path: str) -> Rule:
        """This rule, declared for a related model, used on a model that reaches it by ``path``.

        ``can_read.through("repository")`` on ``Issue``: every lookup of a ``where()`` is
        re-rooted under the path (``owner=ACTOR`` becomes ``repository__owner=ACTOR``),
        ``&``, ``|`` and ``~`` are kept, and a predicate follows the path when it declares
        how (``predicate(reach=True)``). A rule that cannot be re-rooted raises ``TypeError``.
        """
        raise TypeError(f"{type(self).__name__} rules cannot be used through a relation")

    def _wrapped(self, parent_precedence: int) -> str:
        text = str(self)
        return f"({text})" if self._precedence < parent_precedence else text


def unfilterable_reason(rule: Rule) -> str | None:
    """Why ``rule`` has no SQL form, or None: a predicate that reads the object, or a
    ``where()`` whose value reads it through ``CTX.obj`` (there is no object in a filter).
    """
    for leaf in rule.leaves():
        reason = leaf.no_sql_reason()
        if reason is not None:
            return reason
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

    def through(self, path: str) -> Rule:
        return All(*(rule.through(path) for rule in self.rules))

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

    def through(self, path: str) -> Rule:
        return Any_(*(rule.through(path) for rule in self.rules))

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

    def checker(self, model: type[models.Model]) -> Checker:
        inner = self.rule.checker(model)

        def check(obj: Any, ctx: Context) -> bool:
            return not inner(obj, ctx)

        return check

    def python_lines(self, model: type[models.Model], bind: Bind) -> list[str] | None:
        inner = self.rule.python_lines(model, bind)
        return None if inner is None else [*inner, "ok = not ok"]

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        q = self.rule.to_q(ctx, model)
        if isinstance(q, bool):
            return not q
        return ~q

    def leaves(self) -> Iterator[Rule]:
        return self.rule.leaves()

    def __invert__(self) -> Rule:
        return self.rule

    def through(self, path: str) -> Rule:
        return Not(self.rule.through(path))

    def __str__(self) -> str:
        return "~" + self.rule._wrapped(3)


class Predicate(Rule):
    """A rule written as a Python function of one argument, the :class:`Context`.

    A predicate that does not read the object (``uses_object=False``) is decided once per
    ``authorized()`` call and folds to all-or-nothing; one that reads it cannot be filtered.
    """

    def __init__(
        self,
        fn: Callable[[Context], Any],
        *,
        uses_object: bool = True,
        name: str | None = None,
        reach: bool | Callable[[Any, str], Any] = False,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"predicate() needs a callable, got {fn!r}")
        if not (reach is True or reach is False or callable(reach)):
            raise TypeError(f"predicate(reach=...) takes True or a function, got {reach!r}")
        self.fn = fn
        self.uses_object = uses_object
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        #: How :meth:`through` reaches the related object: False (it cannot), True (by
        #: attributes, ``"repository__owner"`` reads ``obj.repository.owner``) or a function
        #: ``(obj, path) -> related object``.
        self.reach = reach
        functools.update_wrapper(self, fn)

    def through(self, path: str) -> Rule:
        """This predicate on the object ``path`` leads to (see :meth:`Rule.through`).

        A predicate that does not read the object is the same rule on every model. One that
        reads it follows the path only when it declares how (``reach``); where the path meets
        no object, it does not hold.
        """
        check_path(path)
        if not self.uses_object:
            return self
        if self.reach is False:
            raise TypeError(
                f"predicate {self.name!r} reads the object and does not declare how to reach "
                f"it through {path!r}: declare it with predicate(reach=True) (it then reads "
                "the object at the end of the path) or predicate(reach=fn), fn(obj, path) "
                "returning the related object"
            )
        return ThroughPredicate(self, path)

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

    def no_sql_reason(self) -> str | None:
        if self.uses_object:
            return f"predicate {self.name!r} reads the object and has no SQL form"
        return None

    def to_q(self, ctx: Context, model: type[models.Model]) -> Q | bool:
        if self.uses_object:
            raise RuleNotFilterable(
                self, f"predicate {self.name!r} reads the object and has no SQL form"
            )
        return self.evaluate(ctx)

    def __str__(self) -> str:
        return f"{self.name}()"


def check_path(path: str) -> None:
    """Refuse a relation path that is not a non-empty ``a__b`` chain of names."""
    if not isinstance(path, str) or not path or any(not part for part in path.split("__")):
        raise TypeError(f"through() needs a relation path such as 'repository', got {path!r}")


def follow(obj: Any, path: str) -> Any:
    """The object at the end of ``path`` from ``obj``, by attributes; None where it meets none."""
    current = obj
    for name in path.split("__"):
        if current is None:
            return None
        try:
            current = getattr(current, name)
        except ObjectDoesNotExist:
            return None
    return current


class ThroughPredicate(Predicate):
    """A predicate decided on the object its ``path`` leads to (``Predicate.through``).

    ``fn`` stays the declared function (the snapshot, the checks and the testing helpers read
    its code); the object it sees is the related one.
    """

    def __init__(self, inner: Predicate, path: str) -> None:
        super().__init__(inner.fn, uses_object=True, name=inner.name, reach=inner.reach)
        self.inner = inner
        self.path = path
        reach = inner.reach
        self._reach = follow if reach is True else cast("Callable[[Any, str], Any]", reach)

    def __call__(self, ctx: Context) -> bool:
        return self.evaluate(ctx)

    def evaluate(self, ctx: Context) -> bool:
        related = self._reach(ctx.obj, self.path)
        if related is None:
            return False
        return self.inner.evaluate(ctx.with_object(related))

    def through(self, path: str) -> Rule:
        check_path(path)
        return ThroughPredicate(self.inner, f"{path}__{self.path}")

    def __str__(self) -> str:
        return f'{self.inner}.through("{self.path}")'


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
    reach: bool | Callable[[Any, str], Any] = False,
) -> Any:
    """Wrap a function of ``ctx`` as a rule; usable bare (``@predicate``) or called.

    ``uses_object=False`` declares that the function does not read ``ctx.obj``, which lets
    ``authorized()`` decide it once and filter the rest in SQL. ``reach`` lets
    ``rule.through(path)`` use the predicate on a model related to the one it was written for:
    True follows the path by attributes, a function ``(obj, path)`` returns the related object.
    """
    if fn is None:
        return lambda f: Predicate(f, uses_object=uses_object, name=name, reach=reach)
    return Predicate(fn, uses_object=uses_object, name=name, reach=reach)
