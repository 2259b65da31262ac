"""Audit: every decision is offered to the configured sinks, then to ``decision_made``.

:func:`emit` is called by the engine for every decision. It first calls each sink of
``CLEARANCE["AUDIT_SINKS"]`` for every recorded decision (every denied attempt; allowed
decisions and probes as ``CLEARANCE["RECORD_ALLOWED"]`` and ``CLEARANCE["RECORD_PROBES"]``
select), each in isolation: a sink that raises is logged at ERROR on the ``clearance`` logger
and the other sinks still run. Then it sends ``clearance.signals.decision_made`` (keyword
``decision``, and ``request``) robustly: a receiver that raises is logged at ERROR and never
loses the record nor turns the decision into an exception. The decision stands, unless
``CLEARANCE["AUDIT_FAIL_CLOSED"]`` is on: then a decision that could not be recorded is
returned as a denial with code ``audit.unrecorded``.

Modules: :mod:`.sinks` (logging, database), :mod:`.models` (``AuditRecord``),
:mod:`.connection` (the write path that survives a rollback), :mod:`.recording` (per-request
and per-job scope and buffering), :mod:`.routers`, :mod:`.retention`, :mod:`.logging` (JSON
formatter), :mod:`.sampling`, :mod:`.guard` (a PostgreSQL trigger against rewrites).
"""

from __future__ import annotations

import logging as _logging
from functools import lru_cache
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from ..conf import clearance_settings
from ..decisions import Decision, pin_actor
from ..signals import decision_made

# The submodule, bound under its own name: ``clearance.audit.logging.JsonFormatter`` (the path
# ``LOGGING`` configurations name) must resolve to it, never to Python's ``logging`` module,
# also when the logging configuration is loaded before anything else imported the submodule.
from . import logging as logging
from .recording import Recording, recording
from .sampling import should_record

__all__ = [
    "UNRECORDED_CODE",
    "Recording",
    "Sink",
    "configured_sinks",
    "emit",
    "recording",
    "unrecorded",
]

logger = _logging.getLogger("clearance")

#: The code of a decision refused because it could not be recorded (fail-closed mode).
UNRECORDED_CODE = "audit.unrecorded"

_UNRECORDED_REASON = (
    "This action cannot be recorded in the audit trail right now, so it is refused."
)


class Sink(Protocol):
    """An audit sink: a class with one method, ``record(decision, request)``."""

    def record(self, decision: Decision, request: Any) -> None:
        """Record one decision; raise if it could not be recorded."""


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> tuple[Sink, ...]:
    sinks = []
    for path in paths:
        try:
            cls = import_string(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"CLEARANCE['AUDIT_SINKS'] names {path!r}, which cannot be imported: {exc}"
            ) from exc
        sink = cls()
        if not callable(getattr(sink, "record", None)):
            raise ImproperlyConfigured(
                f"Audit sink {path!r} has no record(decision, request) method"
            )
        sinks.append(sink)
    return tuple(sinks)


_last: tuple[Any, tuple[Sink, ...]] = (None, ())


def configured_sinks() -> tuple[Sink, ...]:
    """The configured sinks, instantiated once per configuration."""
    global _last
    paths = clearance_settings.AUDIT_SINKS
    last_paths, sinks = _last
    if paths is last_paths and paths is not None:
        return sinks
    if isinstance(paths, str):
        raise ImproperlyConfigured("CLEARANCE['AUDIT_SINKS'] must be a list of dotted paths")
    sinks = _load(tuple(paths))
    _last = (paths, sinks)
    return sinks


def unrecorded(decision: Decision, error: str) -> Decision:
    """``decision`` turned into the denial fail-closed mode returns when it was not recorded."""
    return decision.replace(
        allowed=False,
        layer=None,
        rule="audit",
        reason=_UNRECORDED_REASON,
        code=UNRECORDED_CODE,
        error=error,
    )


def emit(decision: Decision, request: Any = None, actor: Any = None) -> Decision:
    """Offer ``decision`` to the sinks, then to the signal; returns the decision that stands.

    ``actor``: the actor object of a decision whose fields are still to be built (the
    compiled plans pass it): when the decision is recorded or a receiver listens, its actor is
    fixed now (:func:`clearance.decisions.pin_actor`), so that a record built later, when a
    buffer is written, names the actor as it was.
    """
    stands = decision
    sinks = configured_sinks()
    recorded = bool(sinks) and should_record(decision)
    if actor is not None and (recorded or decision_made.receivers):
        try:
            pin_actor(decision, actor)
        except Exception:  # an actor that cannot describe itself: the sinks will say so
            logger.exception("Audit: the actor of a decision could not be described")
    if recorded:
        failure: str | None = None
        for sink in sinks:
            try:
                sink.record(decision, request)
            except Exception as exc:
                logger.exception("Audit sink %s failed to record %s", type(sink).__name__, decision)
                if failure is None:
                    failure = f"{type(sink).__name__}: {type(exc).__name__}: {exc}"
        if failure is not None and decision.allowed and clearance_settings.AUDIT_FAIL_CLOSED:
            stands = unrecorded(decision, failure)
    if decision_made.receivers:  # send_robust() would return at once: skip its arguments
        for receiver, result in decision_made.send_robust(
            sender=Decision, decision=stands, request=request
        ):
            if isinstance(result, Exception):
                logger.error(
                    "A decision_made receiver (%r) raised for %s",
                    receiver,
                    stands,
                    exc_info=(type(result), result, result.__traceback__),
                )
    return stands
