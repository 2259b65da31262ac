"""No denial is lost: a denial decided in a transaction that rolls back stays in the audit table.

* SQLite, with the audit trail in a database alias of its own (``AUDIT_DATABASE = "audit"``).
* PostgreSQL with the default configuration (marked ``postgres``): the write goes through the
  dedicated audit connection, outside the caller's transaction.
* Both through a real request to a view that is denied under ``ATOMIC_REQUESTS = True``.

These tests commit for real (``transaction=True``): a rollback is only a rollback outside the
test case's own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from clearance import authorize, enforce
from clearance.audit import recording
from clearance.audit.connection import PRIVATE_PREFIX
from clearance.audit.models import AuditRecord
from tests.testapp.models import Document, Note

OWN_AUDIT_DATABASE = {
    # The request id header is set by a proxy in front of the project, and so trusted.
    "CLEARANCE": {"AUDIT_DATABASE": "audit", "AUDIT_REQUEST_ID_SET_BY_PROXY": True},
    "DATABASE_ROUTERS": ["clearance.audit.routers.AuditRouter"],
}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "clearance.middleware.ClearanceMiddleware",
]

on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="shows SQLite's default configuration"
)


class Rollback(Exception):
    """Raised to roll a transaction back."""


# --------------------------------------------------------------------------------------------
# A view that writes, then is denied, under ATOMIC_REQUESTS
# --------------------------------------------------------------------------------------------


def approve_and_note(request: HttpRequest, pk: int) -> HttpResponse:
    """Writes a note, then enforces: a denial rolls the note back with the request."""
    Note.objects.create(text=f"approval of {pk} attempted")
    enforce(request.user, "testapp.approve", Document.objects.get(pk=pk))
    return HttpResponse("approved")


urlpatterns = [path("approve/<int:pk>/", approve_and_note)]


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``ATOMIC_REQUESTS = True`` on the default database (Django reads it per request)."""
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    yield


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """alice owns it, so four-eyes refuses her approval."""
    return make_doc(owner=alice, title="own")


def _last_id(using: str) -> int:
    return AuditRecord.objects.using(using).aggregate(last=Max("id"))["last"] or 0


def _denied_in_rolled_back_transaction(alice: User, doc: Document) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        Note.objects.create(text="work that will be rolled back")
        assert not authorize(alice, "testapp.approve", doc)
        raise Rollback


# --------------------------------------------------------------------------------------------
# SQLite (and any main database) with the audit trail in a database of its own
# --------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases="__all__")
@override_settings(**OWN_AUDIT_DATABASE)
def test_a_rolled_back_denial_is_kept_in_its_own_audit_database(
    alice: User, denied_doc: Document
) -> None:
    before = _last_id("audit")
    _denied_in_rolled_back_transaction(alice, denied_doc)
    assert not Note.objects.exists()  # the transaction did roll back
    kept = AuditRecord.objects.filter(pk__gt=before)  # routed to "audit"
    assert [(r.actor_label, r.code, r.resource_pk) for r in kept] == [
        ("alice", "policy.four_eyes", str(denied_doc.pk))
    ]
    assert kept.db == "audit"


@pytest.mark.django_db(transaction=True, databases="__all__")
@override_settings(**OWN_AUDIT_DATABASE)
def test_a_denial_in_nested_savepoints_is_kept_in_its_own_audit_database(
    alice: User, denied_doc: Document
) -> None:
    before = _last_id("audit")
    with pytest.raises(Rollback), transaction.atomic():
        with transaction.atomic():
            authorize(alice, "testapp.approve", denied_doc)
            authorize(alice, "testapp.approve", denied_doc)
        raise Rollback
    assert AuditRecord.objects.filter(pk__gt=before).count() == 2


@on_sqlite
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_sqlite_sharing_the_default_database_loses_a_rolled_back_denial_written_at_once(
    alice: User, denied_doc: Document
) -> None:
    """Why the docs ask for an audit database of its own on SQLite: a record written at once
    inside the caller's transaction is rolled back with it."""
    before = _last_id("default")
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 1}):
        with pytest.raises(Rollback), transaction.atomic():
            authorize(alice, "testapp.approve", denied_doc)
            assert AuditRecord.objects.filter(pk__gt=before).count() == 1
            raise Rollback
        assert AuditRecord.objects.filter(pk__gt=before).count() == 0


@on_sqlite
@pytest.mark.django_db(transaction=True, databases="__all__")
def test_sqlite_sharing_the_default_database_writes_a_buffered_denial_after_the_rollback(
    alice: User, denied_doc: Document
) -> None:
    """Outside a scope the record waits; it is not written into the caller's transaction."""
    before = _last_id("default")
    with pytest.raises(Rollback), transaction.atomic():
        authorize(alice, "testapp.approve", denied_doc)
        assert AuditRecord.objects.filter(pk__gt=before).count() == 0  # still waiting
        raise Rollback
    assert AuditRecord.objects.filter(pk__gt=before).count() == 1


@pytest.mark.django_db(transaction=True, databases="__all__")
@override_settings(ROOT_URLCONF="tests.test_audit_durability", MIDDLEWARE=MIDDLEWARE)
@override_settings(**OWN_AUDIT_DATABASE)
def test_a_request_denied_under_atomic_requests_keeps_its_denial_in_its_own_audit_database(
    client: Client, alice: User, denied_doc: Document, atomic_requests: None
) -> None:
    before = _last_id("audit")
    client.force_login(alice)
    response = client.post(f"/approve/{denied_doc.pk}/", HTTP_X_REQUEST_ID="req-rollback-1")
    assert response.status_code == 403
    assert not Note.objects.exists()  # the request's transaction rolled back
    record = AuditRecord.objects.get(pk__gt=before)
    assert (record.code, record.method, record.request_id) == (
        "policy.four_eyes",
        "POST",
        "req-rollback-1",
    )


# --------------------------------------------------------------------------------------------
# PostgreSQL, default configuration
# --------------------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_keeps_a_rolled_back_denial_by_default(alice: User, denied_doc: Document) -> None:
    before = _last_id("default")
    _denied_in_rolled_back_transaction(alice, denied_doc)
    assert not Note.objects.exists()
    kept = list(AuditRecord.objects.filter(pk__gt=before))
    assert [(r.actor_label, r.code) for r in kept] == [("alice", "policy.four_eyes")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_keeps_a_denial_made_after_an_error_broke_the_transaction(
    alice: User, denied_doc: Document
) -> None:
    """The caller's transaction cannot take another statement; the audit write is elsewhere."""
    before = _last_id("default")
    with pytest.raises(Rollback), transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic():
            Document.objects.create(pk=denied_doc.pk, title="duplicate key")
        authorize(alice, "testapp.approve", denied_doc)
        raise Rollback
    assert AuditRecord.objects.filter(pk__gt=before).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(ROOT_URLCONF="tests.test_audit_durability", MIDDLEWARE=MIDDLEWARE)
def test_postgres_request_denied_under_atomic_requests_keeps_its_denial(
    client: Client, alice: User, denied_doc: Document, atomic_requests: None
) -> None:
    before = _last_id("default")
    client.force_login(alice)
    response = client.post(f"/approve/{denied_doc.pk}/")
    assert response.status_code == 403
    assert not Note.objects.exists()
    record = AuditRecord.objects.get(pk__gt=before)
    assert (record.code, record.path) == ("policy.four_eyes", f"/approve/{denied_doc.pk}/")
    assert len(record.request_id) == 32


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 1})  # each record written as it is decided
def test_the_dedicated_connection_points_at_the_test_database_and_does_not_linger(
    alice: User, denied_doc: Document
) -> None:
    alias = PRIVATE_PREFIX + "default"
    test_name = connection.settings_dict["NAME"]
    assert test_name.startswith("test_")
    with recording():
        with transaction.atomic():
            authorize(alice, "testapp.approve", denied_doc)
            dedicated: Any = connections[alias]
            # On the test database, in autocommit, beside the caller's connection.
            assert dedicated.connection is not None
            assert dedicated.settings_dict["NAME"] == test_name
            assert dedicated.get_autocommit()
            assert dedicated is not connection
        assert dedicated.connection is not None  # held for the scope
    assert dedicated.connection is None  # released when the scope ended
    with transaction.atomic():
        authorize(alice, "testapp.approve", denied_doc)
    assert connections[alias].connection is None  # outside a scope: closed after the write


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_without_a_transaction_the_record_goes_through_the_ordinary_connection(
    alice: User, denied_doc: Document
) -> None:
    """In autocommit the insert is committed at once: no second connection is needed."""
    from django.test.utils import CaptureQueriesContext

    from clearance.audit.recording import flush_pending

    before = _last_id("default")
    with CaptureQueriesContext(connection) as queries:
        authorize(alice, "testapp.approve", denied_doc)
        flush_pending()  # outside a scope the record waits in the process's buffer
    assert any("clearance_auditrecord" in q["sql"] for q in queries.captured_queries)
    assert AuditRecord.objects.filter(pk__gt=before).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_buffered_denial_is_written_after_the_transaction_through_the_ordinary_connection(
    alice: User, denied_doc: Document
) -> None:
    """Buffered in a scope, the record waits for the scope's end: the caller's transaction is
    over by then (a request's ends before its middleware's scope), so no second connection is
    needed, and a rollback has nothing to take with it."""
    before = _last_id("default")
    with recording():
        _denied_in_rolled_back_transaction(alice, denied_doc)
        assert connections[PRIVATE_PREFIX + "default"].connection is None
        assert AuditRecord.objects.filter(pk__gt=before).count() == 0  # waiting
    assert [r.code for r in AuditRecord.objects.filter(pk__gt=before)] == ["policy.four_eyes"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_keeps_the_denial_of_a_perform_block(alice: User, denied_doc: Document) -> None:
    """perform() decides inside its own transaction, which the denial rolls back."""
    from clearance import PolicyDenied, perform

    before = _last_id("default")
    with (
        pytest.raises(PolicyDenied) as refused,
        perform(alice, "testapp.approve", denied_doc) as doc,
    ):
        doc.state = "approved"  # never runs: the locked row is refused
        doc.save()
    assert refused.value.decision.rule == "four_eyes"
    denied_doc.refresh_from_db()
    assert denied_doc.state == "submitted"
    record = AuditRecord.objects.get(pk__gt=before)
    assert (record.code, record.resource_pk) == ("policy.four_eyes", str(denied_doc.pk))


@pytest.mark.postgres
@pytest.mark.django_db
@override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 1})  # each record written as it is decided
def test_in_a_test_case_a_direct_decision_stays_in_the_tests_transaction(
    alice: User, denied_doc: Document
) -> None:
    """The test case's own transaction does not count (as for atomic(durable=True)): rows
    written by decisions made directly in a test roll back with the test. A decision inside
    an atomic block of the code under test is committed through the dedicated connection."""
    from django.test.utils import CaptureQueriesContext

    alias = PRIVATE_PREFIX + "default"
    with CaptureQueriesContext(connection) as queries:
        authorize(alice, "testapp.approve", denied_doc)
    assert any("clearance_auditrecord" in q["sql"] for q in queries.captured_queries)
    with CaptureQueriesContext(connection) as queries, recording(), transaction.atomic():
        authorize(alice, "testapp.approve", denied_doc)
        assert connections[alias].connection is not None
    assert not any("clearance_auditrecord" in q["sql"] for q in queries.captured_queries)
