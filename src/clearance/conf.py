"""The ``CLEARANCE`` settings dictionary, with documented defaults and validation."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "clearance_settings"]

#: Every setting, with its default. Override any of them in ``settings.CLEARANCE``.
DEFAULTS: dict[str, Any] = {
    # Audit sinks: dotted paths to classes with one method, ``record(decision, request)``.
    # By default every denial is logged on ``clearance.audit`` and stored as an AuditRecord.
    "AUDIT_SINKS": [
        "clearance.audit.sinks.LoggingSink",
        "clearance.audit.sinks.DatabaseSink",
    ],
    # Record allowed decisions too: False (denials only), True (all), or a sampling rate 0..1.
    "RECORD_ALLOWED": False,
    # Record probes (decisions that only decide what to show: template tags, browsable-API
    # forms, list badges, explain): False (none), True (as attempts are), or a sampling rate.
    "RECORD_PROBES": False,
    # Database alias the audit rows are written to (None: a dedicated connection to the
    # database the AuditRecord model is routed to).
    "AUDIT_DATABASE": None,
    # A decision that could not be recorded becomes a denial (high-assurance projects).
    "AUDIT_FAIL_CLOSED": False,
    # Records buffered in a recording scope (a request, a job) before they are written with one
    # statement; the rest is written when the scope ends. 1: each record is written at once.
    "AUDIT_BATCH_SIZE": 100,
    # Write every recorded denial of an attempt at once, even inside a recording scope (closes
    # the window in which a crash loses buffered denials, at one insert per denial).
    "AUDIT_WRITE_THROUGH": False,
    # PostgreSQL: how long an audit write may wait for a lock, and run in all, in seconds (None:
    # the server's own settings). A write that times out goes to the spool; the request goes on.
    "AUDIT_LOCK_TIMEOUT": 0.25,
    "AUDIT_STATEMENT_TIMEOUT": 0.5,
    # Directory of the spool that keeps audit records the database refused, replayed into the
    # table when it answers again (None: "clearance-audit-spool" in the system's temp directory).
    "AUDIT_SPOOL": None,
    # The connection audit rows are written through when the caller holds a transaction
    # (client/server databases): "thread" (a dedicated one per thread: two connections per
    # server thread) or "process" (one per process, shared by its threads behind a lock).
    "AUDIT_CONNECTION": "thread",
    # HTTP header ClearanceMiddleware reads the request id from (one is generated if absent),
    # when AUDIT_REQUEST_ID_SET_BY_PROXY says a proxy sets it.
    "AUDIT_REQUEST_ID_HEADER": "X-Request-ID",
    # True only when a proxy in front of the project sets AUDIT_REQUEST_ID_HEADER on every
    # request (replacing what a client sent): otherwise the header is the client's and ignored.
    "AUDIT_REQUEST_ID_SET_BY_PROXY": False,
    # Re-raise exceptions from rules instead of denying with ``error`` set (for test suites).
    "RAISE_RULE_ERRORS": False,
    # HTTP status for an invariant violation in the integrations (409 Conflict by default).
    "INVARIANT_STATUS": 409,
    # clearance.contrib.guard: raise (True) instead of logging a warning when a view answered
    # without any authorization decision (meant for test suites).
    "GUARD_STRICT": False,
    # clearance.contrib.guard: regular expressions of paths (without the leading slash) that
    # need no authorization decision, e.g. [r"^accounts/", r"^$"].
    "GUARD_EXEMPT": [],
    # clearance.console: the console shows every object and audit record (a single-tenant
    # project), instead of those its user may view through each model's view action.
    "CONSOLE_SEES_ALL": False,
    # clearance.console: the action deciding which objects of a model (by label, e.g.
    # "invoices.Invoice") a console user may see, when not the model's view action.
    "CONSOLE_VIEW_ACTIONS": {},
}


class _Settings:
    """Attribute access to the merged ``CLEARANCE`` settings, refreshed when they change."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        user = getattr(django_settings, "CLEARANCE", {}) or {}
        if not isinstance(user, dict):
            raise ImproperlyConfigured("settings.CLEARANCE must be a dict")
        unknown = set(user) - set(DEFAULTS)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown CLEARANCE setting(s): {', '.join(sorted(unknown))}. "
                f"Known: {', '.join(sorted(DEFAULTS))}"
            )
        merged = {**DEFAULTS, **user}
        for name in ("RECORD_ALLOWED", "RECORD_PROBES"):
            rate = merged[name]
            if not isinstance(rate, (bool, int, float)) or not 0 <= float(rate) <= 1:
                raise ImproperlyConfigured(
                    f"CLEARANCE[{name!r}] must be True, False or a rate between 0 and 1"
                )
        if not isinstance(merged["AUDIT_WRITE_THROUGH"], bool):
            raise ImproperlyConfigured("CLEARANCE['AUDIT_WRITE_THROUGH'] must be True or False")
        return merged

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._cache is None:
            self._cache = self._load()
        try:
            value = self._cache[name]
        except KeyError:
            raise AttributeError(f"No CLEARANCE setting {name!r}") from None
        # Later reads find it as a plain attribute, without this method (reload() drops it):
        # the engine reads settings on every decision.
        self.__dict__[name] = value
        return value

    def reload(self) -> None:
        """Forget the cached values (done automatically when Django's settings change)."""
        self.__dict__.clear()
        self._cache = None


clearance_settings = _Settings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CLEARANCE":
        clearance_settings.reload()
