"""The admin in the audit trail: browsing records nothing, each refused act is one attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from clearance.audit.models import AuditRecord
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db(databases="__all__")

ClientFor = Callable[[User], Client]
Docs = dict[str, Document]
CHANGELIST = "/contrib/admin/testapp/document/"


BASELINE = 0


@pytest.fixture(autouse=True)
def _audit_trail(settings: Any) -> None:
    """The documented set-ups: on SQLite the trail in a database of its own (a refusal rolls
    the admin's transaction back); on PostgreSQL the dedicated connection, which commits outside
    the test's transaction (rows of earlier tests stay: each test reads its own). Requests go
    through ClearanceMiddleware, as in a project."""
    global BASELINE
    from django.db import connection
    from django.db.models import Max

    if connection.vendor == "sqlite":
        settings.CLEARANCE = {"AUDIT_DATABASE": "audit"}
        settings.DATABASE_ROUTERS = ["clearance.audit.routers.AuditRouter"]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "clearance.middleware.ClearanceMiddleware"]
    BASELINE = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


def rows() -> list[tuple[str, str, bool, bool]]:
    """(action, resource pk, allowed, probe) of the audit rows of this test, oldest first."""
    return [
        (r.action, r.resource_pk, r.allowed, r.probe)
        for r in AuditRecord.objects.filter(pk__gt=BASELINE).order_by("pk")
    ]


def form(doc: Document, **changes: Any) -> dict[str, Any]:
    data = {
        "title": doc.title,
        "state": doc.state,
        "amount": str(doc.amount),
        "tenant": doc.tenant_id,
    }
    return {**data, **changes}


@pytest.fixture
def viewer(
    make_user: Callable[..., User], tenant: object, docs: Docs
) -> User:  # docs first: the tenant's documents exist
    """Vera: staff in Acme, may only view documents."""
    from django.contrib.auth.models import Permission

    user = make_user("vera", approver=False, tenants=(tenant,), is_staff=True)
    view = Permission.objects.get(content_type__app_label="testapp", codename="view_document")
    user.user_permissions.add(view)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def approved(docs: Docs) -> Document:
    """Acme ledger, approved: final, so read-only for its editors."""
    Document.objects.filter(pk=docs["a"].pk).update(state="approved")
    docs["a"].refresh_from_db()
    return docs["a"]


def test_browsing_the_admin_adds_no_audit_row(
    client_for: ClientFor, member: User, viewer: User, docs: Docs, approved: Document
) -> None:
    editor, reader = client_for(member), client_for(viewer)
    pages = [
        (editor, CHANGELIST),
        (editor, f"{CHANGELIST}{approved.pk}/change/"),  # read-only: approved is final
        (editor, f"{CHANGELIST}{docs['big'].pk}/change/"),
        (editor, f"{CHANGELIST}{docs['draft'].pk}/delete/"),  # the confirmation page
        (editor, f"{CHANGELIST}{docs['big'].pk}/delete/"),  # not deletable: 403, only a look
        (editor, f"{CHANGELIST}{approved.pk}/history/"),
        (reader, CHANGELIST),
        (reader, f"{CHANGELIST}{docs['draft'].pk}/change/"),  # may only view
        (reader, f"{CHANGELIST}{docs['draft'].pk}/history/"),
    ]
    for client, url in pages:
        assert client.get(url).status_code in (200, 403), url
        assert client.head(url).status_code in (200, 403), url
    assert rows() == []
    assert Document.objects.get(pk=approved.pk).state == "approved"


def test_a_refused_change_post_is_one_attempt(
    client_for: ClientFor, member: User, approved: Document
) -> None:
    response = client_for(member).post(
        f"{CHANGELIST}{approved.pk}/change/", form(approved, title="Rewritten")
    )
    assert response.status_code == 403
    assert rows() == [("testapp.change", str(approved.pk), False, False)]
    approved.refresh_from_db()
    assert approved.title == "Acme ledger"


def test_a_view_only_user_posting_the_change_form_is_one_attempt(
    client_for: ClientFor, viewer: User, docs: Docs
) -> None:
    draft = docs["draft"]
    response = client_for(viewer).post(f"{CHANGELIST}{draft.pk}/change/", form(draft, title="X"))
    assert response.status_code == 403
    assert rows() == [("testapp.change", str(draft.pk), False, False)]


def test_a_refused_save_is_one_attempt(client_for: ClientFor, member: User, docs: Docs) -> None:
    a = docs["a"]
    client_for(member).post(f"{CHANGELIST}{a.pk}/change/", form(a, amount="50000"), follow=True)
    assert rows() == [("testapp.change", str(a.pk), False, False)]
    a.refresh_from_db()
    assert str(a.amount) == "100.00"


def test_a_refused_delete_post_is_one_attempt(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    big = docs["big"]
    response = client_for(member).post(f"{CHANGELIST}{big.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert rows() == [("testapp.delete", str(big.pk), False, False)]
    assert Document.objects.filter(pk=big.pk).exists()


def test_a_refused_bulk_delete_records_each_refusal_once(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    selected = [docs["a"], docs["big"], docs["draft"]]
    for confirm in ({}, {"post": "yes"}):  # the action, then a forged confirmation
        client_for(member).post(
            CHANGELIST,
            {
                "action": "delete_selected",
                "_selected_action": [d.pk for d in selected],
                "index": 0,
                **confirm,
            },
            follow=True,
        )
    refused = [("testapp.delete", str(d.pk), False, False) for d in (docs["a"], docs["big"])]
    assert sorted(rows()) == sorted(refused * 2)  # two requests, each refusal once in each
    assert Document.objects.filter(pk__in=[d.pk for d in selected]).count() == 3


def test_an_allowed_delete_confirmation_records_each_object_once(
    client_for: ClientFor, member: User, docs: Docs, settings: Any
) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "RECORD_ALLOWED": True}
    draft = docs["draft"]
    client_for(member).post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [draft.pk], "index": 0},
    )
    # The guard decided it; the confirmation page listing it again is no second attempt.
    assert rows() == [("testapp.delete", str(draft.pk), True, False)]


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_an_unexpected_method_on_a_read_only_object_is_one_attempt(
    client_for: ClientFor, member: User, approved: Document, method: str
) -> None:
    client = client_for(member)
    getattr(client, method)(f"{CHANGELIST}{approved.pk}/change/")
    assert rows() == [("testapp.change", str(approved.pk), False, False)]
    getattr(client, method)(f"{CHANGELIST}{approved.pk}/delete/")
    assert rows()[1:] == [("testapp.delete", str(approved.pk), False, False)]
    approved.refresh_from_db()
    assert approved.state == "approved"


def test_probes_of_the_admin_are_recorded_when_asked(
    client_for: ClientFor, member: User, approved: Document, settings: Any
) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "RECORD_PROBES": True}
    client_for(member).get(f"{CHANGELIST}{approved.pk}/change/")
    recorded = rows()
    assert recorded and all(probe for *_, probe in recorded)
    assert ("testapp.change", str(approved.pk), False, True) in recorded
