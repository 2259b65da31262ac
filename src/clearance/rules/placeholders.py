"""Placeholders: ``ACTOR`` and ``CTX`` (and their attributes), resolved when a rule is decided.

``where(owner=ACTOR)`` compares with the acting user, ``where(tenant=CTX.tenant)`` with a value
passed to the decision (``authorize(..., tenant=t)``); ``CTX.now``, ``CTX.request``, ``CTX.obj``
read the decision's own context.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import models

from .context import Context


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


def reads_object(value: Any) -> bool:
    """Whether a rule's value reads the object through the context (``CTX.obj...``)."""
    if isinstance(value, Ref):
        return value.root == "CTX" and value.path[:1] == ("obj",)
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(reads_object(v) for v in value)
    return False


def bind_value(value: Any, ctx: Context) -> Any:
    """``value`` with its placeholders resolved for ``ctx`` (inside lists, tuples and sets too)."""
    if isinstance(value, Ref):
        return value.resolve(ctx)
    if isinstance(value, (list, tuple, set, frozenset)) and contains_ref(value):
        return type(value)(bind_value(v, ctx) for v in value)
    return value


def show_value(value: Any) -> str:
    """A deterministic, readable rendering of a rule's value."""
    if isinstance(value, Ref):
        return repr(value)
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
