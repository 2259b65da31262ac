"""What a console user sees of the data: the objects and records of their own reach."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client

from clearance import ACTOR, Action, authorize, where
from clearance.audit.models import AuditRecord
from clearance.console.scope import visible_objects, visible_records
from tests.testapp.models import Document, Tenant

from .conftest import console_permission
from .html import visible_text

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scoped(settings: Any) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "CONSOLE_SEES_ALL": False}


@pytest.fixture
def view_action(fresh_registry: Any) -> Action:
    act = Action("testapp.view", model=Document, permission="testapp.approve_document")
    act.policy("tenant_member", where(tenant__memberships__user=ACTOR), reason="Members only.")
    return act


@pytest.fixture
def auditor(make_user: Callable[..., User], tenant: Tenant) -> User:
    """Staff of Acme with the console's permission (and, as an approver, the view permission)."""
    user = make_user("auditor", tenants=(tenant,), is_staff=True)
    user.user_permissions.add(console_permission())
    return User.objects.get(pk=user.pk)


@pytest.fixture
def documents(make_doc: Callable[..., Document], other_tenant: Tenant) -> dict[str, Document]:
    return {
        "own": make_doc(title="Acme memo"),
        "theirs": make_doc(title="Globex memo", tenant=other_tenant),
    }


def record_about(actor: User, document: Document) -> AuditRecord:
    saved = AuditRecord.from_decision(authorize(actor, "testapp.approve", document))
    saved.save()
    return saved


def test_objects_are_those_of_the_models_view_action(
    view_action: Action, auditor: User, documents: dict[str, Document]
) -> None:
    assert list(visible_objects(auditor, Document)) == [documents["own"]]


def test_without_a_view_action_nothing_is_visible(
    auditor: User, documents: dict[str, Document]
) -> None:
    assert not visible_objects(auditor, Document).exists()


def test_the_project_may_name_the_view_action(
    fresh_registry: Any, auditor: User, documents: dict[str, Document], settings: Any
) -> None:
    listing = Action("testapp.list", model=Document, permission="testapp.approve_document")
    listing.policy("globex", where(tenant__name="Globex"), reason="Globex only.")
    settings.CLEARANCE = {
        **settings.CLEARANCE,
        "CONSOLE_VIEW_ACTIONS": {"testapp.Document": "testapp.list"},
    }
    assert list(visible_objects(auditor, Document)) == [documents["theirs"]]


def test_audit_records_are_those_about_visible_objects(
    view_action: Action,
    auditor: User,
    documents: dict[str, Document],
    make_user: Callable[..., User],
) -> None:
    someone = make_user("someone", approver=False)
    own = record_about(someone, documents["own"])
    theirs = record_about(someone, documents["theirs"])
    ids = set(
        visible_records(
            auditor, AuditRecord.objects.filter(pk__in=[own.pk, theirs.pk])
        ).values_list("pk", flat=True)
    )
    assert ids == {own.pk}
    client = Client()
    client.force_login(auditor)
    assert client.get(f"/clearance/audit/{own.pk}/").status_code == 200
    assert client.get(f"/clearance/audit/{theirs.pk}/").status_code == 404


def test_a_single_tenant_project_sees_all(
    auditor: User, documents: dict[str, Document], settings: Any
) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "CONSOLE_SEES_ALL": True}
    assert set(visible_objects(auditor, Document)) == set(documents.values())


@pytest.mark.django_db(databases="__all__")
def test_records_in_an_audit_database_of_their_own_are_scoped_too(
    view_action: Action,
    auditor: User,
    documents: dict[str, Document],
    make_user: Callable[..., User],
) -> None:
    someone = make_user("someone", approver=False)
    saved = []
    for document in documents.values():
        record = AuditRecord.from_decision(authorize(someone, "testapp.approve", document))
        record.save(using="audit")
        saved.append(record.pk)
    records = AuditRecord.objects.using("audit").filter(pk__in=saved)
    visible = visible_records(auditor, records)
    assert [r.resource_pk for r in visible] == [str(documents["own"].pk)]


def test_explain_by_natural_key_finds_only_visible_objects(
    view_action: Action,
    auditor: User,
    documents: dict[str, Document],
    make_doc: Callable[..., Document],
    other_tenant: Tenant,
    settings: Any,
) -> None:
    """Another tenant's object reads as missing, and does not make a shared title ambiguous."""
    settings.CLEARANCE = {**settings.CLEARANCE, "NATURAL_KEYS": {"testapp.Document": "title"}}
    client = Client()
    client.force_login(auditor)

    def explained(name: str) -> str:
        query = urlencode({"user": "auditor", "action": "testapp.approve", "object": name})
        return client.get(f"/clearance/explain/?{query}").content.decode()

    hidden = explained("Globex memo")
    assert "There is no testapp.Document with primary key or title 'Globex memo'." in (
        visible_text(hidden)
    )
    assert "data-layer=" not in hidden

    ours = make_doc(title="Shared title")
    make_doc(title="Shared title", tenant=other_tenant)
    page = explained("Shared title")
    assert "data-layer=" in page
    assert f"<code>testapp.Document:{ours.pk}</code>" in page
    assert "objects have title" not in page
