"""The audit trail under faults: no silent loss, no stall.

* The audit connection is ended by the server between two denials (``pg_terminate_backend``),
  with ``CONN_MAX_AGE`` 0 and 60: both denials are in the table.
* Audit inserts are refused for a while: every denial made meanwhile is in the spool, with one
  ``audit_failed`` signal and one ERROR each, and reaches the table once inserts work again.
* The audit table is locked: the decision returns within the configured timeout.

These tests commit for real (``transaction=True``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.models import Max
from django.test import override_settings

from clearance import authorize
from clearance.audit import recording
from clearance.audit.connection import PRIVATE_PREFIX
from clearance.audit.models import AuditRecord
from clearance.audit.recording import flush_pending
from clearance.signals import audit_failed
from tests.testapp.models import Document

DEDICATED = PRIVATE_PREFIX + "default"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Path]:
    """A spool directory of the test's own."""
    with override_settings(CLEARANCE={"AUDIT_SPOOL": str(tmp_path)}):
        yield tmp_path


@pytest.fixture
def write_through(spool: Path) -> Iterator[None]:
    """Denials written as they are made (``AUDIT_WRITE_THROUGH``), not when the recording scope
    ends: a denial inside a transaction then goes through the audit connection at once, which
    is the connection these tests end under the writer's feet."""
    with override_settings(CLEARANCE={"AUDIT_SPOOL": str(spool), "AUDIT_WRITE_THROUGH": True}):
        yield


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """alice owns it, so four-eyes refuses her approval."""
    return make_doc(owner=alice, title="own")


@pytest.fixture
def fresh_dedicated() -> Iterator[None]:
    """No dedicated audit connection left over from an earlier test (its settings are copied
    when it is created)."""
    _drop_dedicated()
    yield
    _drop_dedicated()


def _drop_dedicated() -> None:
    try:
        connections[DEDICATED].close()
        del connections[DEDICATED]
    except Exception:
        pass


@pytest.fixture
def failures() -> Iterator[list[dict[str, Any]]]:
    """What ``audit_failed`` was sent with, in order."""
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    audit_failed.connect(receiver)
    yield sent
    audit_failed.disconnect(receiver)


def _last_id() -> int:
    return AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


def _pending(directory: Path) -> int:
    return sum(
        1 for f in directory.glob("*.jsonl") for line in f.read_text().splitlines() if line.strip()
    )


# --------------------------------------------------------------------------------------------
# PostgreSQL: the server ends the audit connection
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
    """End the backend ``pid`` as a server restart would, and wait until it is gone."""
    with _admin() as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        deadline = time.monotonic() + 5
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.01)


def _pid(alias: str) -> int:
    conn: Any = connections[alias]
    assert conn.connection is not None
    return int(conn.connection.info.backend_pid)


@pytest.mark.postgres
@pytest.mark.parametrize("max_age", [0, 60])
def test_a_dedicated_connection_ended_between_two_denials_loses_neither(
    max_age: int,
    alice: User,
    denied_doc: Document,
    spool: Path,
    write_through: None,
    fresh_dedicated: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", max_age)
    before = _last_id()
    with recording():  # as a request: the dedicated connection is kept between writes
        with transaction.atomic():
            assert not authorize(alice, "testapp.approve", denied_doc)
        _terminate(_pid(DEDICATED))
        with transaction.atomic():
            assert not authorize(alice, "testapp.approve", denied_doc)
    rows = AuditRecord.objects.filter(pk__gt=before)
    assert list(rows.values_list("code", flat=True)) == ["policy.four_eyes"] * 2
    assert _pending(spool) == 0  # written to the table, not kept aside


@pytest.mark.postgres
@pytest.mark.parametrize("max_age", [0, 60])
def test_a_kept_dedicated_connection_ended_between_two_requests_loses_neither_denial(
    max_age: int,
    alice: User,
    denied_doc: Document,
    spool: Path,
    write_through: None,
    fresh_dedicated: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CONN_MAX_AGE keeps the connection from one scope to the next; a server restart in
    between must not cost the next request its first denial."""
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", max_age)
    before = _last_id()
    with recording(), transaction.atomic():
        assert not authorize(alice, "testapp.approve", denied_doc)
        pid = _pid(DEDICATED)
    kept = connections[DEDICATED].connection is not None
    assert kept == (max_age > 0)
    if kept:
        _terminate(pid)
    with recording(), transaction.atomic():
        assert not authorize(alice, "testapp.approve", denied_doc)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2
    assert _pending(spool) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("max_age", [0, 60])
def test_the_ordinary_connection_ended_between_two_denials_loses_neither(
    max_age: int,
    alice: User,
    denied_doc: Document,
    spool: Path,
    fresh_dedicated: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In autocommit the record goes through Django's own connection; when the server ended
    it, the write is retried once on a fresh connection."""
    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", max_age)
    before = _last_id()
    assert not authorize(alice, "testapp.approve", denied_doc)
    _terminate(_pid("default"))
    assert not authorize(alice, "testapp.approve", denied_doc)
    connection.close()  # Django's own connection is broken; the test reads on a new one
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2
    assert _pending(spool) == 0


# --------------------------------------------------------------------------------------------
# Inserts refused for a while (both databases)
# --------------------------------------------------------------------------------------------


class refused_inserts:
    """Make the database refuse every insert into the audit table until the block ends."""

    NAME = "clearance_faults_refuse"

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"ALTER TABLE clearance_auditrecord ADD CONSTRAINT {self.NAME} "
                    "CHECK (false) NOT VALID"
                )
            else:
                cursor.execute(
                    f"CREATE TRIGGER {self.NAME} BEFORE INSERT ON clearance_auditrecord "
                    "BEGIN SELECT RAISE(ABORT, 'audit inserts refused'); END"
                )

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE clearance_auditrecord DROP CONSTRAINT {self.NAME}")
            else:
                cursor.execute(f"DROP TRIGGER {self.NAME}")


def test_denials_made_while_inserts_fail_are_spooled_signalled_and_replayed(
    alice: User,
    denied_doc: Document,
    spool: Path,
    failures: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = _last_id()
    made = []
    with caplog.at_level(logging.ERROR, logger="clearance.audit"), refused_inserts():
        for _ in range(3):
            made.append(authorize(alice, "testapp.approve", denied_doc))
        with recording(), transaction.atomic():  # in a transaction, as under ATOMIC_REQUESTS
            for _ in range(2):
                made.append(authorize(alice, "testapp.approve", denied_doc))
        assert AuditRecord.objects.filter(pk__gt=before).count() == 0
    # The decisions stood: denials, refused by the rule that refused them.
    assert [d.code for d in made] == ["policy.four_eyes"] * 5
    # One signal per record, naming it, the error and the spool file.
    assert len(failures) == 5
    assert [f["record"].at for f in failures] == [d.at for d in made]
    assert all(f["spooled"] is not None and Path(f["spooled"]).parent == spool for f in failures)
    assert all(f["error"] is not None for f in failures)
    # One ERROR per record, with its identity and the whole record.
    errors = [
        r for r in caplog.records if r.name == "clearance.audit" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 5
    for record, decision in zip(errors, made, strict=True):
        message = record.getMessage()
        assert f"at={decision.at.isoformat()}" in message
        assert "action=testapp.approve" in message
        assert f"actor=alice:{alice.pk}" in message
        assert f"resource=testapp.Document:{denied_doc.pk}" in message
        assert "code=policy.four_eyes" in message
        assert record.audit_record["code"] == "policy.four_eyes"  # type: ignore[attr-defined]
    assert _pending(spool) == 5

    # Inserts work again: the next write also brings the spooled records into the table.
    made.append(authorize(alice, "testapp.approve", denied_doc))
    rows = AuditRecord.objects.filter(pk__gt=before).order_by("id")
    assert sorted(r.at for r in rows) == sorted(d.at for d in made)
    assert {(r.actor_label, r.code, r.resource_pk) for r in rows} == {
        ("alice", "policy.four_eyes", str(denied_doc.pk))
    }
    assert _pending(spool) == 0
    assert len(failures) == 5


def test_a_replay_never_writes_a_record_twice(
    alice: User, denied_doc: Document, spool: Path
) -> None:
    """A record that reached the table after all (the answer was lost, not the write) is not
    written again from the spool."""
    from clearance.audit import spool as spooling

    before = _last_id()
    with refused_inserts():
        decision = authorize(alice, "testapp.approve", denied_doc)
        flush_pending()  # the end of the job's unit of work
    # The same record, in the table by another way.
    AuditRecord.from_decision(decision).save()
    assert spooling.pending() == 1
    assert spooling.replay() == 1
    assert AuditRecord.objects.filter(pk__gt=before).count() == 1
    assert spooling.pending() == 0


def test_fail_closed_still_refuses_an_allowed_decision_the_table_did_not_take(
    alice: User, make_doc: Callable[..., Document], bob: User, spool: Path
) -> None:
    approvable = make_doc(owner=bob, title="bob's")
    options = {"AUDIT_SPOOL": str(spool), "RECORD_ALLOWED": True, "AUDIT_FAIL_CLOSED": True}
    with override_settings(CLEARANCE=options), refused_inserts():
        decision = authorize(alice, "testapp.approve", approvable)
    assert not decision
    assert decision.code == "audit.unrecorded"
    assert _pending(spool) == 1  # kept all the same, as the allowed attempt it was


def test_a_receiver_of_audit_failed_that_raises_changes_nothing(
    alice: User, denied_doc: Document, spool: Path
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver down")

    audit_failed.connect(broken)
    try:
        with refused_inserts():
            decision = authorize(alice, "testapp.approve", denied_doc)
            flush_pending()
    finally:
        audit_failed.disconnect(broken)
    assert decision.code == "policy.four_eyes"
    assert _pending(spool) == 1


# --------------------------------------------------------------------------------------------
# PostgreSQL: the audit table is locked
# --------------------------------------------------------------------------------------------

LOCK_TIMEOUT = 0.2
STATEMENT_TIMEOUT = 0.4


@pytest.mark.postgres
@pytest.mark.parametrize("in_transaction", [False, True], ids=["autocommit", "in-a-transaction"])
def test_a_locked_audit_table_does_not_stall_the_decision(
    in_transaction: bool,
    alice: User,
    denied_doc: Document,
    spool: Path,
    failures: list[dict[str, Any]],
) -> None:
    before = _last_id()
    holder = _admin()
    holder.autocommit = False
    holder.execute("LOCK TABLE clearance_auditrecord IN ACCESS EXCLUSIVE MODE")
    release_lock = threading.Lock()

    def release() -> None:
        with release_lock:
            if not holder.closed:
                holder.rollback()
                holder.close()

    # Without a bound the decision would wait for the lock: release it after 5 s regardless.
    timer = threading.Timer(5, release)
    timer.start()
    options = {
        "AUDIT_SPOOL": str(spool),
        "AUDIT_LOCK_TIMEOUT": LOCK_TIMEOUT,
        "AUDIT_STATEMENT_TIMEOUT": STATEMENT_TIMEOUT,
    }
    try:
        with override_settings(CLEARANCE=options):
            started = time.monotonic()
            with recording(), transaction.atomic() if in_transaction else nullcontext():
                decision = authorize(alice, "testapp.approve", denied_doc)
            elapsed = time.monotonic() - started
    finally:
        timer.cancel()
        release()
    assert decision.code == "policy.four_eyes"
    assert elapsed < STATEMENT_TIMEOUT + 0.5, f"the decision waited {elapsed:.2f} s"
    assert len(failures) == 1
    assert _pending(spool) == 1
    # The lock is gone: the next decision's write brings the first one in too.
    with override_settings(CLEARANCE=options):
        authorize(alice, "testapp.approve", denied_doc)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2
    assert _pending(spool) == 0


@pytest.mark.postgres
def test_a_request_with_several_denials_waits_for_a_locked_table_once(
    alice: User,
    denied_doc: Document,
    spool: Path,
    failures: list[dict[str, Any]],
) -> None:
    """A list page records a denial per row: the request must not wait once per row."""
    before = _last_id()
    holder = _admin()
    holder.autocommit = False
    holder.execute("LOCK TABLE clearance_auditrecord IN ACCESS EXCLUSIVE MODE")
    options = {
        "AUDIT_SPOOL": str(spool),
        "AUDIT_LOCK_TIMEOUT": LOCK_TIMEOUT,
        "AUDIT_STATEMENT_TIMEOUT": STATEMENT_TIMEOUT,
    }
    try:
        with override_settings(CLEARANCE=options):
            started = time.monotonic()
            with recording():  # one request
                decisions = [authorize(alice, "testapp.approve", denied_doc) for _ in range(6)]
            elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert [d.code for d in decisions] == ["policy.four_eyes"] * 6
    assert elapsed < STATEMENT_TIMEOUT + 0.5, f"the request waited {elapsed:.2f} s"
    assert len(failures) == 6
    assert _pending(spool) == 6
    with override_settings(CLEARANCE=options), recording():  # the next request
        authorize(alice, "testapp.approve", denied_doc)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 7
    assert _pending(spool) == 0


def test_the_default_timeouts_keep_an_audit_write_under_a_second() -> None:
    from clearance.conf import DEFAULTS

    assert DEFAULTS["AUDIT_LOCK_TIMEOUT"] <= DEFAULTS["AUDIT_STATEMENT_TIMEOUT"] < 1
    assert settings.CLEARANCE == {} or "AUDIT_STATEMENT_TIMEOUT" not in settings.CLEARANCE


# --------------------------------------------------------------------------------------------
# What shows records waiting: the system check and `manage.py clearance audit-spool`
# --------------------------------------------------------------------------------------------


def _clearance_checks(*, deploy: bool = False) -> list[Any]:
    from django.core.checks import run_checks

    return list(run_checks(tags=["clearance"], include_deployment_checks=deploy))


def test_the_check_and_the_command_show_records_waiting_and_the_command_replays_them(
    alice: User, denied_doc: Document, spool: Path
) -> None:
    from io import StringIO

    from django.core.management import call_command

    assert "clearance.W504" not in {m.id for m in _clearance_checks()}
    before = _last_id()
    with refused_inserts():
        decisions = [authorize(alice, "testapp.approve", denied_doc) for _ in range(2)]
        flush_pending()
        [warning] = [m for m in _clearance_checks() if m.id == "clearance.W504"]
        assert warning.msg.startswith("2 audit records wait in the spool ")
        out = StringIO()
        call_command("clearance", "audit-spool", "--list", stdout=out)
        listed = out.getvalue().splitlines()
        assert [line.split()[0] for line in listed[:2]] == [
            f"at={d.at.isoformat()}" for d in decisions
        ]
        assert listed[-1].startswith("2 audit record(s) wait in the spool ")
        from django.core.management import CommandError

        with pytest.raises(CommandError, match="stay in"):
            call_command("clearance", "audit-spool", "--replay", stdout=StringIO())
    out = StringIO()
    call_command("clearance", "audit-spool", "--replay", stdout=out)
    assert out.getvalue().splitlines()[0].startswith("Replayed 2 audit record(s) from ")
    assert out.getvalue().splitlines()[-1].startswith("0 audit record(s) wait")
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2
    assert "clearance.W504" not in {m.id for m in _clearance_checks()}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"AUDIT_LOCK_TIMEOUT": 0}, "clearance.E505"),
        ({"AUDIT_STATEMENT_TIMEOUT": "1s"}, "clearance.E505"),
        ({"AUDIT_STATEMENT_TIMEOUT": True}, "clearance.E505"),
        ({"AUDIT_SPOOL": 3}, "clearance.E506"),
        ({"AUDIT_SPOOL": ""}, "clearance.E506"),
        ({"AUDIT_CONNECTION": "shared"}, "clearance.E507"),
    ],
)
def test_bad_fault_settings_are_reported(options: dict[str, Any], expected: str) -> None:
    with override_settings(CLEARANCE=options):
        assert expected in {m.id for m in _clearance_checks()}


def test_check_deploy_asks_for_a_spool_outside_the_temporary_directory(tmp_path: Path) -> None:
    with override_settings(CLEARANCE={}):
        assert "clearance.W505" in {m.id for m in _clearance_checks(deploy=True)}
        assert "clearance.W505" not in {m.id for m in _clearance_checks()}
    with override_settings(CLEARANCE={"AUDIT_SPOOL": "/var/lib/project/audit-spool"}):
        assert "clearance.W505" not in {m.id for m in _clearance_checks(deploy=True)}


# --------------------------------------------------------------------------------------------
# AUDIT_CONNECTION = "process": one audit connection per process, shared behind a lock
# --------------------------------------------------------------------------------------------


@pytest.fixture
def shared_connection(spool: Path) -> Iterator[None]:
    from clearance.audit import connection as audit_connection

    def forget() -> None:
        for conn in audit_connection._shared.values():
            conn.close()
        audit_connection._shared.clear()
        audit_connection._shared_used.clear()

    forget()
    options = {
        "AUDIT_SPOOL": str(spool),
        "AUDIT_CONNECTION": "process",
        "AUDIT_WRITE_THROUGH": True,
    }
    with override_settings(CLEARANCE=options):
        yield
    forget()


@pytest.mark.postgres
def test_threads_share_one_audit_connection_per_process_and_lose_nothing(
    make_user: Callable[..., User],
    tenant: Any,
    shared_connection: None,
    fresh_dedicated: None,
    spool: Path,
) -> None:
    from decimal import Decimal

    from clearance.audit import connection as audit_connection

    threads, denials = 6, 20
    before = _last_id()
    workers = [make_user(f"sharer-{n}", tenants=(tenant,)) for n in range(threads)]
    doc = Document.objects.create(tenant=tenant, state="submitted", amount=Decimal("50000"))
    audit_pids: set[int] = set()
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        user = User.objects.get(pk=workers[n].pk)
        try:
            start.wait()
            with recording():
                for _ in range(denials):
                    with transaction.atomic():  # the audit write goes through the shared one
                        assert not authorize(user, "testapp.approve", doc)
                    # No dedicated connection of the thread's own was opened.
                    assert DEDICATED not in connections or connections[DEDICATED].connection is None
                    shared: Any = audit_connection._shared["default"]
                    audit_pids.add(int(shared.connection.info.backend_pid))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    rows = AuditRecord.objects.filter(pk__gt=before, actor_label__startswith="sharer-")
    assert rows.count() == threads * denials
    assert len(audit_pids) == 1  # one audit connection served every thread
    assert _pending(spool) == 0


@pytest.mark.postgres
def test_the_shared_connection_ended_between_two_denials_loses_neither(
    alice: User, denied_doc: Document, shared_connection: None, spool: Path
) -> None:
    from clearance.audit import connection as audit_connection

    before = _last_id()
    with transaction.atomic():
        assert not authorize(alice, "testapp.approve", denied_doc)
    shared: Any = audit_connection._shared["default"]
    _terminate(int(shared.connection.info.backend_pid))
    with transaction.atomic():
        assert not authorize(alice, "testapp.approve", denied_doc)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2
    assert _pending(spool) == 0


def test_a_hostile_path_stays_one_spooled_line_and_comes_back_as_it_was(
    alice: User, denied_doc: Document, spool: Path
) -> None:
    """A client chooses the request path: line breaks and quotes in it cannot forge a second
    spooled record or corrupt the first."""
    from django.test import RequestFactory

    from clearance.audit import spool as spooling

    path = '/approve/\n{"action": "forged"}\r\n"quoted"'
    request = RequestFactory().post("/approve/")
    request.path = path
    before = _last_id()
    with refused_inserts():
        authorize(alice, "testapp.approve", denied_doc, request=request)
        flush_pending()
    assert spooling.pending() == 1
    [waiting] = spooling.waiting()
    assert waiting.path == path
    assert spooling.replay() == 1
    record = AuditRecord.objects.get(pk__gt=before)
    assert (record.path, record.action) == (path, "testapp.approve")
