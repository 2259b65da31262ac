"""The spool: audit records the database did not take, kept on local disk until it does.

A write of audit records that fails — the server is down or restarting, the table is locked
past ``CLEARANCE["AUDIT_LOCK_TIMEOUT"]``, an insert is refused — is never silent:

* the records are appended to the **spool**, a JSON-lines file (one record per line) in the
  directory ``CLEARANCE["AUDIT_SPOOL"]`` (default: ``clearance-audit-spool`` in the system's
  temporary directory), one file per audit database;
* an **ERROR** on the ``clearance.audit`` logger names each record (time, action, actor,
  resource, code, request id) and carries the whole record as ``audit_record``, so a shipped
  log stream keeps it too;
* the signal :data:`clearance.signals.audit_failed` is sent once per record;
* the error is raised again, so the sink counts as failed: ``AUDIT_FAIL_CLOSED`` still turns an
  allowed decision that could not be recorded into a denial.

The spool is **replayed** into the table after the next audit write that succeeds in the
process (at most :data:`REPLAY_CHUNK` records at a time, oldest first, skipping records the
table already holds), or on demand with ``manage.py clearance audit-spool --replay``. The system
check ``clearance.W504`` reports records waiting there. Appends and replays take an exclusive
``flock`` on the file, so the processes of one server can share it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connections

from ..conf import clearance_settings
from ..decisions import database_unavailable
from ..signals import audit_failed
from .connection import (
    after_write,
    bounded,
    give_up,
    given_up,
    target_alias,
    write_retrying,
    writer,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: appends are single writes, unlocked
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = [
    "REPLAY_CHUNK",
    "identity",
    "keep",
    "kept_on_failure",
    "pending",
    "replay",
    "spool_directory",
    "spool_path",
    "waiting",
]

audit_logger = logging.getLogger("clearance.audit")
logger = logging.getLogger("clearance")

#: Records written back per replay (one statement; oldest first).
REPLAY_CHUNK = 500

# Fields that tell two records of the same decision apart from records of other decisions.
_KEY = (
    "at",
    "allowed",
    "action",
    "actor_pk",
    "resource_model",
    "resource_pk",
    "code",
    "request_id",
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Where
# --------------------------------------------------------------------------------------------


#: The directory used when ``CLEARANCE["AUDIT_SPOOL"]`` is None; None: ``clearance-audit-spool``
#: in the system's temporary directory. The pytest plugin gives each test one of its own.
default_directory: Path | None = None


def spool_directory() -> Path:
    """The directory of the spool files (``CLEARANCE["AUDIT_SPOOL"]``)."""
    value = clearance_settings.AUDIT_SPOOL
    if value is None:
        if default_directory is not None:
            return default_directory
        return Path(tempfile.gettempdir()) / "clearance-audit-spool"
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ImproperlyConfigured(
            f"CLEARANCE['AUDIT_SPOOL'] must be a directory path or None, got {value!r}"
        )
    return Path(value)


@functools.lru_cache(maxsize=32)
def _file_name(engine: str, host: str, port: str, name: str, in_memory: bool) -> str:
    digest = hashlib.sha256(f"{engine}|{host}|{port}|{name}".encode()).hexdigest()[:12]
    if in_memory:  # an in-memory database lives and dies with this process
        digest += f"-{os.getpid()}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or "db").strip("-.")[:40] or "db"
    return f"{slug}-{digest}.jsonl"


def spool_path() -> Path:
    """The spool file of the current audit database (one file per database)."""
    conn = connections[target_alias()]
    settings = conn.settings_dict
    name = str(settings.get("NAME") or "")
    in_memory = conn.vendor == "sqlite" and ("memory" in name or not name)
    file_name = _file_name(
        str(settings.get("ENGINE", "")),
        str(settings.get("HOST") or ""),
        str(settings.get("PORT") or ""),
        name,
        in_memory,
    )
    return spool_directory() / file_name


# --------------------------------------------------------------------------------------------
# Records as lines
# --------------------------------------------------------------------------------------------


def _fields(record: AuditRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for field in record._meta.concrete_fields:
        if field.primary_key:
            continue
        value = field.value_from_object(record)
        fields[field.attname] = value.isoformat() if isinstance(value, dt.datetime) else value
    return fields


def _record(fields: dict[str, Any]) -> AuditRecord:
    from .models import AuditRecord

    known = {f.attname for f in AuditRecord._meta.concrete_fields if not f.primary_key}
    values = {k: v for k, v in fields.items() if k in known}
    values["at"] = dt.datetime.fromisoformat(values["at"])
    return AuditRecord(**values)


def identity(record: AuditRecord) -> str:
    """A record in one line: when, who, what, on what, the code and the request id."""
    at = record.at.isoformat() if isinstance(record.at, dt.datetime) else str(record.at)
    resource = f"{record.resource_model}:{record.resource_pk}" if record.resource_model else "-"
    return (
        f"at={at} action={record.action} actor={record.actor_label}:{record.actor_pk} "
        f"resource={resource} code={record.code} request_id={record.request_id or '-'}"
    )


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


@contextmanager
def _locked(path: Path, *, create: bool, wait: bool = True) -> Iterator[int | None]:
    """An open descriptor of ``path`` under an exclusive lock; None when it cannot be had."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
    if create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        yield None
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield None
                return
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _read(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _append(records: list[AuditRecord]) -> Path:
    path = spool_path()
    data = b"".join(
        json.dumps(_fields(r), default=str, ensure_ascii=False).encode() + b"\n" for r in records
    )
    with _locked(path, create=True) as fd:
        assert fd is not None
        _write_all(fd, data)
        os.fsync(fd)
    return path


def pending() -> int:
    """How many records wait in the spool of the current audit database."""
    try:
        with spool_path().open("rb") as spool:
            return sum(1 for line in spool if line.strip())
    except FileNotFoundError:
        return 0


def waiting() -> list[AuditRecord]:
    """The records waiting in the spool of the current audit database, oldest first."""
    try:
        with spool_path().open("rb") as spool:
            lines = [line for line in spool if line.strip()]
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(_record(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _has_pending() -> bool:
    try:
        return spool_path().stat().st_size > 0
    except (OSError, ImproperlyConfigured):
        return False


# --------------------------------------------------------------------------------------------
# Keeping and replaying
# --------------------------------------------------------------------------------------------


def keep(records: list[AuditRecord], error: BaseException) -> Path | None:
    """Keep ``records`` the database did not take: spool, ERROR per record, ``audit_failed``.

    Returns the spool file, or None when the records could not be written there either (they
    are then only in the log stream, in the ERROR's ``audit_record``).
    """
    path: Path | None
    try:
        path = _append(records)
    except Exception:
        logger.exception("Audit: the spool could not keep %d record(s)", len(records))
        path = None
    where = f"kept in the spool {path}" if path is not None else "NOT kept in the spool"
    for record in records:
        audit_logger.error(
            "Audit record not written to the table (%s: %s), %s: %s",
            type(error).__name__,
            error,
            where,
            identity(record),
            extra={"audit_record": _fields(record), "audit_spool": str(path) if path else None},
        )
        for receiver, response in audit_failed.send_robust(
            sender=type(record), record=record, error=error, spooled=path
        ):
            if isinstance(response, Exception):
                logger.error(
                    "Audit: a receiver of audit_failed raised: %r",
                    receiver,
                    exc_info=(type(response), response, response.__traceback__),
                )
    return path


def _insert(records: list[AuditRecord]) -> None:
    from .models import AuditRecord

    conn = writer()
    failed = True
    try:
        with bounded(conn):
            held = set(
                AuditRecord.objects.using(conn.alias)
                .filter(at__in={r.at for r in records})
                .values_list(*_KEY)
            )
            fresh = [r for r in records if tuple(getattr(r, k) for k in _KEY) not in held]
            if fresh:
                AuditRecord.objects.using(conn.alias).bulk_create(fresh)
        failed = False
    finally:
        after_write(conn, failed=failed)


def replay(*, limit: int | None = REPLAY_CHUNK, wait: bool = False) -> int:
    """Write records from the spool into the table; returns how many left the spool.

    Oldest first, at most ``limit`` (None: all), in one statement; records the table already
    holds (same time, action, actor, resource, code and request id) are not written twice.
    Returns 0 at once when another process is replaying (unless ``wait``). Raises when the
    database refuses the write; the records then stay in the spool.
    """
    with _locked(spool_path(), create=False, wait=wait) as fd:
        if fd is None:
            return 0
        lines = [line for line in _read(fd).splitlines() if line.strip()]
        if not lines:
            return 0
        take = lines if limit is None else lines[:limit]
        records = []
        unreadable = []
        for line in take:
            try:
                records.append(_record(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                unreadable.append(line)
        if records:
            write_retrying(functools.partial(_insert, records))
        rest = unreadable + lines[len(take) :]
        os.ftruncate(fd, 0)
        if rest:
            _write_all(fd, b"".join(line + b"\n" for line in rest))
        os.fsync(fd)
        if unreadable:
            logger.error("Audit: %d unreadable line(s) stay in the spool", len(unreadable))
        return len(records)


def _replay_after_success() -> None:
    if not _has_pending():
        return
    try:
        written = replay()
    except Exception:
        logger.exception("Audit: replaying the spool failed; its records stay there")
    else:
        if written:
            logger.warning("Audit: %d record(s) replayed from the spool into the table", written)


def kept_on_failure(
    records_of: Callable[[list[_T]], list[AuditRecord]],
) -> Callable[[Callable[[list[_T]], None]], Callable[[list[_T]], None]]:
    """Decorate a function that writes audit records (``sinks.write_decisions``).

    The write is retried once on a fresh connection when its connection broke
    (:func:`clearance.audit.connection.write_retrying`); if it still fails, the records
    (``records_of(items)``) are kept (:func:`keep`) and the error raised again. When it failed
    for want of the database (a timeout, a dropped connection), the later writes of the same
    recording scope (the same request) are kept at once without waiting for the database
    again. After a write that succeeds, records waiting in the spool are replayed.
    """

    def decorate(write: Callable[[list[_T]], None]) -> Callable[[list[_T]], None]:
        @functools.wraps(write)
        def guarded(items: list[_T]) -> None:
            if given_up():
                # An earlier write of this request already waited for the database in vain.
                skipped = OperationalError(
                    "an earlier audit write of this scope found the database unavailable"
                )
                keep(records_of(items), skipped)
                raise skipped
            try:
                write_retrying(functools.partial(write, items))
            except Exception as exc:
                if database_unavailable(exc):
                    give_up()
                keep(records_of(items), exc)
                raise
            _replay_after_success()

        return guarded

    return decorate
