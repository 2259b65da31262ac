"""The decision context: everything a rule may look at while one decision is made."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..actions import Action


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
