"""Placeholders: ``ACTOR`` and ``CTX`` (and their attributes), resolved when a rule is decided.

``where(owner=ACTOR)`` compares with the acting user, ``where(tenant=CTX.tenant)`` with a value
passed to the decision (``authorize(..., tenant=t)``); ``CTX.now``, ``CTX.request``, ``CTX.obj``
read the decision's own context.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from django.db import models
from django.db.models import F, Value
from django.db.models.expressions import CombinedExpression

from .context import Context


class _Arithmetic:
    """``+ - * /`` and unary ``-`` building an :class:`Expr`: ``CTX.now - timedelta(days=30)``,
    ``ACTOR.limit * 2`` (shared by placeholders and expressions)."""

    __slots__ = ()

    def __add__(self, other: Any) -> Expr:
        return Expr("+", self, other)

    def __radd__(self, other: Any) -> Expr:
        return Expr("+", other, self)

    def __sub__(self, other: Any) -> Expr:
        return Expr("-", self, other)

    def __rsub__(self, other: Any) -> Expr:
        return Expr("-", other, self)

    def __mul__(self, other: Any) -> Expr:
        return Expr("*", self, other)

    def __rmul__(self, other: Any) -> Expr:
        return Expr("*", other, self)

    def __truediv__(self, other: Any) -> Expr:
        return Expr("/", self, other)

    def __rtruediv__(self, other: Any) -> Expr:
        return Expr("/", other, self)

    def __neg__(self) -> Expr:
        return Expr("neg", self)


class Ref(_Arithmetic):
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


_OPERATORS: dict[str, Callable[..., Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "neg": operator.neg,
}

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3}


class Expr(_Arithmetic):
    """Arithmetic on placeholders and constants, computed when the rule is decided.

    ``CTX.now - timedelta(days=30)``, ``ACTOR.limit * 2``, ``-CTX.offset``: built with ``+``,
    ``-``, ``*``, ``/`` and unary ``-`` from a placeholder. It is computed once per decision in
    Python, before the comparison (the filter compares the column with the computed value), with
    SQL's NULL semantics: an operand that is None makes the whole expression None, which matches
    nothing, as a placeholder that is None does. An operation Python refuses (a date plus a
    number, a division by zero) raises, and the rule denies.
    """

    __slots__ = ("op", "operands")
    op: str
    operands: tuple[Any, ...]

    def __init__(self, op: str, *operands: Any) -> None:
        if op not in _OPERATORS:
            raise ValueError(f"unknown operator {op!r}")
        for operand in operands:
            if isinstance(operand, (list, tuple, set, frozenset, dict, models.Model)):
                raise TypeError(
                    f"a rule expression combines placeholders and constants, not {operand!r}"
                )
            if hasattr(type(operand), "resolve_expression"):
                raise TypeError(
                    f"a rule expression combines placeholders and constants, not the database "
                    f"expression {operand!r}: compare the field with F() and constants, or "
                    "with placeholders and constants, or write a predicate"
                )
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "operands", operands)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("expressions are immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Expr, (self.op, *self.operands))

    def refs(self) -> list[Ref]:
        """The placeholders this expression reads."""
        found: list[Ref] = []
        for operand in self.operands:
            if isinstance(operand, Ref):
                found.append(operand)
            elif isinstance(operand, Expr):
                found.extend(operand.refs())
        return found

    def resolve(self, ctx: Context) -> Any:
        """The value of this expression in ``ctx``; None when an operand is None."""
        values = []
        for operand in self.operands:
            value = operand.resolve(ctx) if isinstance(operand, (Ref, Expr)) else operand
            if value is None:
                return None
            values.append(value)
        return _OPERATORS[self.op](*values)

    def _operand_text(self, operand: Any, right: bool) -> str:
        text = show_value(operand)
        if isinstance(operand, Expr):
            mine, theirs = _PRECEDENCE[self.op], _PRECEDENCE[operand.op]
            # a - (b - c), a / (b * c): the right operand of - and / keeps its parentheses.
            if theirs < mine or (right and theirs == mine and self.op in "-/"):
                return f"({text})"
        elif self.op == "neg" and isinstance(operand, (int, float, Decimal)) and operand < 0:
            return f"({text})"
        return text

    def __repr__(self) -> str:
        if self.op == "neg":
            return "-" + self._operand_text(self.operands[0], False)
        left, right = self.operands
        return f"{self._operand_text(left, False)} {self.op} {self._operand_text(right, True)}"

    __str__ = __repr__


_CTX_ATTRIBUTES = frozenset({"now", "request", "obj", "actor", "action"})

#: The actor of the decision (``ACTOR.pk``, ``ACTOR.profile.tenant_id``, ...).
ACTOR = Ref("ACTOR")

#: A value from the decision's context: ``CTX.<name>`` reads ``authorize(..., name=value)``.
CTX = Ref("CTX")


def is_placeholder(value: Any) -> bool:
    """Whether ``value`` is bound at decision time: a placeholder or an expression on one."""
    return isinstance(value, (Ref, Expr))


def contains_ref(value: Any, root: str | None = None) -> bool:
    """Whether ``value`` is, or a list/tuple/set holds, a placeholder (of ``root`` if given);
    an expression counts by the placeholders it reads."""
    if isinstance(value, Ref):
        return root is None or value.root == root
    if isinstance(value, Expr):
        return any(contains_ref(ref, root) for ref in value.refs())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(contains_ref(v, root) for v in value)
    return False


def reads_object(value: Any) -> bool:
    """Whether a rule's value reads the object through the context (``CTX.obj...``)."""
    if isinstance(value, Ref):
        return value.root == "CTX" and value.path[:1] == ("obj",)
    if isinstance(value, Expr):
        return any(reads_object(ref) for ref in value.refs())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(reads_object(v) for v in value)
    return False


def bind_value(value: Any, ctx: Context) -> Any:
    """``value`` with its placeholders resolved for ``ctx`` (inside lists, tuples and sets too)."""
    if isinstance(value, (Ref, Expr)):
        return value.resolve(ctx)
    if isinstance(value, (list, tuple, set, frozenset)) and contains_ref(value):
        return type(value)(bind_value(v, ctx) for v in value)
    return value


def show_value(value: Any) -> str:
    """A deterministic, readable rendering of a rule's value."""
    if isinstance(value, (Ref, Expr)):
        return repr(value)
    if isinstance(value, datetime.timedelta):
        return _show_timedelta(value)
    if isinstance(value, (F, Value, CombinedExpression)):
        return _show_expression(value)
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(show_value(v) for v in value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(show_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, models.Model):
        return f"<{value._meta.label} pk={value.pk!r}>"
    return repr(value)


def _show_timedelta(value: datetime.timedelta) -> str:
    """``timedelta(days=30)``, as the rule was written (``repr`` adds the module name)."""
    parts = [
        f"{name}={amount}"
        for name, amount in (
            ("days", value.days),
            ("seconds", value.seconds),
            ("microseconds", value.microseconds),
        )
        if amount
    ]
    return f"timedelta({', '.join(parts)})"


def _show_expression(value: Any, parent: str = "", right: bool = False) -> str:
    """``F("parent__amount") * 2``, as the rule was written (Django's repr is for debugging)."""
    if type(value) is F:
        return f'F("{cast(Any, value).name}")'
    if type(value) is Value:
        return show_value(value.value)
    if isinstance(value, CombinedExpression) and value.connector in _PRECEDENCE:
        op = value.connector
        text = f"{_show_expression(value.lhs, op)} {op} {_show_expression(value.rhs, op, True)}"
        if parent:
            mine, theirs = _PRECEDENCE[op], _PRECEDENCE[parent]
            if mine < theirs or (right and mine == theirs and parent in "-/"):
                return f"({text})"
        return text
    return repr(value)
