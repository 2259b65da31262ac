"""A recording scope: the unit of work (a request, a job) audit writes are grouped in.

Inside ``with recording():`` (``ClearanceMiddleware`` opens one per request):

* the dedicated audit connection stays open until the scope ends (outside a scope it is
  opened and closed around each write);
* when ``CLEARANCE["AUDIT_BATCH_SIZE"]`` is above 1, allowed decisions are buffered and written
  together with one ``bulk_create`` when the buffer is full and when the scope ends. Denials are
  always written at once. Outside a scope, and in fail-closed mode, nothing is buffered.

Nested scopes share the outermost scope's buffer, which is written when that scope ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async

from .connection import hold, unhold

if TYPE_CHECKING:
    from .models import AuditRecord

__all__ = ["Recording", "current_recording", "recording"]

logger = logging.getLogger("clearance")

_current: ContextVar[Recording | None] = ContextVar("clearance_audit_recording", default=None)

Writer = Callable[["list[AuditRecord]"], None]


def current_recording() -> Recording | None:
    """The innermost open recording scope, or None."""
    return _current.get()


class Recording:
    """A recording scope; open one with :func:`recording`.

    Usable as ``with`` and ``async with`` (the async form writes the buffer and releases the
    connection in the worker thread that made the decisions).
    """

    def __init__(self) -> None:
        self._buffer: list[AuditRecord] = []
        self._writers: list[Writer] = []
        self._lock = threading.Lock()
        self._previous: Recording | None = None
        self._root: Recording = self
        self._depth = 0

    def buffer(self, record: AuditRecord, write: Writer, limit: int) -> None:
        """Add ``record``; once ``limit`` records wait, write them all with ``write``."""
        root = self._root
        with root._lock:
            root._buffer.append(record)
            if write not in root._writers:
                root._writers.append(write)
            full = len(root._buffer) >= limit
        if full:
            root.flush()

    @property
    def pending(self) -> int:
        """How many records wait in the buffer."""
        return len(self._root._buffer)

    def flush(self) -> None:
        """Write the buffered records now. A failure is logged at ERROR (the batch is lost)."""
        root = self._root
        with root._lock:
            records, root._buffer = root._buffer, []
            writers = list(root._writers)
        if not records:
            return
        for write in writers:
            try:
                write(records)
            except Exception:
                logger.exception("Audit: writing %d batched record(s) failed", len(records))

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
