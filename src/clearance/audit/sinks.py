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
from .connection import after_write, writer
from .recording import current_recording
from .requests import request_metadata

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = ["DatabaseSink", "LoggingSink", "log_fields", "write_records"]

audit_logger = logging.getLogger("clearance.audit")


def log_fields(decision: Decision, request: Any = None) -> dict[str, Any]:
    """The ``extra`` of a decision's log record: every Decision field plus request metadata.

    Keys: ``allowed``, ``action``, ``actor`` ({label, pk, kind}), ``resource`` ({model, pk} or
    None), ``layer``, ``rule``, ``reason``, ``code``, ``error``, ``at`` (ISO 8601),
    ``fingerprint``, ``explained``, ``performed``, ``trace`` (a list), and ``request_id``,
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
    """Insert ``records`` through the audit connection (outside the caller's transaction)."""
    from .models import AuditRecord

    conn = writer()
    failed = True
    try:
        if len(records) == 1 and not conn.in_atomic_block:
            records[0].save(using=conn.alias)
        else:
            # A savepoint when the caller holds a transaction on this connection (SQLite on the
            # default database), so a failed audit write never breaks the caller's transaction.
            with transaction.atomic(using=conn.alias):
                if len(records) == 1:
                    records[0].save(using=conn.alias)
                else:
                    AuditRecord.objects.using(conn.alias).bulk_create(records)
        failed = False
    finally:
        after_write(conn, failed=failed)


class DatabaseSink:
    """One ``clearance.AuditRecord`` row per recorded decision.

    Denials are written at once, through a connection outside the caller's transaction (see
    :mod:`clearance.audit.connection`). Allowed decisions are buffered when
    ``CLEARANCE["AUDIT_BATCH_SIZE"]`` is above 1 inside a recording scope (a request served
    through ``ClearanceMiddleware``, or ``with clearance.audit.recording():``), and written
    with one ``bulk_create`` when the buffer is full or the scope ends.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Write (or buffer) the record of ``decision``."""
        from .models import AuditRecord

        record = AuditRecord.from_decision(decision, request_metadata(request))
        if decision.allowed and not clearance_settings.AUDIT_FAIL_CLOSED:
            limit = _batch_size()
            scope = current_recording()
            if limit > 1 and scope is not None:
                scope.buffer(record, write_records, limit)
                return
        write_records([record])


def _batch_size() -> int:
    size = clearance_settings.AUDIT_BATCH_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(
            f"CLEARANCE['AUDIT_BATCH_SIZE'] must be a whole number of at least 1, got {size!r}"
        )
    return size
