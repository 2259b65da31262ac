"""PostgreSQL: a refused request costs one audit statement, and its waits stay bounded.

The audit write sends its settings (``lock_timeout``, ``statement_timeout``, and
``synchronous_commit`` for buffered records) as ``SET LOCAL`` in the same query string as its
``INSERT``: one statement, one round trip. Statements are counted on every connection, the
dedicated audit connection included, from the moment each is created or opened.

The settings hold for that write only: never on the caller's own connection afterwards, and on
the dedicated or shared audit connection whether it is new, kept from an earlier scope
(``CONN_MAX_AGE``) or reopened after the server ended it: a locked audit table fails each such
write within the timeout, and its record goes to the spool.

These tests commit for real (``transaction=True``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created
from django.db.models import Max
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from clearance import Denied, authorize, enforce
from clearance.audit import recording
from clearance.audit.connection import PRIVATE_PREFIX, SHARED_PREFIX
from clearance.audit.models import AuditRecord
from clearance.audit.requests import request_metadata
from clearance.middleware import ClearanceMiddleware
from tests.testapp.models import Document

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DEDICATED = PRIVATE_PREFIX + "default"
LOCK_TIMEOUT = 0.2
STATEMENT_TIMEOUT = 0.4


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """alice owns it, so four-eyes refuses her approval."""
    return make_doc(owner=alice, title="own")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def fresh_audit_connections() -> Iterator[None]:
    """No dedicated or shared audit connection left over from an earlier test."""
    from clearance.audit import connection as audit_connection

    def forget() -> None:
        for alias in (DEDICATED, SHARED_PREFIX + "default"):
            try:
                connections[alias].close()
                del connections[alias]
            except Exception:
                pass
        for conn in audit_connection._shared.values():
            conn.close()
        audit_connection._shared.clear()
        audit_connection._shared_used.clear()

    forget()
    yield
    forget()


def _last_id() -> int:
    return AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


def _spooled(directory: Path) -> int:
    return sum(
        1 for f in directory.glob("*.jsonl") for line in f.read_text().splitlines() if line.strip()
    )


class Statements:
    """Every statement sent through any Django connection of this thread while counting."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self.aliases: list[str] = []
        self.watched: list[Any] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.sql.append(sql)
        self.aliases.append(context["connection"].alias)
        return execute(sql, params, many, context)

    def watch(self, conn: Any) -> None:
        if all(conn is not known for known in self.watched):
            self.watched.append(conn)
            conn.execute_wrappers.append(self)

    def audit(self) -> list[tuple[str, str]]:
        """``(alias, sql)`` of the statements that touched the audit table."""
        pairs = zip(self.aliases, self.sql, strict=True)
        return [(alias, sql) for alias, sql in pairs if "clearance_auditrecord" in sql]


@contextmanager
def counting() -> Iterator[Statements]:
    """Count statements on every connection: those configured, the audit connections that
    exist now, and any connection opened meanwhile (the dedicated one is built on demand)."""
    from clearance.audit import connection as audit_connection

    counter = Statements()
    for conn in connections.all():
        counter.watch(conn)
    for alias in (DEDICATED, SHARED_PREFIX + "default"):
        with suppress(Exception):
            counter.watch(connections[alias])
    for conn in audit_connection._shared.values():
        counter.watch(conn)

    def opened(sender: Any, connection: Any, **kwargs: Any) -> None:
        counter.watch(connection)

    connection_created.connect(opened)
    try:
        yield counter
    finally:
        connection_created.disconnect(opened)
        for conn in counter.watched:
            conn.execute_wrappers.remove(counter)


def _refused_view(
    user: User, doc: Document, atomic: bool, refused: list[Any]
) -> Callable[[Any], HttpResponse]:
    def view(request: Any) -> HttpResponse:
        # As under ATOMIC_REQUESTS when ``atomic``: the audit row then needs the dedicated
        # connection, since the caller's transaction is open when the scope's buffer is written.
        with transaction.atomic() if atomic else nullcontext():
            try:
                enforce(user, "testapp.approve", doc)
            except Denied as exc:
                refused.append(exc.decision)
                return HttpResponse(exc.reason, status=403)
            return HttpResponse("approved")

    return view


@pytest.mark.parametrize(
    ("atomic", "write_through"),
    [(False, False), (True, False), (False, True), (True, True)],
    ids=["autocommit", "atomic-request", "autocommit-write-through", "atomic-write-through"],
)
def test_a_refused_request_costs_exactly_one_audit_statement(
    alice: User,
    denied_doc: Document,
    fresh_audit_connections: None,
    atomic: bool,
    write_through: bool,
) -> None:
    hostile = "/approve/it's/\\x00/%s/$1/$$;DROP TABLE clearance_auditrecord;--/\u00e9\n"
    refused: list[Any] = []
    served = ClearanceMiddleware(_refused_view(alice, denied_doc, atomic, refused))

    def serve() -> tuple[Any, Any]:
        request = RequestFactory().post("/approve/")
        request.path = hostile
        return served(request), request

    before = _last_id()
    with override_settings(CLEARANCE={"AUDIT_SINKS": []}):
        serve()  # warm: the user's permissions and memberships are cached on the object
        with counting() as off:
            response, _ = serve()
    assert response.status_code == 403
    settings = {"AUDIT_WRITE_THROUGH": True} if write_through else {}
    with override_settings(CLEARANCE=settings), counting() as on:
        response, request = serve()
    assert response.status_code == 403
    assert len(on.sql) - len(off.sql) == 1, on.sql
    [(alias, statement)] = on.audit()
    # Written at once inside the view's transaction: through the dedicated connection; else
    # when the scope ends, after the transaction, through the ordinary one.
    assert alias == (DEDICATED if atomic and write_through else "default")
    # The write's own settings, then the row, in one statement text.
    assert statement.startswith("SET LOCAL lock_timeout = '250ms'; ")
    assert statement.count("INSERT INTO") == 1
    assert ("SET LOCAL synchronous_commit = 'off'" in statement) is not write_through
    [record] = AuditRecord.objects.filter(pk__gt=before)
    assert (record.code, record.method, record.path) == ("policy.four_eyes", "POST", hostile)
    assert record.request_id == request.clearance_request_id
    # Quoted on the client, the row is field for field the decision's.
    expected = AuditRecord.from_decision(refused[-1], request_metadata(request))
    names = [f.attname for f in AuditRecord._meta.concrete_fields if not f.primary_key]
    assert {n: getattr(record, n) for n in names} == {n: getattr(expected, n) for n in names}
    assert AuditRecord.objects.count() >= 1  # the table is still there


def test_the_settings_of_an_audit_write_never_stay_on_the_callers_connection(
    alice: User, denied_doc: Document
) -> None:
    def current() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
                "current_setting('synchronous_commit')"
            )
            return tuple(cursor.fetchone())

    before = current()
    with recording():  # buffered: the write relaxes synchronous_commit for itself
        assert not authorize(alice, "testapp.approve", denied_doc)
    with override_settings(CLEARANCE={"AUDIT_WRITE_THROUGH": True}):
        assert not authorize(alice, "testapp.approve", denied_doc)
    assert current() == before
    assert before[:2] == ("0", "0")  # the server's defaults: no statement is ever cut short


# --------------------------------------------------------------------------------------------
# Bounded waits on a kept and on a reopened audit connection
# --------------------------------------------------------------------------------------------


def _admin() -> Any:
    import psycopg

    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    )


def _terminate(pid: int) -> None:
    with _admin() as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 5
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)


@contextmanager
def locked_table() -> Iterator[None]:
    """The audit table locked by another session; released after 5 s whatever happens."""
    holder = _admin()
    holder.autocommit = False
    holder.execute("LOCK TABLE clearance_auditrecord IN ACCESS EXCLUSIVE MODE")
    lock = threading.Lock()

    def release() -> None:
        with lock:
            if not holder.closed:
                holder.rollback()
                holder.close()

    timer = threading.Timer(5, release)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        release()


def _audit_pid(mode: str) -> int:
    from clearance.audit import connection as audit_connection

    conn: Any = connections[DEDICATED] if mode == "thread" else audit_connection._shared["default"]
    assert conn.connection is not None
    return int(conn.connection.info.backend_pid)


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_kept_then_reopened_audit_connection_still_gives_up_on_a_locked_table(
    alice: User,
    denied_doc: Document,
    spool: Path,
    fresh_audit_connections: None,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = {
        "AUDIT_SPOOL": str(spool),
        "AUDIT_LOCK_TIMEOUT": LOCK_TIMEOUT,
        "AUDIT_STATEMENT_TIMEOUT": STATEMENT_TIMEOUT,
        "AUDIT_CONNECTION": mode,
    }
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 60)
    before = _last_id()

    def denied_in_a_job() -> float:
        """A denial recorded in a scope that ends inside a transaction: written through the
        audit connection. Returns how long it took."""
        started = time.monotonic()
        # A job's unit of work in a transaction: its scope's buffer is written inside it.
        with transaction.atomic(), recording():
            assert authorize(alice, "testapp.approve", denied_doc).code == "policy.four_eyes"
        return time.monotonic() - started

    opened: list[str] = []

    def created(sender: Any, connection: Any, **kwargs: Any) -> None:
        if connection.alias.startswith(("clearance_audit__", "clearance_audit_shared__")):
            opened.append(connection.alias)

    connection_created.connect(created)
    try:
        with override_settings(CLEARANCE=options):
            denied_in_a_job()  # opens the audit connection, kept for the next scope
            assert (len(opened), _spooled(spool)) == (1, 0)
            first = _audit_pid(mode)

            with locked_table():  # the next job reuses the kept connection
                elapsed = denied_in_a_job()
            assert len(opened) == 1  # reused, not reopened
            assert elapsed < STATEMENT_TIMEOUT + 0.5, f"the job waited {elapsed:.2f} s"
            assert _spooled(spool) == 1

            denied_in_a_job()  # a failed write closed it: reopened; brings the spooled one in
            assert (len(opened), _spooled(spool)) == (2, 0)
            second = _audit_pid(mode)
            assert second != first

            _terminate(second)  # the server ends the kept connection between two jobs
            with locked_table():
                elapsed = denied_in_a_job()
            assert len(opened) >= 3  # found dead (before use, or by the write): reopened
            assert elapsed < STATEMENT_TIMEOUT + 0.5, f"the job waited {elapsed:.2f} s"
            assert _spooled(spool) == 1

            denied_in_a_job()  # the table is free again: this write brings the spooled one in
    finally:
        connection_created.disconnect(created)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 5
    assert _spooled(spool) == 0
