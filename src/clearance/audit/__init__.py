"""Audit: every decision is offered to the configured sinks and to ``decision_made``."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Protocol

from django.utils.module_loading import import_string

from ..conf import clearance_settings
from ..decisions import Decision
from ..signals import decision_made

__all__ = ["Sink", "configured_sinks", "emit"]

logger = logging.getLogger("clearance")


class Sink(Protocol):
    """An audit sink: a class with one method, ``record(decision, request)``."""

    def record(self, decision: Decision, request: Any) -> None:
        """Record one decision."""


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> tuple[Sink, ...]:
    return tuple(import_string(path)() for path in paths)


def configured_sinks() -> tuple[Sink, ...]:
    """The configured sinks, instantiated once per configuration."""
    return _load(tuple(clearance_settings.AUDIT_SINKS))


def emit(decision: Decision, request: Any = None) -> Decision:
    """Send ``decision`` to the signal and the sinks; returns the decision that stands."""
    decision_made.send(sender=Decision, decision=decision, request=request)
    if decision.allowed and not clearance_settings.RECORD_ALLOWED:
        return decision
    for sink in configured_sinks():
        try:
            sink.record(decision, request)
        except Exception:
            logger.exception("Audit sink %s failed to record %s", type(sink).__name__, decision)
    return decision
