"""A recording scope: the unit of work (a request, a job) audit writes are grouped in.

Inside ``with recording():`` (``ClearanceMiddleware`` opens one per request; wrap a job's unit
of work, a task or a management command's loop, in one yourself):

* the records of the scope's decisions are buffered by the built-in sinks and written
  together (the database sink with one ``INSERT`` statement, the logging sink line after
  line), when the scope ends (for a request: when the response is ready,
  before it is sent), and earlier whenever ``CLEARANCE["AUDIT_BATCH_SIZE"]`` records wait;
* the dedicated audit connection stays open until the scope ends (outside a scope it is
  opened and closed around each write).

Outside a scope, with ``AUDIT_BATCH_SIZE = 1`` and in fail-closed mode
(``AUDIT_FAIL_CLOSED``), each record is written at once. With ``AUDIT_WRITE_THROUGH`` every
denial of an attempt is written at once too, the rest buffered.

**The crash window.** A buffered record lives in the process's memory until its scope writes
it: if the process dies in between (killed, out of memory, power cut), the records of the
decisions made so far in that scope are lost, at most ``AUDIT_BATCH_SIZE`` of them. An
exception, a rolled-back transaction or a failed response is not a crash: the scope still
writes its records when it ends. Set ``AUDIT_WRITE_THROUGH = True`` when a denial must be
durable before the caller hears of it.

Nested scopes share the outermost scope's buffer, which is written when that scope ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from asgiref.sync import sync_to_async

from .connection import hold, unhold

__all__ = ["Recording", "current_recording", "recording"]

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
        for write, items in buffers.items():
            if not items:
                continue
            try:
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
