"""The connection audit rows are written through, kept outside the caller's transaction.

A denial must survive the rollback of the transaction it was decided in. The audit write
therefore never goes through a connection the caller may have a transaction open on:

* **Target.** The audit database is ``CLEARANCE["AUDIT_DATABASE"]`` when set, otherwise
  the database the routers send ``AuditRecord`` writes to (``router.db_for_write``).
* **Client/server databases (PostgreSQL, MySQL, ...).** When the caller has no transaction
  open on the target (autocommit), the insert goes through the target's ordinary connection and
  is committed at once: there is nothing to roll back. When it has one (an atomic block,
  ``ATOMIC_REQUESTS``, ``perform()``, a test case), the insert goes through a *dedicated
  connection*: a second ``DatabaseWrapper`` built at runtime from the target alias's current
  settings (so under a test runner it points at the test database), in autocommit, placed in
  ``django.db.connections`` under the private alias ``clearance_audit__<target>`` for the
  current thread (or async context) only, like Django's own connections. Each write commits on
  its own, whatever the caller's transaction does next. Inside :func:`clearance.audit.recording`
  (the middleware opens one per request) that connection stays open until the scope ends, then
  is closed or kept according to the target's ``CONN_MAX_AGE``; outside a scope it is closed
  after each write, so no idle connection outlives the work that opened it. (Transactions a
  ``TestCase`` opens around a test do not count, as for ``atomic(durable=True)``.)
* **SQLite** allows one writer per file: a second connection to the file the caller is writing
  would wait for the caller's own transaction. There the write goes through the target alias's
  own connection, and it survives a rollback when the target is a database of its own
  (``AUDIT_DATABASE = "audit"``, a second SQLite file) that the caller does not hold open in a
  transaction (do not set ``ATOMIC_REQUESTS`` on it). Such a database of its own (no other
  alias names its file) is switched to write-ahead logging with ``synchronous = NORMAL`` the
  first time audit rows are written through a connection (unless its ``OPTIONS["init_command"]``
  sets ``journal_mode`` or ``synchronous`` itself): a write then costs no ``fsync``, and a
  committed record still survives the process crashing or being killed; only an operating
  system crash or a power cut may lose the last records committed before SQLite's next
  checkpoint (as SQLite documents for WAL with ``synchronous = NORMAL``).

Faults (see :func:`write_retrying` and :func:`bounded`):

* **Health before reuse.** The dedicated connection runs with Django's ``CONN_HEALTH_CHECKS``
  on, whatever the target's own settings say: kept from an earlier scope (``CONN_MAX_AGE``), it
  is checked once before it is used again, and reopened when the server dropped it.
* **One retry on a fresh connection.** A write that fails because its connection broke (the
  server restarted, or ended the backend) is written once more, through a newly opened dedicated
  connection. A write that was refused or timed out is not retried.
* **Bounded waits.** On PostgreSQL every audit write runs in a transaction of its own with
  ``lock_timeout`` and ``statement_timeout`` set for that transaction only
  (``CLEARANCE["AUDIT_LOCK_TIMEOUT"]`` and ``["AUDIT_STATEMENT_TIMEOUT"]``, in seconds), so a
  locked or overloaded audit table fails the write quickly instead of stalling the request;
  the record then goes to the spool (:mod:`clearance.audit.spool`). The database sink sends
  the settings as ``SET LOCAL`` statements in the same query string as its ``INSERT``: one
  statement and one round trip per write (:func:`one_trip_settings`), and nothing set on a
  connection outlives the write, whichever connection it is and however often it was reused
  or reopened.
* **Sharing.** With ``CLEARANCE["AUDIT_CONNECTION"] = "process"`` the writes that would use
  the dedicated connection go through one connection per process instead, shared by its
  threads one write at a time behind a lock (``clearance_audit_shared__<target>``, visible in
  ``django.db.connections`` only to the thread writing).

No part of Django's transaction machinery is patched: the durability comes from writing on a
connection that has no transaction of the caller's.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.utils.connection import ConnectionDoesNotExist

from ..conf import clearance_settings

__all__ = [
    "PRIVATE_PREFIX",
    "SHARED_PREFIX",
    "after_write",
    "bounded",
    "buffered_write",
    "close_connection",
    "give_up",
    "given_up",
    "held_connection",
    "hold",
    "in_transaction",
    "one_trip_settings",
    "shares_caller_transaction",
    "target_alias",
    "targeting",
    "unhold",
    "write_retrying",
    "writer",
]

logger = logging.getLogger("clearance")

_T = TypeVar("_T")

#: Prefix of the private alias of the dedicated connection (``clearance_audit__<target>``).
PRIVATE_PREFIX = "clearance_audit__"

#: Prefix of the alias of the connection shared by a process (``AUDIT_CONNECTION = "process"``).
SHARED_PREFIX = "clearance_audit_shared__"

# Settings that decide which server and database a connection talks to.
_IDENTITY = ("ENGINE", "NAME", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")

# Depth of held_connection() scopes in the current context.
_held: ContextVar[int] = ContextVar("clearance_audit_held", default=0)

# Set when an audit write inside a scope failed for want of the database (timeout, dropped
# connection): the scope's later writes go to the spool at once instead of waiting again.
_gave_up: ContextVar[bool] = ContextVar("clearance_audit_gave_up", default=False)

# Set while a failed write is retried: writer() then opens a fresh dedicated connection.
_fresh: ContextVar[bool] = ContextVar("clearance_audit_fresh", default=False)

# AUDIT_CONNECTION = "process": one wrapper per target, used by one thread at a time.
_shared: dict[str, BaseDatabaseWrapper] = {}
_shared_lock = threading.Lock()
_shared_used: dict[str, float] = {}
# A shared connection idle this long is health-checked before it is used again (seconds).
_SHARED_IDLE_CHECK = 5.0

# Causes of an OperationalError that say the statement was refused in time, not that the
# connection broke (psycopg's class names): such a write is not retried.
_NOT_RETRIED = frozenset({"QueryCanceled", "LockNotAvailable"})


# Set while records buffered earlier are written: the alias chosen when they were decided.
_target: ContextVar[str | None] = ContextVar("clearance_audit_target", default=None)


@contextmanager
def targeting(alias: str) -> Iterator[None]:
    """Within the block, audit writes go to ``alias`` (where buffered records were meant to go
    when they were decided, whatever the settings say by the time they are written)."""
    token = _target.set(alias)
    try:
        yield
    finally:
        _target.reset(token)


def target_alias() -> str:
    """The database alias audit records are written to."""
    fixed = _target.get()
    if fixed is not None and fixed in connections:
        return fixed
    alias = clearance_settings.AUDIT_DATABASE
    if alias:
        if not isinstance(alias, str) or alias not in connections:
            raise ImproperlyConfigured(
                f"CLEARANCE['AUDIT_DATABASE'] is {alias!r}, which is not an alias in "
                f"settings.DATABASES ({', '.join(connections)})"
            )
        return alias
    from .models import AuditRecord

    return router.db_for_write(AuditRecord)


def _dedicated(target: str) -> BaseDatabaseWrapper:
    source = connections[target]
    alias = PRIVATE_PREFIX + target
    try:
        conn: BaseDatabaseWrapper | None = connections[alias]
    except ConnectionDoesNotExist:
        conn = None
    if conn is not None and _moved(conn, source):
        conn.close()
        conn = None
    if conn is None:
        conn = _wrapper(source, alias)
        connections[alias] = conn
    return conn


def _moved(conn: BaseDatabaseWrapper, source: BaseDatabaseWrapper) -> bool:
    """Whether ``source`` now points elsewhere (a test runner switched to the test database)."""
    return any(conn.settings_dict.get(key) != source.settings_dict.get(key) for key in _IDENTITY)


def _wrapper(source: BaseDatabaseWrapper, alias: str, **settings: Any) -> BaseDatabaseWrapper:
    """A new connection to ``source``'s database under ``alias``, in autocommit, outside
    ``ATOMIC_REQUESTS``, and checked before it is reused, whatever ``CONN_MAX_AGE`` keeps it for
    (``settings`` override more)."""
    copied = copy.deepcopy(source.settings_dict)
    copied.update(ATOMIC_REQUESTS=False, AUTOCOMMIT=True, CONN_HEALTH_CHECKS=True, **settings)
    return cast(BaseDatabaseWrapper, load_backend(copied["ENGINE"]).DatabaseWrapper(copied, alias))


def in_transaction(conn: BaseDatabaseWrapper) -> bool:
    """Whether the code being run holds a transaction open on ``conn``.

    An atomic block, or autocommit turned off. Atomic blocks a ``django.test.TestCase`` opened
    around the test do not count, as for Django's own ``atomic(durable=True)``: a decision made
    directly in such a test is written in the test's transaction and rolled back with it.
    """
    if conn.in_atomic_block:
        return any(not getattr(block, "_from_testcase", False) for block in conn.atomic_blocks)
    return conn.connection is not None and not conn.autocommit


def shares_caller_transaction() -> bool:
    """Whether an audit write now would join a transaction the caller holds (SQLite writing
    into the very database file, and connection, the caller has a transaction open on)."""
    source = connections[target_alias()]
    return source.vendor == "sqlite" and in_transaction(source)


def _sharing() -> bool:
    mode = clearance_settings.AUDIT_CONNECTION
    if mode not in ("thread", "process"):
        raise ImproperlyConfigured(
            f"CLEARANCE['AUDIT_CONNECTION'] must be 'thread' or 'process', got {mode!r}"
        )
    return bool(mode == "process")


def _shared_writer(target: str) -> BaseDatabaseWrapper:
    """The process's shared audit connection to ``target``, locked for the caller.

    The lock is released by :func:`after_write`. Waiting for it is bounded by twice
    ``AUDIT_STATEMENT_TIMEOUT`` (another thread holds it for one write, and its retry); then
    the write fails like any other and its records go to the spool.
    """
    wait = clearance_settings.AUDIT_STATEMENT_TIMEOUT
    if not _shared_lock.acquire(timeout=-1 if wait is None else float(wait) * 2):
        raise OperationalError("the shared audit connection stayed busy; gave up waiting")
    try:
        source = connections[target]
        alias = SHARED_PREFIX + target
        conn = _shared.get(target)
        if conn is not None and _moved(conn, source):
            conn.close()
            conn = None
        if conn is None:
            # Kept for the process (CONN_MAX_AGE None); checked when idle.
            conn = _wrapper(source, alias, CONN_MAX_AGE=None)
            conn.inc_thread_sharing()  # used by every thread of the process, one at a time
            _shared[target] = conn
        if _fresh.get():
            conn.close()
        elif time.monotonic() - _shared_used.get(target, 0.0) > _SHARED_IDLE_CHECK:
            conn.health_check_done = False  # type: ignore[attr-defined]
            conn.close_if_health_check_failed()
        # Visible to the ORM (using=alias) in this thread, for this write only.
        connections[alias] = conn
        return conn
    except BaseException:
        _shared_lock.release()
        raise


def _release_shared(conn: BaseDatabaseWrapper, *, failed: bool) -> None:
    try:
        if failed:
            conn.close()
        _shared_used[conn.alias[len(SHARED_PREFIX) :]] = time.monotonic()
        with suppress(AttributeError):
            del connections[conn.alias]
    finally:
        _shared_lock.release()


def writer() -> BaseDatabaseWrapper:
    """The connection the next audit write goes through (see the module documentation)."""
    target = target_alias()
    source = connections[target]
    if source.vendor == "sqlite":
        _tune_sqlite(target, source)
        return source
    if (_fresh.get() or in_transaction(source)) and _sharing():
        return _shared_writer(target)
    if _fresh.get():
        conn = _dedicated(target)
        conn.close()  # the retry of a write whose connection broke: open a new one
        return conn
    if not in_transaction(source):
        return source
    conn = _dedicated(target)
    # Kept from an earlier scope: SELECT 1 once before it is used again (CONN_HEALTH_CHECKS).
    conn.close_if_health_check_failed()
    return conn


def _own_sqlite_file(target: str, source: BaseDatabaseWrapper) -> bool:
    """Whether ``target`` is an SQLite database file no other alias uses (nor in memory)."""
    name = str(source.settings_dict.get("NAME") or "")
    if not name or ":memory:" in name or "mode=memory" in name:
        return False
    init = str((source.settings_dict.get("OPTIONS") or {}).get("init_command") or "").lower()
    if "journal_mode" in init or "synchronous" in init:
        return False  # the project chose for itself
    return not any(
        alias != target and str(settings.get("NAME") or "") == name
        for alias, settings in connections.settings.items()
    )


def _tune_sqlite(target: str, source: BaseDatabaseWrapper) -> None:
    """WAL and ``synchronous = NORMAL`` on an audit database of its own, once per connection
    (see the module documentation)."""
    if source.in_atomic_block or not _own_sqlite_file(target, source):
        return
    source.ensure_connection()
    raw = source.connection
    if getattr(source, "_clearance_tuned", None) is raw:
        return
    with suppress(DatabaseError, sqlite3.Error), source.wrap_database_errors:
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
    source._clearance_tuned = raw  # type: ignore[attr-defined]


def _milliseconds(name: str) -> int | None:
    value = getattr(clearance_settings, name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(
            f"CLEARANCE[{name!r}] must be a number of seconds above 0, or None; got {value!r}"
        )
    return max(1, round(value * 1000))


# Set while buffered records are written (see bounded()).
_buffered: ContextVar[bool] = ContextVar("clearance_audit_buffered", default=False)


@contextmanager
def buffered_write() -> Iterator[None]:
    """Within the block, audit writes carry buffered records: on PostgreSQL they commit without
    waiting for the server's disk (``synchronous_commit = off``, see :func:`bounded`)."""
    token = _buffered.set(True)
    try:
        yield
    finally:
        _buffered.reset(token)


def _write_settings() -> list[tuple[str, str]]:
    """``(name, value)`` of what a PostgreSQL audit write sets for its transaction (see
    :func:`bounded`): both timeouts when either is configured, and ``synchronous_commit = off``
    while buffered records are written."""
    settings: list[tuple[str, str]] = []
    timeouts = (_milliseconds("AUDIT_LOCK_TIMEOUT"), _milliseconds("AUDIT_STATEMENT_TIMEOUT"))
    if timeouts != (None, None):
        lock, statement = (f"{ms}ms" if ms is not None else "0" for ms in timeouts)
        settings += [("lock_timeout", lock), ("statement_timeout", statement)]
    if _buffered.get():
        settings.append(("synchronous_commit", "off"))
    return settings


def one_trip_settings(conn: BaseDatabaseWrapper) -> str | None:
    """What to send ahead of an audit ``INSERT`` on ``conn``, in the same statement text, so
    that the write takes one round trip and one statement: ``SET LOCAL`` of every setting
    :func:`bounded` would make, each followed by ``"; "`` (``""`` when there are none).

    Only on PostgreSQL, and only when ``conn`` is in autocommit outside any atomic block (the
    ordinary connection of a caller holding no transaction, the dedicated and the shared audit
    connections). Several statements sent as one query string run in one implicit
    transaction: the ``SET LOCAL`` values hold for the ``INSERT`` that follows (the server
    reads ``lock_timeout`` when the insert waits for its table lock, and starts each
    statement's ``statement_timeout`` afresh) and end with it, committed or rolled back
    together; nothing outlives the write on the connection, which matters on the caller's own
    connection and behind a pooler that hands connections to other clients between
    transactions. The text must then be sent without parameters (values inlined and quoted
    client-side), as a query string with parameters allows one statement only when the driver
    binds them on the server.

    None elsewhere: write inside :func:`bounded` instead.
    """
    if conn.vendor != "postgresql" or conn.in_atomic_block or not conn.get_autocommit():
        return None
    return "".join(f"SET LOCAL {name} = '{value}'; " for name, value in _write_settings())


@contextmanager
def bounded(conn: BaseDatabaseWrapper) -> Iterator[None]:
    """The block an audit write on ``conn`` runs in.

    On PostgreSQL: a transaction (a savepoint when the caller holds one on ``conn``) with
    ``lock_timeout`` and ``statement_timeout`` set to ``CLEARANCE["AUDIT_LOCK_TIMEOUT"]`` and
    ``["AUDIT_STATEMENT_TIMEOUT"]`` for that transaction only, and, when it writes buffered
    records (:func:`buffered_write`), ``synchronous_commit = off``: the commit returns before
    the server has flushed it to disk. A committed record survives the application and its
    connection dying; only a crash of the database server (or its machine) within about three
    times its ``wal_writer_delay`` (0.6 s by default) may lose it, a window smaller than the one
    the buffer itself opens. Records written at once (``AUDIT_WRITE_THROUGH``, fail-closed
    mode, ``AUDIT_BATCH_SIZE = 1``) keep a synchronous commit. All of it is set in the one
    ``SELECT`` that precedes the insert. Elsewhere: a savepoint when the caller holds a
    transaction on ``conn`` (so a failed audit write never breaks it), else nothing.

    The database sink's rows avoid that ``SELECT`` where they can: see
    :func:`one_trip_settings`.
    """
    postgres = conn.vendor == "postgresql"
    if not postgres and not in_transaction(conn):
        yield
        return
    settings = _write_settings() if postgres else []
    names = [name for name, _ in settings]
    values = [value for _, value in settings]
    with transaction.atomic(using=conn.alias):
        if not names:
            yield
            return
        nested = len(conn.atomic_blocks) > 1
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT "
                + ", ".join(
                    [f"current_setting('{name}')" for name in names]
                    + [f"set_config('{name}', %s, true)" for name in names]
                ),
                values,
            )
            previous = cursor.fetchone()
        yield
        if nested and previous is not None:
            # SET LOCAL outlives a released savepoint: give the caller's transaction its own
            # values back (only in a transaction a test case holds; see writer()).
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in names),
                    list(previous[: len(names)]),
                )


def _connection_broke(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        cause = exc.__cause__
        names = {cls.__name__ for cls in type(cause).__mro__} if cause is not None else set()
        return not names & _NOT_RETRIED
    return False


def write_retrying(write: Callable[[], _T]) -> _T:
    """Run ``write()``; if its connection broke, run it once more on a fresh connection.

    ``write`` takes its connection from :func:`writer`. On client/server databases, when the
    first attempt failed with an error that says the connection is gone (``InterfaceError``,
    or an ``OperationalError`` other than a lock or statement timeout), the second attempt goes
    through a newly opened dedicated connection. Anything else is raised at once.
    """
    try:
        return write()
    except (OperationalError, InterfaceError) as exc:
        if not _connection_broke(exc) or connections[target_alias()].vendor == "sqlite":
            raise
        logger.warning("Audit write failed (%s); retrying once on a fresh connection", exc)
    token = _fresh.set(True)
    try:
        return write()
    finally:
        _fresh.reset(token)


def _release(conn: BaseDatabaseWrapper, *, keep_alive: bool) -> None:
    if not conn.alias.startswith(PRIVATE_PREFIX):
        return
    if keep_alive:
        conn.close_if_unusable_or_obsolete()
    else:
        conn.close()


def after_write(conn: BaseDatabaseWrapper, *, failed: bool = False) -> None:
    """Release ``conn`` after a write: closed outside a scope or when the write failed."""
    if conn.alias.startswith(SHARED_PREFIX):
        _release_shared(conn, failed=failed)
        return
    if failed or _held.get() == 0:
        _release(conn, keep_alive=False)


@contextmanager
def held_connection() -> Iterator[None]:
    """Keep the dedicated audit connection open for the duration of the block.

    At the end of the outermost block the connection is closed, or kept for the next scope
    when the target database has a ``CONN_MAX_AGE`` that allows it.
    """
    depth = hold()
    try:
        yield
    finally:
        unhold(depth)


def hold() -> int:
    """Enter a holding scope; returns the depth to pass to :func:`unhold`."""
    depth = _held.get()
    _held.set(depth + 1)
    return depth


def unhold(depth: int) -> None:
    """Leave a holding scope entered at ``depth``; the outermost one releases the connection."""
    _held.set(depth)
    if depth == 0:
        _gave_up.set(False)
        close_connection(keep_alive=True)


def give_up() -> None:
    """Inside a scope: send the scope's later audit writes to the spool without waiting.

    Called after a write failed because the database was unavailable, so that a request which
    records several decisions waits for the audit table once, not once per decision.
    """
    if _held.get() > 0:
        _gave_up.set(True)


def given_up() -> bool:
    """Whether an audit write of the current scope already failed for want of the database."""
    return _gave_up.get()


def close_connection(*, keep_alive: bool = False) -> None:
    """Close this thread's dedicated audit connections (call it when a worker thread ends).

    With ``keep_alive=True``, close only those that are unusable or past ``CONN_MAX_AGE``.
    """
    for alias in list(connections):
        try:
            conn = connections[PRIVATE_PREFIX + alias]
        except ConnectionDoesNotExist:
            continue
        _release(conn, keep_alive=keep_alive)
