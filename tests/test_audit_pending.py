"""Records decided outside any recording scope: buffered, written in batches, never lost.

A script, a job or a shell makes decisions without ``ClearanceMiddleware`` or ``recording()``.
Their records wait in the process's buffer and are written with one statement at
``AUDIT_BATCH_SIZE``, once the oldest is ``AUDIT_FLUSH_INTERVAL`` old, when the table is read
and at exit; a denial made in a transaction that rolls back still lands.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Max
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

import clearance
from clearance import authorize
from clearance.audit.models import AuditRecord
from clearance.audit.recording import flush_pending, pending
from tests.testapp.models import Document

ROOT = Path(__file__).resolve().parent.parent


class Rollback(Exception):
    """Raised to roll a transaction back."""


@pytest.fixture
def denied_doc(make_doc: Any, alice: User) -> Document:
    """Alice owns it: four eyes refuse her approval."""
    doc: Document = make_doc(owner=alice, title="mine")
    return doc


@pytest.fixture
def before(transactional_db: None) -> int:
    """The last audit row before the test (rows of earlier tests may stay on PostgreSQL)."""
    flush_pending()
    return AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


def in_table(before: int) -> int:
    """Rows written since ``before``, counted with SQL (a query through ``AuditRecord.objects``
    would write the waiting records first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM clearance_auditrecord WHERE id > %s", [before])
        (count,) = cursor.fetchone()
    return int(count)


def test_a_loop_outside_any_scope_is_written_in_batches_of_one_statement(
    alice: User, denied_doc: Document, before: int
) -> None:
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 5, "AUDIT_FLUSH_INTERVAL": None}):
        with CaptureQueriesContext(connection) as queries:
            for _ in range(12):
                assert not authorize(alice, "testapp.approve", denied_doc)
        inserts = [q for q in queries.captured_queries if "INSERT" in q["sql"]]
        assert len(inserts) == 2  # two full batches, one statement each
        assert in_table(before) == 10
        assert pending.count == 2
        flush_pending()  # the end of the job's unit of work
    assert in_table(before) == 12
    assert pending.count == 0


def test_reading_the_table_writes_the_waiting_records_first(
    alice: User, denied_doc: Document, before: int
) -> None:
    authorize(alice, "testapp.approve", denied_doc)
    assert in_table(before) == 0
    assert AuditRecord.objects.filter(pk__gt=before).count() == 1


def test_the_next_record_writes_a_buffer_older_than_the_interval(
    alice: User, denied_doc: Document, before: int
) -> None:
    with override_settings(CLEARANCE={"AUDIT_FLUSH_INTERVAL": 0.05}):
        authorize(alice, "testapp.approve", denied_doc)
        time.sleep(0.1)
        assert in_table(before) == 0  # no daemon thread under the test plugin
        authorize(alice, "testapp.approve", denied_doc)
        assert in_table(before) == 2


def test_the_daemon_thread_writes_a_record_once_it_is_the_interval_old(
    alice: User, denied_doc: Document, before: int
) -> None:
    pending.timer = True  # the pytest plugin turns the daemon thread off for each test
    try:
        with override_settings(CLEARANCE={"AUDIT_FLUSH_INTERVAL": 0.2}):
            authorize(alice, "testapp.approve", denied_doc)
            assert in_table(before) == 0
            deadline = time.monotonic() + 10
            while in_table(before) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        pending.timer = False
    assert in_table(before) == 1
    assert pending.count == 0


def test_a_denial_in_a_rolled_back_atomic_block_still_lands(
    alice: User, denied_doc: Document, before: int
) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        authorize(alice, "testapp.approve", denied_doc)
        raise Rollback
    flush_pending()
    assert in_table(before) == 1


def test_a_batch_due_inside_a_rolled_back_atomic_block_still_lands(
    alice: User, denied_doc: Document, before: int
) -> None:
    """The batch is due inside the transaction: written through a connection of its own
    (PostgreSQL), or kept until the transaction is over (SQLite sharing the file)."""
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 2}):
        with pytest.raises(Rollback), transaction.atomic():
            for _ in range(3):
                authorize(alice, "testapp.approve", denied_doc)
            raise Rollback
        flush_pending()
    assert in_table(before) == 3


def test_write_through_writes_a_denied_attempt_at_once(
    alice: User, denied_doc: Document, before: int
) -> None:
    with override_settings(CLEARANCE={"AUDIT_WRITE_THROUGH": True}):
        authorize(alice, "testapp.approve", denied_doc)
        assert in_table(before) == 1
        assert pending.count == 0


# A script's decisions, none of them written explicitly: argv[1] is the SQLite file.
SCRIPT = r"""
import sys
import django
from django.conf import settings
import tests.settings as base

values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
values["DATABASES"] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}}
values["CLEARANCE"] = {"AUDIT_SINKS": ["clearance.audit.sinks.DatabaseSink"]}
settings.configure(**values)
django.setup()

from django.core.management import call_command
from django.db import transaction
from django.contrib.auth.models import AnonymousUser
from clearance import authorize
from tests.testapp.models import Document

call_command("migrate", verbosity=0)
visitor = AnonymousUser()
authorize(visitor, "testapp.approve", Document(pk=7))
authorize(visitor, "testapp.approve", Document(pk=8))
try:
    with transaction.atomic():
        authorize(visitor, "testapp.approve", Document(pk=9))
        raise RuntimeError("rolled back")
except RuntimeError:
    pass
"""


def test_a_script_s_records_are_written_when_it_exits(tmp_path: Path) -> None:
    database = tmp_path / "script.sqlite3"
    paths = [str(ROOT), str(Path(clearance.__file__).resolve().parent.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "CLEARANCE_SKIP_EXAMPLE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(database)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT resource_pk, allowed, probe, trace FROM clearance_auditrecord ORDER BY id"
        ).fetchall()
    assert [(pk, allowed) for pk, allowed, _, _ in rows] == [("7", 0), ("8", 0), ("9", 0)]
    assert json.loads(rows[0][3])[0]["rule"] == "testapp.approve_document"


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("settings_", "relaxed"), [({}, True), ({"AUDIT_WRITE_THROUGH": True}, False)]
)
def test_buffered_records_commit_without_waiting_for_the_disk_and_refusals_written_at_once_do(
    alice: User, denied_doc: Document, before: int, settings_: dict[str, Any], relaxed: bool
) -> None:
    with override_settings(CLEARANCE=settings_), CaptureQueriesContext(connection) as queries:
        authorize(alice, "testapp.approve", denied_doc)
        flush_pending()
    [write] = [q["sql"] for q in queries.captured_queries if "clearance_auditrecord" in q["sql"]]
    # One statement text: the write's settings for its own transaction, then the INSERT.
    assert write.startswith("SET LOCAL lock_timeout = '250ms'; SET LOCAL statement_timeout")
    assert "INSERT INTO" in write and "set_config" not in write
    assert ("SET LOCAL synchronous_commit = 'off'" in write) is relaxed
    assert in_table(before) == 1
