"""Built-in audit sinks: Python logging and the ``clearance.AuditRecord`` table.

A sink is any class with one method, ``record(decision, request)``; list its dotted path in
``CLEARANCE["AUDIT_SINKS"]``. It is instantiated once (without arguments) per configuration.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from ..conf import clearance_settings
from ..decisions import Decision
from .connection import after_write, in_transaction, writer
from .recording import current_recording
from .requests import request_metadata

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = ["DatabaseSink", "LoggingSink", "log_fields", "write_decisions", "write_records"]

audit_logger = logging.getLogger("clearance.audit")


def log_fields(decision: Decision, request: Any = None) -> dict[str, Any]:
    """The ``extra`` of a decision's log record: every Decision field plus request metadata.

    Keys: ``allowed``, ``action``, ``actor`` ({label, pk, kind}), ``resource`` ({model, pk} or
    None), ``layer``, ``rule``, ``reason``, ``code``, ``error``, ``at`` (ISO 8601),
    ``fingerprint``, ``explained``, ``performed``, ``probe``, ``trace`` (a list), and
    ``request_id``,
    ``method``, ``path``, ``remote_addr`` (empty strings when no request was given).
    """
    fields = decision.as_dict()
    meta = request_metadata(request)
    for key in ("request_id", "method", "path", "remote_addr"):
        fields[key] = meta.get(key, "")
    return fields


class LoggingSink:
    """One structured record per decision on the ``clearance.audit`` logger.

    Allowed decisions log at INFO, denials at WARNING. The message is the decision in one
    line; every field is an attribute of the log record (see :func:`log_fields`), ready for
    :class:`clearance.audit.logging.JsonFormatter`.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Log ``decision``."""
        level = logging.INFO if decision.allowed else logging.WARNING
        if audit_logger.isEnabledFor(level):
            audit_logger.log(level, "%s", decision, extra=log_fields(decision, request))


def write_records(records: list[AuditRecord]) -> None:
    """Insert ``records`` through the audit connection (outside the caller's transaction).

    One ``INSERT`` statement for the whole list (``bulk_create`` splits only what the database
    cannot take in one statement). When the caller holds a transaction on that very connection
    (SQLite sharing the default database) the insert runs in a savepoint, so a failed audit
    write never breaks the caller's transaction.
    """
    conn = writer()
    failed = True
    try:
        if in_transaction(conn):
            with transaction.atomic(using=conn.alias):
                _insert(records, conn.alias)
        else:
            _insert(records, conn.alias)
        failed = False
    finally:
        after_write(conn, failed=failed)


def _insert(records: list[AuditRecord], alias: str) -> None:
    from .models import AuditRecord

    if len(records) == 1:
        records[0].save(using=alias)
    else:
        AuditRecord.objects.using(alias).bulk_create(records)


class DatabaseSink:
    """One ``clearance.AuditRecord`` row per recorded decision.

    Inside a recording scope (a request served through ``ClearanceMiddleware``, or
    ``with clearance.audit.recording():`` around a job's unit of work) records are buffered
    and written together, with one ``INSERT`` through a connection outside the caller's
    transaction (see :mod:`clearance.audit.connection`), when the scope ends and whenever
    ``CLEARANCE["AUDIT_BATCH_SIZE"]`` records wait. Outside a scope, with a batch size of 1, in
    fail-closed mode, and for denied attempts when ``CLEARANCE["AUDIT_WRITE_THROUGH"]`` is on,
    each record is written at once. See :mod:`clearance.audit.recording` for the crash window.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Write (or buffer) the record of ``decision``."""
        scope = current_recording()
        if scope is not None and not _write_through(decision):
            limit = _batch_size()
            if limit > 1:
                scope.buffer((decision, request), write_decisions, limit)
                return
        write_records([_record_of(decision, request)])


def _record_of(decision: Decision, request: Any) -> AuditRecord:
    from .models import AuditRecord

    return AuditRecord.from_decision(decision, request_metadata(request))


def write_decisions(items: list[tuple[Decision, Any]]) -> None:
    """Write the records of buffered ``(decision, request)`` pairs, with one statement."""
    write_records([_record_of(decision, request) for decision, request in items])


def _write_through(decision: Decision) -> bool:
    if clearance_settings.AUDIT_FAIL_CLOSED:
        return True
    return (
        clearance_settings.AUDIT_WRITE_THROUGH is True
        and not decision.allowed
        and not decision.probe
    )


def _batch_size() -> int:
    size = clearance_settings.AUDIT_BATCH_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(
            f"CLEARANCE['AUDIT_BATCH_SIZE'] must be a whole number of at least 1, got {size!r}"
        )
    return size
