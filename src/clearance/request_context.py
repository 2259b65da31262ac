"""Per-request state kept in ``contextvars`` (never thread-locals), so sync and async agree."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["current_request", "decisions_in_request", "note_decision"]

#: The request being served, set by ``clearance.middleware`` for decisions that do not pass one.
current_request: ContextVar[Any] = ContextVar("clearance_current_request", default=None)

#: How many decisions were made while serving the current request, and how many of them were
#: about objects: ``[all, about_objects]`` (None outside a request).
decisions_in_request: ContextVar[list[int] | None] = ContextVar(
    "clearance_decisions_in_request", default=None
)


def note_decision(about_object: bool = False) -> None:
    """Count a decision against the current request, if one is being tracked.

    ``about_object``: the decision was about an object (``authorize`` with one) or scoped a
    queryset (``authorized``), not the permission gate alone.
    """
    counter = decisions_in_request.get()
    if counter is not None:
        counter[0] += 1
        if about_object and len(counter) > 1:
            counter[1] += 1
