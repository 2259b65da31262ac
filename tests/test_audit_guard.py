"""The optional PostgreSQL guard: SQL written by hand cannot rewrite the audit trail either.

The guard is installed inside the test's transaction, so it is gone when the test ends (no
other test, nor the flush of a transactional test, meets it).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from clearance import authorize
from clearance.audit import guard
from clearance.audit.models import AuditRecord
from clearance.audit.retention import prune
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


def clearance(*args: str) -> str:
    out = io.StringIO()
    call_command("clearance", *args, stdout=out)
    return out.getvalue()


@pytest.mark.postgres
def test_the_guard_refuses_sql_rewrites_and_lets_pruning_through(
    alice: User, make_doc: Callable[..., Document]
) -> None:
    before = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0
    authorize(alice, "testapp.approve", make_doc(owner=alice))
    record = AuditRecord.objects.get(pk__gt=before)
    old = AuditRecord.from_decision(record.to_decision())
    old.at = timezone.now() - dt.timedelta(days=400)
    old.save()

    assert clearance("audit-guard", "status") == (
        "The audit guard is not installed on database 'default'.\n"
    )
    assert (
        clearance("audit-guard", "install") == "Installed the audit guard on database 'default'.\n"
    )
    assert guard.installed("default")
    table = AuditRecord._meta.db_table
    for sql in (
        f"UPDATE {table} SET allowed = true WHERE id = %s",
        f"DELETE FROM {table} WHERE id = %s",
        f"TRUNCATE {table}",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [record.pk] if "%s" in sql else None)
    stored = AuditRecord.objects.get(pk=record.pk)
    assert (stored.allowed, stored.code) == (False, "policy.four_eyes")

    # Pruning is the one way through, and it does not leave the door open behind it.
    assert prune(dt.timedelta(days=90)) >= 1
    assert not AuditRecord.objects.filter(pk=old.pk).exists()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [record.pk])
    assert AuditRecord.objects.filter(pk=record.pk).exists()

    assert (
        clearance("audit-guard", "remove") == "Removed the audit guard from database 'default'.\n"
    )
    assert not guard.installed("default")


def test_the_guard_is_for_postgresql_only() -> None:
    if connection.vendor == "postgresql":
        pytest.skip("shows the refusal on another database")
    with pytest.raises(CommandError, match="PostgreSQL"):
        clearance("audit-guard", "install")
