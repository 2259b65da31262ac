"""System checks for the audit configuration (ids ``clearance.E5xx`` / ``W5xx`` / ``I5xx``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from ..conf import clearance_settings

__all__ = ["check_audit", "check_audit_deploy", "check_audit_spool"]

_ROUTER = "clearance.audit.routers.AuditRouter"
_DATABASE_SINK = "clearance.audit.sinks.DatabaseSink"


@checks.register("clearance")
def check_audit(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report audit settings that would lose records or not do what they say."""
    messages: list[checks.CheckMessage] = []
    try:
        sinks = list(clearance_settings.AUDIT_SINKS)
        alias = clearance_settings.AUDIT_DATABASE
        batch = clearance_settings.AUDIT_BATCH_SIZE
        fail_closed = clearance_settings.AUDIT_FAIL_CLOSED
        record_allowed = clearance_settings.RECORD_ALLOWED
    except ImproperlyConfigured:
        return messages  # reported by the settings themselves
    from . import configured_sinks

    if all(isinstance(path, str) for path in sinks):  # otherwise clearance.E102 says so
        try:
            configured_sinks()
        except ImproperlyConfigured as exc:
            messages.append(checks.Error(str(exc), id="clearance.E501"))
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        messages.append(
            checks.Error(
                f"CLEARANCE['AUDIT_BATCH_SIZE'] must be a whole number of at least 1, "
                f"got {batch!r}.",
                id="clearance.E502",
            )
        )
    databases = settings.DATABASES
    if alias:
        if alias not in databases:
            messages.append(
                checks.Error(
                    f"CLEARANCE['AUDIT_DATABASE'] is {alias!r}, which is not in "
                    "settings.DATABASES.",
                    hint=f"Add a {alias!r} database or correct the alias.",
                    id="clearance.E503",
                )
            )
        else:
            routers = [
                r if isinstance(r, str) else type(r).__module__ + "." + type(r).__name__
                for r in getattr(settings, "DATABASE_ROUTERS", [])
            ]
            if _ROUTER not in routers:
                messages.append(
                    checks.Warning(
                        f"CLEARANCE['AUDIT_DATABASE'] is {alias!r} but {_ROUTER} is not in "
                        "DATABASE_ROUTERS: records are written there, but the admin reads "
                        "and `migrate` creates the table elsewhere.",
                        hint=f"DATABASE_ROUTERS = [{_ROUTER!r}, ...]",
                        id="clearance.W501",
                    )
                )
            if databases[alias].get("ATOMIC_REQUESTS"):
                messages.append(
                    checks.Warning(
                        f"DATABASES[{alias!r}] has ATOMIC_REQUESTS: on SQLite the audit write "
                        "of a denial then joins the request's transaction and is lost when "
                        "the request fails.",
                        hint=f"Remove ATOMIC_REQUESTS from DATABASES[{alias!r}].",
                        id="clearance.W502",
                    )
                )
    elif _DATABASE_SINK in sinks:
        default = databases.get("default", {})
        if "sqlite" in str(default.get("ENGINE", "")):
            messages.append(
                checks.Info(
                    "The audit trail shares the SQLite default database: a denial decided "
                    "inside a transaction that rolls back is not kept.",
                    hint="Give it a database of its own: CLEARANCE['AUDIT_DATABASE'] = "
                    f"'audit' with a second SQLite file, and {_ROUTER} in DATABASE_ROUTERS.",
                    id="clearance.I501",
                )
            )
    header = clearance_settings.AUDIT_REQUEST_ID_HEADER
    if header is not None and not isinstance(header, str):
        messages.append(
            checks.Error(
                f"CLEARANCE['AUDIT_REQUEST_ID_HEADER'] must be a header name or None, "
                f"got {header!r}.",
                id="clearance.E504",
            )
        )
    for name in ("AUDIT_LOCK_TIMEOUT", "AUDIT_STATEMENT_TIMEOUT"):
        value = getattr(clearance_settings, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            messages.append(
                checks.Error(
                    f"CLEARANCE[{name!r}] must be a number of seconds above 0, or None; "
                    f"got {value!r}.",
                    id="clearance.E505",
                )
            )
    mode = clearance_settings.AUDIT_CONNECTION
    if mode not in ("thread", "process"):
        messages.append(
            checks.Error(
                f"CLEARANCE['AUDIT_CONNECTION'] must be 'thread' or 'process', got {mode!r}.",
                id="clearance.E507",
            )
        )
    spool = clearance_settings.AUDIT_SPOOL
    if spool is not None and (not isinstance(spool, (str, os.PathLike)) or not str(spool)):
        messages.append(
            checks.Error(
                f"CLEARANCE['AUDIT_SPOOL'] must be a directory path or None, got {spool!r}.",
                id="clearance.E506",
            )
        )
    if fail_closed and record_allowed is False:
        messages.append(
            checks.Warning(
                "CLEARANCE['AUDIT_FAIL_CLOSED'] is on but RECORD_ALLOWED is False: allowed "
                "decisions are not recorded, so none can be refused for failing to be.",
                hint="Set RECORD_ALLOWED = True for a complete, fail-closed audit trail.",
                id="clearance.W503",
            )
        )
    return messages


@checks.register("clearance")
def check_audit_spool(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Report audit records waiting in the spool: the table does not hold them yet."""
    from .spool import pending, spool_path

    try:
        waiting = pending()
        path = spool_path()
    except (ImproperlyConfigured, OSError):
        return []  # a bad setting is reported by check_audit
    if not waiting:
        return []
    noun = "record waits" if waiting == 1 else "records wait"
    return [
        checks.Warning(
            f"{waiting} audit {noun} in the spool {path}: the database did not take "
            "them when they were made, and the audit table does not hold them yet.",
            hint="They are replayed after the next audit write that succeeds; to do it now, "
            "run `manage.py clearance audit-spool --replay`.",
            id="clearance.W504",
        )
    ]


@checks.register("clearance", deploy=True)
def check_audit_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: the spool should live on storage that outlasts a reboot."""
    from .spool import spool_directory

    try:
        directory = spool_directory().resolve()
    except ImproperlyConfigured:
        return []
    temp = Path(tempfile.gettempdir()).resolve()
    if directory == temp or temp in directory.parents:
        return [
            checks.Warning(
                f"The audit spool is in the temporary directory ({directory}): records the "
                "database did not take may not outlast a reboot there.",
                hint="Set CLEARANCE['AUDIT_SPOOL'] to a directory on persistent local "
                "storage that every process of the server can write, e.g. "
                "'/var/lib/myproject/audit-spool'.",
                id="clearance.W505",
            )
        ]
    return []
