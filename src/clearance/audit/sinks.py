"""Built-in audit sinks: Python logging and the ``clearance.AuditRecord`` table.

A sink is any class with one method, ``record(decision, request)``; list its dotted path in
``CLEARANCE["AUDIT_SINKS"]``. It is instantiated once (without arguments) per configuration.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from ..conf import clearance_settings
from ..decisions import Decision
from .connection import after_write, bounded, one_trip_settings, writer
from .recording import current_recording, pending
from .requests import RequestSnapshot, request_metadata, request_snapshot, snapshot_metadata
from .spool import kept_on_failure

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = [
    "DatabaseSink",
    "LoggingSink",
    "log_decisions",
    "log_fields",
    "trace_json",
    "write_decisions",
    "write_records",
]

audit_logger = logging.getLogger("clearance.audit")
logger = logging.getLogger("clearance")


def _unbuilt(decision: Decision) -> None:
    """Report a buffered decision whose record could not be built when its buffer was written
    (its fields raised when read; an actor that cannot say its name does not: it is recorded
    under a label that says so, see :func:`clearance.decisions.actor_ref`). The other
    records of the buffer are written; this one is logged at ERROR, as a sink that fails on the
    call is."""
    logger.exception(
        "Audit: the record of a %s decision could not be built; it is not written",
        "allowed" if decision.allowed else "denied",
    )


def log_fields(decision: Decision, request: Any = None) -> dict[str, Any]:
    """The ``extra`` of a decision's log record: every Decision field plus request metadata.

    Keys: ``allowed``, ``action``, ``actor`` ({label, pk, kind}), ``resource`` ({model, pk} or
    None), ``layer``, ``rule``, ``reason``, ``code``, ``error``, ``at`` (ISO 8601),
    ``fingerprint``, ``explained``, ``performed``, ``probe``, ``trace`` (a list), and
    ``request_id``, ``method``, ``path``, ``remote_addr``, ``caller`` (empty strings when no
    request was given).
    """
    return _fields_with(decision, request_metadata(request))


def _fields_with(decision: Decision, meta: dict[str, str]) -> dict[str, Any]:
    fields = decision.as_dict()
    for key in ("request_id", "method", "path", "remote_addr", "caller"):
        fields[key] = meta.get(key, "")
    return fields


class LoggingSink:
    """One structured record per decision on the ``clearance.audit`` logger.

    Allowed decisions log at INFO, denials at WARNING. The message is the decision in one
    line; every field is an attribute of the log record (see :func:`log_fields`), ready for
    :class:`clearance.audit.logging.JsonFormatter`. Like the database sink, inside a recording
    scope the records are buffered and logged, in order, when the scope ends (or a batch is
    full), so building, formatting and writing the lines is not paid on each decision: a
    scope's audit lines come after the application's own lines of the same request, not
    interleaved with them; ``at`` in each record is the moment of the decision (the log
    record's own ``created`` is when it was logged). Outside a scope, and for what is written
    at once (``AUDIT_WRITE_THROUGH``, fail-closed mode, ``AUDIT_BATCH_SIZE = 1``), each line is
    logged on the call, in order with the application's lines.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Log ``decision`` (or buffer it in the current recording scope).

        Nothing is built when no handler would emit the line (the logger is disabled for the
        level, or only ``NullHandler`` instances listen).
        """
        level = logging.INFO if decision.allowed else logging.WARNING
        if not _will_emit(level):
            return
        scope = current_recording()
        if scope is not None and not _write_through(decision):
            limit = _batch_size()
            if limit > 1:
                scope.buffer((decision, request_snapshot(request)), _log_buffered, limit)
                return
        audit_logger.log(level, "%s", decision, extra=log_fields(decision, request))


def _will_emit(level: int) -> bool:
    """Whether a ``clearance.audit`` record at ``level`` would reach a handler that writes.

    Walks the handlers as ``Logger.callHandlers`` does; ``NullHandler`` instances write nothing.
    With no handler at all, Python's last-resort handler writes warnings to standard error.
    """
    if not audit_logger.isEnabledFor(level):
        return False
    found = False
    logger: logging.Logger | None = audit_logger
    while logger is not None:
        for handler in logger.handlers:
            found = True
            if type(handler) is not logging.NullHandler and level >= handler.level:
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    if found:
        return False
    last = logging.lastResort
    return last is not None and level >= last.level


def log_decisions(items: list[tuple[Decision, Any]]) -> None:
    """Log ``(decision, request)`` pairs on ``clearance.audit``, in order."""
    _log_buffered([(decision, request_snapshot(request)) for decision, request in items])


def _log_buffered(items: list[tuple[Decision, RequestSnapshot | None]]) -> None:
    """Log buffered ``(decision, request snapshot)`` pairs on ``clearance.audit``, in order."""
    for decision, snapshot in items:
        level = logging.INFO if decision.allowed else logging.WARNING
        try:
            fields = _fields_with(decision, snapshot_metadata(snapshot))
        except Exception:
            _unbuilt(decision)
            continue
        audit_logger.log(level, "%s", decision, extra=fields)


def _same_records(records: list[AuditRecord]) -> list[AuditRecord]:
    return records


def _records_of(items: list[tuple[Decision, RequestSnapshot | None]]) -> list[AuditRecord]:
    """The records of ``(decision, request snapshot)`` pairs, as model instances (for the
    spool)."""
    from .models import AuditRecord

    records = []
    for decision, snapshot in items:
        try:
            records.append(AuditRecord.from_decision(decision, snapshot_metadata(snapshot)))
        except Exception:
            _unbuilt(decision)
    return records


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
    ``CLEARANCE["AUDIT_BATCH_SIZE"]`` records wait. Outside a scope, records wait in the
    process's buffer (:data:`clearance.audit.recording.pending`), written at the batch size,
    after ``CLEARANCE["AUDIT_FLUSH_INTERVAL"]`` seconds, when the table is read and at exit.
    With a batch size of 1, in fail-closed mode, and for denied attempts when
    ``CLEARANCE["AUDIT_WRITE_THROUGH"]`` is on, each record is written at once. See
    :mod:`clearance.audit.recording` for the crash window.

    A buffered record keeps the decision (whose fields are built when first read: see
    :func:`clearance.decisions.deferred_decision`, with its actor pinned when it was made) and
    a snapshot of the request (:func:`~clearance.audit.requests.request_snapshot`); its row is
    built when the buffer is written, from what was captured when it was decided.
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Write (or buffer) the record of ``decision``."""
        if not _write_through(decision):
            limit = _batch_size()
            if limit > 1:
                item = (decision, request_snapshot(request))
                scope = current_recording()
                if scope is not None:
                    scope.buffer(item, _write_decisions, limit)
                else:
                    pending.buffer(
                        item, _write_decisions, limit, clearance_settings.AUDIT_FLUSH_INTERVAL
                    )
                return
        _write_decisions([(decision, request_snapshot(request))])


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
        _write_decisions([(decision, request_snapshot(request)) for decision, request in items])


@kept_on_failure(_records_of)
def _write_decisions(items: list[tuple[Decision, RequestSnapshot | None]]) -> None:
    """Write the records of ``(decision, request snapshot)`` pairs (see write_decisions)."""
    conn = writer()
    failed = True
    try:
        ahead = one_trip_settings(conn)
        if ahead is not None:
            _insert_in_one_trip(conn, items, ahead)
        else:
            with bounded(conn):
                _insert_rows(conn, items)
        failed = False
    finally:
        after_write(conn, failed=failed)


# The columns, in the order _values() builds a row in (every concrete field but the key).
_ORDER = (
    "at",
    "allowed",
    "action",
    "actor_label",
    "actor_pk",
    "actor_kind",
    "resource_model",
    "resource_pk",
    "layer",
    "rule",
    "reason",
    "code",
    "error",
    "fingerprint",
    "explained",
    "performed",
    "probe",
    "trace",
    "request_id",
    "method",
    "path",
    "remote_addr",
    "caller",
)

_dumps = json.dumps

# (layer, rule, reason, expression) -> the constant parts of its trace entry's JSON.
_FRAGMENTS: dict[tuple[Any, ...], tuple[str, str]] = {}
_MAX_FRAGMENTS = 4096


def trace_json(decision: Decision) -> str:
    """The decision's trace as JSON text: the same as ``json.dumps`` of the list of each
    entry's :meth:`~clearance.TraceEntry.as_dict`, built from cached pieces (the parts of an
    entry that do not change from one decision to the next are encoded once)."""
    raw = getattr(decision, "_raw", None)
    entries: Any = (
        raw
        if raw is not None
        else [
            (t.layer, t.rule, t.outcome, t.reason, t.expression, t.duration, t.error)
            for t in decision.trace
        ]
    )
    parts = []
    fragments = _FRAGMENTS
    for layer, rule, ok, reason, expression, duration, error in entries:
        key = (layer, rule, reason, expression)
        pieces = fragments.get(key)
        if pieces is None:
            if len(fragments) >= _MAX_FRAGMENTS:
                fragments.clear()
            pieces = fragments[key] = (
                f'{{"layer": {_dumps(layer.value)}, "rule": {_dumps(rule)}, "outcome": ',
                f', "reason": {_dumps(reason)}, "expression": {_dumps(expression)}, '
                '"duration_ms": ',
            )
        parts.append(
            f"{pieces[0]}{'true' if ok else 'false'}{pieces[1]}"
            f"{round(duration * 1000, 4)!r}, "
            f'"error": {"null" if error is None else _dumps(error)}}}'
        )
    return "[" + ", ".join(parts) + "]"


class _Plan:
    """How rows are written on one kind of connection: the statement, the adaptations."""

    def __init__(self, conn: Any) -> None:
        from .models import BOUNDED, AuditRecord

        fields = {f.attname: f for f in AuditRecord._meta.concrete_fields if not f.primary_key}
        if set(fields) != set(_ORDER):  # pragma: no cover - guards a change of the model
            changed = sorted(set(fields) ^ set(_ORDER))
            raise RuntimeError(f"AuditRecord's columns changed: {changed}")
        quote = conn.ops.quote_name
        self.table = quote(AuditRecord._meta.db_table)
        self.columns = ", ".join(quote(fields[name].column) for name in _ORDER)
        self.one = "(" + ", ".join(["%s"] * len(_ORDER)) + ")"
        self.insert = f"INSERT INTO {self.table} ({self.columns})"
        self.bounded = [(_ORDER.index(name), length) for name, length in BOUNDED]
        self.adapt_at = conn.ops.adapt_datetimefield_value
        self.statements: dict[int, str] = {}

    def statement(self, rows: int) -> str:
        """``INSERT ... VALUES`` with ``rows`` rows of placeholders (cached)."""
        sql = self.statements.get(rows)
        if sql is None:
            sql = self.statements[rows] = f"{self.insert} VALUES " + ", ".join([self.one] * rows)
        return sql

    def values(self, decision: Decision, meta: dict[str, str]) -> list[Any]:
        """The row of ``decision`` (columns in ``_ORDER``), cut to fit its columns."""
        actor, resource, layer = decision.actor, decision.resource, decision.layer
        row = [
            self.adapt_at(decision.at),
            decision.allowed,
            decision.action,
            actor.label,
            "" if actor.pk is None else str(actor.pk),
            actor.kind,
            resource.model if resource is not None else "",
            "" if resource is None or resource.pk is None else str(resource.pk),
            layer.value if layer is not None else "",
            decision.rule or "",
            decision.reason,
            decision.code,
            decision.error or "",
            decision.fingerprint,
            decision.explained,
            decision.performed,
            decision.probe,
            trace_json(decision),
            meta.get("request_id", ""),
            meta.get("method", ""),
            meta.get("path", ""),
            meta.get("remote_addr", ""),
            meta.get("caller", ""),
        ]
        # A value longer than its column would make the insert fail and lose the record.
        for index, length in self.bounded:
            value = row[index]
            if isinstance(value, str) and len(value) > length:
                row[index] = value[:length]
        return row


_plans: dict[str, _Plan] = {}


def _plan(conn: Any) -> _Plan:
    plan = _plans.get(conn.vendor)
    if plan is None:
        plan = _plans[conn.vendor] = _Plan(conn)
    return plan


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


def _rows(plan: _Plan, items: list[tuple[Decision, RequestSnapshot | None]]) -> list[list[Any]]:
    metas: dict[Any, dict[str, str]] = {}
    rows = []
    for decision, snapshot in items:
        try:
            meta = metas.get(snapshot)
        except TypeError:  # an unhashable value on the request: converted for this row alone
            meta = snapshot_metadata(snapshot)
        if meta is None:
            meta = metas[snapshot] = snapshot_metadata(snapshot)
        try:
            rows.append(plan.values(decision, meta))
        except Exception:
            _unbuilt(decision)
    return rows


def _insert_in_one_trip(
    conn: Any, items: list[tuple[Decision, RequestSnapshot | None]], ahead: str
) -> None:
    """PostgreSQL in autocommit: ``ahead`` (the write's ``SET LOCAL`` statements, see
    :func:`~clearance.audit.connection.one_trip_settings`) and one multi-row ``INSERT``, sent
    as one query string without parameters: each row's values quoted by the driver on the
    client (psycopg's own literal quoting, the one-row template parsed once)."""
    plan = _plan(conn)
    rows = _rows(plan, items)
    with conn.cursor() as cursor:
        raw = cursor.cursor
        mogrify = getattr(raw, "mogrify", None)
        if mogrify is None:  # psycopg 3 binding parameters on the server: quote on the client
            from psycopg import ClientCursor

            mogrify = ClientCursor(raw.connection).mogrify
        literals = []
        for row in rows:
            literal = mogrify(plan.one, row)
            literals.append(literal if isinstance(literal, str) else literal.decode())
        cursor.execute(f"{ahead}{plan.insert} VALUES {', '.join(literals)}")


def _insert_rows(conn: Any, items: list[tuple[Decision, RequestSnapshot | None]]) -> None:
    """One statement: on PostgreSQL a one-row ``INSERT`` run for every row (``executemany``,
    pipelined), elsewhere one multi-row ``INSERT`` (split only past the database's limit of
    parameters); its text built once per number of rows."""
    plan = _plan(conn)
    rows = _rows(plan, items)
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            # One prepared one-row INSERT for every row, sent in one pipeline: psycopg parses
            # the statement once, instead of a multi-row statement's thousands of placeholders
            # on every write.
            cursor.executemany(plan.statement(1), rows)
            return
        step = _max_rows(conn, len(_ORDER))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            cursor.execute(plan.statement(len(chunk)), [v for row in chunk for v in row])


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
