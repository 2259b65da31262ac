"""The decision context: everything a rule may look at while one decision is made."""

from __future__ import annotations

import datetime as dt
import keyword
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..actions import Action


class Context:
    """Everything a rule may look at while one decision is made.

    ``actor`` (the user or job asking), ``action`` (the :class:`~clearance.Action`), ``obj``
    (the object acted on, or None), ``now`` (an aware datetime fixed for the decision),
    ``request`` (the HTTP request, when there is one) and ``extra`` (the keyword arguments given
    to ``authorize``; ``CTX.<name>`` reads them).
    """

    __slots__ = ("_t", "action", "actor", "extra", "fresh", "memo", "now", "obj", "request")

    #: ``Context.at_time(actor, action, obj, request, extra, t)``: a context whose ``now`` is
    #: the instant ``t`` (seconds since the epoch, as ``time.time()`` gives), turned into a
    #: datetime only when something reads it (the engine's compiled plans make these).
    at_time: ClassVar[Callable[[Any, Action | None, Any, Any, Mapping[str, Any], float], Context]]

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

    def __getattr__(self, name: str) -> Any:
        # Only reached while ``now`` is not set: a context made by at_time().
        if name == "now":
            now = instant(object.__getattribute__(self, "_t"))
            self.now = now
            return now
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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


class _TimedContext(Context):
    """A :class:`Context` made by :attr:`Context.at_time` (positional, for the compiled plans)."""

    __slots__ = ()

    def __init__(
        self,
        actor: Any,
        action: Action | None,
        obj: Any,
        request: Any,
        extra: Mapping[str, Any],
        t: float,
    ) -> None:
        self.actor = actor
        self.action = action
        self.obj = obj
        self.request = request
        self.extra = extra
        self.memo = {}
        self.fresh = False
        self._t = t


Context.at_time = _TimedContext


def instant(t: float) -> dt.datetime:
    """The datetime ``django.utils.timezone.now()`` gives at the instant ``t`` (``time.time()``):
    aware in UTC when ``USE_TZ`` is on, naive local time otherwise."""
    from django.conf import settings

    if settings.USE_TZ:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return dt.datetime.fromtimestamp(t)


#: What :meth:`Rule.checker <clearance.rules.Rule.checker>` returns: ``check(obj, ctx) -> bool``.
Checker = Callable[[Any, Context], bool]

#: What :meth:`Rule.python_lines <clearance.rules.Rule.python_lines>` is given:
#: ``bind(value)`` returns the name under which the compiled code sees ``value``.
Bind = Callable[[Any], str]


def decision_now(extra: Mapping[str, Any]) -> dt.datetime:
    """The instant a decision is made at: ``extra["now"]`` when the caller passed ``now=``
    (``authorize(..., now=...)``), else the present (``django.utils.timezone.now()``).

    A decision has one clock: ``ctx.now``, ``CTX.now`` and the decision's (and its audit
    record's) timestamp are this value. ``now=`` must be a datetime, aware when ``USE_TZ`` is
    on and naive when it is off.
    """
    if "now" not in extra:
        from django.utils import timezone

        return timezone.now()
    now = extra["now"]
    if not isinstance(now, dt.datetime):
        raise TypeError(f"now= must be a datetime, got {type(now).__name__}: {now!r}")
    from django.conf import settings

    aware = now.tzinfo is not None and now.tzinfo.utcoffset(now) is not None
    if aware != bool(settings.USE_TZ):
        raise ValueError(
            f"now= must be {'an aware' if settings.USE_TZ else 'a naive'} datetime "
            f"(USE_TZ is {bool(settings.USE_TZ)}), got {now!r}"
        )
    return now


def attribute_name(name: str) -> bool:
    """Whether ``obj.<name>`` is valid Python (an identifier, not a keyword): the compiled
    plans read such attributes directly, and any other through ``getattr``."""
    return name.isidentifier() and not keyword.iskeyword(name)
