"""Built-in audit sinks: Python logging and the ``clearance.AuditRecord`` table.

A sink is any class with one method, ``record(decision, request)``; list its dotted path in
``CLEARANCE["AUDIT_SINKS"]``. It is instantiated once (without arguments) per configuration.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from ..conf import clearance_settings
from ..decisions import Decision
from .connection import after_write, bounded, writer
from .recording import current_recording
from .requests import request_metadata
from .spool import kept_on_failure

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = [
    "DatabaseSink",
    "LoggingSink",
    "log_decisions",
    "log_fields",
    "write_decisions",
    "write_records",
]

audit_logger = logging.getLogger("clearance.audit")


def log_fields(decision: Decision, request: Any = None) -> dict[str, Any]:
    """The ``extra`` of a decision's log record: every Decision field plus request metadata.

    Keys: ``allowed``, ``action``, ``actor`` ({label, pk, kind}), ``resource`` ({model, pk} or
    None), ``layer``, ``rule``, ``reason``, ``code``, ``error``, ``at`` (ISO 8601),
    ``fingerprint``, ``explained``, ``performed``, ``probe``, ``trace`` (a list), and
    ``request_id``, ``method``, ``path``, ``remote_addr``, ``caller`` (empty strings when no
    request was given).
    """
    fields = decision.as_dict()
    meta = request_metadata(request)
    for key in ("request_id", "method", "path", "remote_addr", "caller"):
        fields[key] = meta.get(key, "")
    return fields


class LoggingSink:
    """One structured record per decision on the ``clearance.audit`` logger.

    Allowed decisions log at INFO, denials at WARNING. The message is the decision in one
    line; every field is an attribute of the log record (see :func:`log_fields`), ready for
    :class:`clearance.audit.logging.JsonFormatter`. Like the database sink, inside a recording
    scope the records are buffered and logged, in order, when the scope ends (or a batch is
    full), so formatting and writing the lines is not paid on each decision; ``at`` in each
    record is the moment of the decision.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Log ``decision`` (or buffer it in the current recording scope)."""
        level = logging.INFO if decision.allowed else logging.WARNING
        if not audit_logger.isEnabledFor(level):
            return
        scope = current_recording()
        if scope is not None and not _write_through(decision):
            limit = _batch_size()
            if limit > 1:
                scope.buffer((decision, request), log_decisions, limit)
                return
        audit_logger.log(level, "%s", decision, extra=log_fields(decision, request))


def log_decisions(items: list[tuple[Decision, Any]]) -> None:
    """Log buffered ``(decision, request)`` pairs on ``clearance.audit``, in order."""
    for decision, request in items:
        level = logging.INFO if decision.allowed else logging.WARNING
        audit_logger.log(level, "%s", decision, extra=log_fields(decision, request))


def _same_records(records: list[AuditRecord]) -> list[AuditRecord]:
    return records


def _records_of(items: list[tuple[Decision, Any]]) -> list[AuditRecord]:
    """The records of ``(decision, request)`` pairs, as model instances (for the spool)."""
    from .models import AuditRecord

    return [AuditRecord.from_decision(d, request_metadata(r)) for d, r in items]


@kept_on_failure(_same_records)
def write_records(records: list[AuditRecord]) -> None:
    """Insert ``records`` through the audit connection (outside the caller's transaction).

    One ``INSERT`` statement for the whole list (``bulk_create`` splits only what the database
    cannot take in one statement). On PostgreSQL it runs in a transaction of its own with short
    lock and statement timeouts; elsewhere in a savepoint when the caller holds a transaction on
    that very connection (SQLite sharing the default database), so a failed audit write never
    breaks the caller's transaction. A connection that broke is replaced and the write retried
    once; records the database still does not take are kept in the spool, then the error is
    raised (see :mod:`.spool`).
    """
    conn = writer()
    failed = True
    try:
        with bounded(conn):
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
        write_decisions([(decision, request)])


def write_decisions(items: list[tuple[Decision, Any]]) -> None:
    """Write the records of ``(decision, request)`` pairs, with one ``INSERT`` statement.

    The same rows :meth:`AuditRecord.from_decision` describes, built straight from the
    decisions (no model instance, no query compilation), through the connection
    :func:`~clearance.audit.connection.writer` chooses, in the block
    :func:`~clearance.audit.connection.bounded` gives it (timeouts on PostgreSQL, a savepoint
    when the caller holds a transaction on that very connection). A list longer than the
    database takes in one statement is split. A connection that broke is replaced and the write
    retried once; records the database still does not take are kept in the spool, then the
    error is raised (see :mod:`.spool`).
    """
    if items:
        _write_decisions(items)


@kept_on_failure(_records_of)
def _write_decisions(items: list[tuple[Decision, Any]]) -> None:
    conn = writer()
    failed = True
    try:
        with bounded(conn):
            _insert_rows(conn, items)
        failed = False
    finally:
        after_write(conn, failed=failed)


def _columns() -> tuple[str, list[Any]]:
    from .models import AuditRecord

    fields = [f for f in AuditRecord._meta.concrete_fields if not f.primary_key]
    return AuditRecord._meta.db_table, fields


def _row(decision: Decision, request: Any, metas: dict[int, dict[str, str]]) -> dict[str, Any]:
    from .models import BOUNDED

    key = id(request)
    meta = metas.get(key)
    if meta is None:
        meta = metas[key] = request_metadata(request)
    actor, resource = decision.actor, decision.resource
    row: dict[str, Any] = {
        "at": decision.at,
        "allowed": decision.allowed,
        "action": decision.action,
        "actor_label": actor.label,
        "actor_pk": "" if actor.pk is None else str(actor.pk),
        "actor_kind": actor.kind,
        "resource_model": resource.model if resource is not None else "",
        "resource_pk": "" if resource is None or resource.pk is None else str(resource.pk),
        "layer": decision.layer.value if decision.layer is not None else "",
        "rule": decision.rule or "",
        "reason": decision.reason,
        "code": decision.code,
        "error": decision.error or "",
        "fingerprint": decision.fingerprint,
        "explained": decision.explained,
        "performed": decision.performed,
        "probe": decision.probe,
        "trace": [t.as_dict() for t in decision.trace],
        "request_id": meta.get("request_id", ""),
        "method": meta.get("method", ""),
        "path": meta.get("path", ""),
        "remote_addr": meta.get("remote_addr", ""),
        "caller": meta.get("caller", ""),
    }
    # A value longer than its column would make the insert fail and lose the record.
    for attname, max_length in BOUNDED:
        value = row[attname]
        if isinstance(value, str) and len(value) > max_length:
            row[attname] = value[:max_length]
    return row


def _max_rows(conn: Any, columns: int) -> int:
    limit = conn.features.max_query_params
    if conn.vendor == "sqlite":
        conn.ensure_connection()
        getlimit = getattr(conn.connection, "getlimit", None)
        if getlimit is not None:  # Python 3.11+: the limit this SQLite library was built with
            import sqlite3

            limit = getlimit(getattr(sqlite3, "SQLITE_LIMIT_VARIABLE_NUMBER", 9))
    if not limit:
        limit = 65535  # the PostgreSQL protocol's limit of parameters per statement
    return max(1, int(limit) // columns)


def _insert_rows(conn: Any, items: list[tuple[Decision, Any]]) -> None:
    from django.db import models

    table, fields = _columns()
    ops = conn.ops
    adapt: list[Any] = []
    for field in fields:
        if isinstance(field, models.DateTimeField):
            adapt.append(ops.adapt_datetimefield_value)
        elif isinstance(field, models.JSONField):
            adapt.append(lambda value: ops.adapt_json_value(value, None))
        else:
            adapt.append(None)
    attnames = [f.attname for f in fields]
    metas: dict[int, dict[str, str]] = {}
    rows = []
    for decision, request in items:
        values = _row(decision, request, metas)
        rows.append(
            [
                value if fn is None else fn(value)
                for fn, value in zip(adapt, (values[a] for a in attnames), strict=True)
            ]
        )
    quote = ops.quote_name
    head = f"INSERT INTO {quote(table)} ({', '.join(quote(f.column) for f in fields)}) VALUES "
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    step = _max_rows(conn, len(fields))
    with conn.cursor() as cursor:
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            cursor.execute(head + ", ".join([one] * len(chunk)), [v for row in chunk for v in row])


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
