"""The ``CLEARANCE`` settings dictionary, with documented defaults and validation."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "clearance_settings", "setting_problems"]

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
    # Outside any recording scope, records wait in the process's buffer at most this many
    # seconds before a daemon thread writes them (None: no thread; written at AUDIT_BATCH_SIZE,
    # on the next record once this old, when the audit table is read, and at exit).
    "AUDIT_FLUSH_INTERVAL": 1.0,
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
    # The field people name objects of a model by (model label to field name, e.g.
    # {"invoices.Invoice": "number"}): ``manage.py clearance explain`` and the console's explain
    # page accept it besides the primary key.
    "NATURAL_KEYS": {},
    # The committed authorization snapshot (``manage.py clearance snapshot``); None means
    # ``<BASE_DIR>/clearance.snapshot`` when settings.BASE_DIR is set, else no snapshot.
    "SNAPSHOT_PATH": None,
    # Where ``manage.py clearance replay`` keeps its last report for the console; None means
    # ``clearance.replay.json`` next to the snapshot file.
    "REPLAY_REPORT_PATH": None,
}


# --------------------------------------------------------------------------------------------
# Validation: every setting's type and range, reported by the system check clearance.E10x
# --------------------------------------------------------------------------------------------

#: The characters of an HTTP header name (RFC 9110 "token").
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sinks(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return None
    return "must be a list of dotted paths (strings)"


def _record_allowed(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return None
    return "must be True, False or a rate between 0 and 1"


def _alias(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return None
    return "must be None or a database alias"


def _batch_size(value: Any) -> str | None:
    return None if _is_whole(value) and value >= 1 else "must be a whole number of at least 1"


def _header(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _HEADER_NAME.fullmatch(value):
        return None
    return "must be an HTTP header name (such as 'X-Request-ID'), '' or None"


def _status(value: Any) -> str | None:
    if _is_whole(value) and 400 <= value <= 599:
        return None
    return "must be an HTTP error status, a whole number from 400 to 599 (409 by default)"


def _patterns(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return "must be a list of regular expressions (strings)"
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"has an invalid regular expression {pattern!r}: {exc}"
    return None


def _installed_model(label: Any) -> Any:
    """The installed model ``label`` (``"app_label.Model"``) names, or None."""
    from django.apps import apps

    try:
        return apps.get_model(label) if isinstance(label, str) else None
    except (LookupError, ValueError):
        return None


def _view_actions(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a dict of model labels to action names"

    from .actions import registry

    for label, name in value.items():
        model = _installed_model(label)
        if model is None:
            return f"names {label!r}, which is not the label of an installed model"
        if not isinstance(name, str) or name not in registry:
            return f"maps {label!r} to {name!r}, which is not a declared action"
        act_model = registry.get(name).model
        if act_model is None or act_model._meta.concrete_model is not model._meta.concrete_model:
            return f"maps {label!r} to {name!r}, which does not act on {label}"
    return None


def _natural_keys(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "must be a dict of model labels to field names"
    from django.core.exceptions import FieldDoesNotExist

    for label, name in value.items():
        model = _installed_model(label)
        if model is None:
            return f"names {label!r}, which is not the label of an installed model"
        try:
            field = model._meta.get_field(name) if isinstance(name, str) else None
        except FieldDoesNotExist:
            field = None
        if field is None or not field.concrete or field.is_relation or name == "pk":
            return (
                f"maps {label!r} to {name!r}, which is not a field of {label} "
                "(a concrete field that is no relation)"
            )
    return None


def _seconds(value: Any) -> str | None:
    if value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    ):
        return None
    return "must be a number of seconds above 0, or None"


def _directory(value: Any) -> str | None:
    if value is None or (isinstance(value, (str, os.PathLike)) and str(value)):
        return None
    return "must be a directory path or None"


def _path(value: Any) -> str | None:
    if value is None or (isinstance(value, (str, os.PathLike)) and str(value)):
        return None
    return "must be a file path or None"


def _connection_mode(value: Any) -> str | None:
    return None if value in ("thread", "process") else "must be 'thread' or 'process'"


#: How each setting is validated: a function returning what is wrong, or None.
_VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "AUDIT_SINKS": _sinks,
    "RECORD_ALLOWED": _record_allowed,
    "RECORD_PROBES": _record_allowed,
    "AUDIT_DATABASE": _alias,
    "AUDIT_FAIL_CLOSED": _is_bool,
    "AUDIT_BATCH_SIZE": _batch_size,
    "AUDIT_WRITE_THROUGH": _is_bool,
    "AUDIT_FLUSH_INTERVAL": _seconds,
    "AUDIT_LOCK_TIMEOUT": _seconds,
    "AUDIT_STATEMENT_TIMEOUT": _seconds,
    "AUDIT_SPOOL": _directory,
    "AUDIT_CONNECTION": _connection_mode,
    "AUDIT_REQUEST_ID_HEADER": _header,
    "AUDIT_REQUEST_ID_SET_BY_PROXY": _is_bool,
    "RAISE_RULE_ERRORS": _is_bool,
    "INVARIANT_STATUS": _status,
    "GUARD_STRICT": _is_bool,
    "GUARD_EXEMPT": _patterns,
    "CONSOLE_SEES_ALL": _is_bool,
    "CONSOLE_VIEW_ACTIONS": _view_actions,
    "NATURAL_KEYS": _natural_keys,
    "SNAPSHOT_PATH": _path,
    "REPLAY_REPORT_PATH": _path,
}


def setting_problems() -> list[tuple[str, str]]:
    """What is wrong with ``settings.CLEARANCE``: ``(setting, message)`` pairs, none when valid.

    Every key is checked: the dict itself, unknown names, and each value's type and range.
    """
    user = getattr(django_settings, "CLEARANCE", {})
    if user is None:
        return []
    if not isinstance(user, dict):
        return [("CLEARANCE", f"settings.CLEARANCE must be a dict, got {type(user).__name__}")]
    problems = []
    for name in sorted(set(user) - set(DEFAULTS), key=str):
        problems.append(
            (str(name), f"Unknown CLEARANCE setting {name!r}. Known: {', '.join(sorted(DEFAULTS))}")
        )
    for name, validate in _VALIDATORS.items():
        if name not in user:
            continue
        problem = validate(user[name])
        if problem is not None:
            problems.append((name, f"CLEARANCE[{name!r}] {problem}, got {user[name]!r}."))
    return problems


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
