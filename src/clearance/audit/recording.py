"""A recording scope: the unit of work (a request, a job) audit writes are grouped in.

Inside ``with recording():`` (``ClearanceMiddleware`` opens one per request; wrap a job's unit
of work, a task or a management command's loop, in one yourself):

* the records of the scope's decisions are buffered by the built-in sinks and written
  together (the database sink with one ``INSERT`` statement, the logging sink line after
  line), when the scope ends (for a request: when the response is ready,
  before it is sent), and earlier whenever ``CLEARANCE["AUDIT_BATCH_SIZE"]`` records wait;
* the dedicated audit connection stays open until the scope ends (outside a scope it is
  opened and closed around each write).

Outside any scope (a script, a job, a shell, a thread of its own), the database sink's records
go to the process's buffer, :data:`pending`, which is written with one statement

* as soon as ``AUDIT_BATCH_SIZE`` records wait;
* when its oldest record is ``CLEARANCE["AUDIT_FLUSH_INTERVAL"]`` seconds old (1 by default):
  checked on each new record, and by a daemon thread that wakes when that age is reached;
* when the process exits normally (``atexit``: the end of a management command or a script);
* when the process reads the audit table (``AuditRecord.objects``), so that it sees its own
  records;
* when :func:`flush_pending` is called (call it at the end of a job's unit of work when the
  records must be in the table before the next line).

Records in a buffer are written through the audit connection chosen when they are written
(:func:`~clearance.audit.connection.writer`), outside the caller's transaction: a denial made
in an ``atomic`` block that then rolls back still lands. (On SQLite sharing the caller's
database file, the buffer is not written from inside the caller's transaction; the daemon
thread writes it when that transaction ends.)

With ``AUDIT_BATCH_SIZE = 1`` and in fail-closed mode (``AUDIT_FAIL_CLOSED``), each record is
written at once. With ``AUDIT_WRITE_THROUGH`` every denial of an attempt is written at once
too, the rest buffered.

**The crash window.** A buffered record lives in the process's memory until it is written: if
the process dies in between (killed with SIGKILL, out of memory, power cut), the records not yet
written are lost: in a scope, those of the decisions made so far in it (at most
``AUDIT_BATCH_SIZE``); outside a scope, at most ``AUDIT_BATCH_SIZE`` records and at most
``AUDIT_FLUSH_INTERVAL`` seconds of them (plus the time one write takes). An exception, a
rolled-back transaction, a failed response or a normal exit is not a crash: the records are
written. Set ``AUDIT_WRITE_THROUGH = True`` when a denial must be durable before the caller
hears of it.

Nested scopes share the outermost scope's buffer, which is written when that scope ends.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from asgiref.sync import sync_to_async

from .connection import (
    buffered_write,
    close_connection,
    hold,
    shares_caller_transaction,
    target_alias,
    targeting,
    unhold,
)

__all__ = ["Pending", "Recording", "current_recording", "flush_pending", "pending", "recording"]

logger = logging.getLogger("clearance")

_current: ContextVar[Recording | None] = ContextVar("clearance_audit_recording", default=None)

#: Writes a list of buffered items (what the sink passed to :meth:`Recording.buffer`).
Writer = Callable[[list[Any]], None]


def current_recording() -> Recording | None:
    """The innermost open recording scope, or None."""
    return _current.get()


class Recording:
    """A recording scope; open one with :func:`recording`.

    Usable as ``with`` and ``async with`` (the async form writes the buffer and releases the
    connection in the worker thread that made the decisions).
    """

    def __init__(self) -> None:
        self._buffers: dict[Writer, list[Any]] = {}
        self._lock = threading.Lock()
        self._previous: Recording | None = None
        self._root: Recording = self
        self._depth = 0

    def buffer(self, item: Any, write: Writer, limit: int) -> None:
        """Add ``item`` for ``write``; once ``limit`` items wait, write them all."""
        root = self._root
        with root._lock:
            items = root._buffers.setdefault(write, [])
            items.append(item)
            full = len(items) >= limit
        if full:
            root.flush()

    @property
    def pending(self) -> int:
        """How many decisions wait for a sink to write their record (the longest buffer)."""
        return max((len(items) for items in self._root._buffers.values()), default=0)

    def flush(self) -> None:
        """Write the buffered records now.

        A write that fails is logged at ERROR; the database sink has already kept the batch in
        the spool (see :mod:`clearance.audit.spool`), which is replayed after the next write
        that succeeds.
        """
        root = self._root
        with root._lock:
            buffers, root._buffers = root._buffers, {}
        if pending.count:
            pending.flush(inline=True)  # older records first
        for write, items in buffers.items():
            if not items:
                continue
            try:
                with buffered_write():
                    write(items)
            except Exception:
                logger.exception("Audit: writing %d buffered record(s) failed", len(items))

    def __enter__(self) -> Recording:
        self._previous = _current.get()
        self._root = self._previous._root if self._previous is not None else self
        _current.set(self)
        self._depth = hold()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._root is self:
                self.flush()
        finally:
            _current.set(self._previous)
            unhold(self._depth)

    async def __aenter__(self) -> Recording:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Decisions were recorded in the worker thread; write and release there too.
        await sync_to_async(self.__exit__)(exc_type, exc, tb)


def recording() -> Recording:
    """Open a recording scope (see the module documentation)."""
    return Recording()


# --------------------------------------------------------------------------------------------
# Outside any scope: the process's buffer
# --------------------------------------------------------------------------------------------


class Pending:
    """The buffer of records decided outside any recording scope (one per process).

    See the module documentation for when it is written. Thread-safe: every thread of the
    process adds to it, and whichever thread finds it due writes it (or the daemon thread).
    """

    def __init__(self) -> None:
        # Per writer and audit database alias (chosen when the decision was made).
        self._buffers: dict[tuple[Writer, str], list[Any]] = {}
        self._lock = threading.Lock()
        self._oldest: float | None = None
        self._interval: float | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        #: False under the pytest plugin: records are then written when each test ends (or
        #: reads them), never by the daemon thread in the middle of another test.
        self.timer = True

    @property
    def count(self) -> int:
        """How many records wait (all sinks)."""
        return sum(len(items) for items in self._buffers.values())

    def buffer(self, item: Any, write: Writer, limit: int, interval: float | None) -> None:
        """Add ``item`` for ``write``; write the buffer when it is due (see the module docs)."""
        now = time.monotonic()
        key = (write, target_alias())
        with self._lock:
            items = self._buffers.setdefault(key, [])
            items.append(item)
            if self._oldest is None:
                self._oldest = now
            self._interval = interval
            due = len(items) >= limit or (interval is not None and now - self._oldest >= interval)
            if interval is not None and self.timer and self._thread is None:
                self._start()
        if due:
            self.flush(inline=True)
        elif len(items) == 1:
            self._wake.set()  # the daemon thread sleeps until this record is due

    def flush(self, *, inline: bool = False) -> None:
        """Write every waiting record now.

        ``inline``: called on the way of the caller's own work; skipped when the write would
        join the caller's transaction (SQLite sharing its database file), left to the daemon
        thread or the next trigger.
        """
        if not self._buffers:
            return
        if inline and shares_caller_transaction():
            return
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            self._oldest = None
        for (write, alias), items in buffers.items():
            if not items:
                continue
            try:
                with targeting(alias), buffered_write():
                    write(items)
            except Exception:
                logger.exception("Audit: writing %d buffered record(s) failed", len(items))

    def write_waiting(self) -> None:
        """Write the waiting records, unless that would join the caller's transaction (called
        before the audit table is read, so that a process reads its own records)."""
        if self.count:
            self.flush(inline=True)

    def discard(self) -> int:
        """Drop every waiting record without writing it; returns how many (for tests)."""
        with self._lock:
            count = sum(len(items) for items in self._buffers.values())
            self._buffers = {}
            self._oldest = None
        return count

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="clearance-audit-flush", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                oldest, interval = self._oldest, self._interval
            if oldest is None or interval is None or not self.timer:
                wait: float | None = None  # nothing waits: sleep until a record arrives
            else:
                wait = oldest + interval - time.monotonic()
            if wait is None or wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            try:
                self.flush()
            finally:
                _close_thread_connections()

    def _after_fork(self) -> None:
        # The child starts empty: the parent writes its own records, and has the thread.
        self._buffers = {}
        self._oldest = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None


def _close_thread_connections() -> None:
    from django.db import connections

    close_connection()
    for conn in connections.all(initialized_only=True):
        conn.close()


#: The process's buffer of records decided outside any recording scope.
pending = Pending()


def flush_pending() -> None:
    """Write the records decided outside any recording scope that still wait, now."""
    pending.flush()


def _flush_at_exit() -> None:
    with suppress(Exception):  # flush logs its failures; never fail the interpreter's exit
        pending.flush()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=pending._after_fork)
