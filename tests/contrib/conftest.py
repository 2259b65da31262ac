"""Fixtures for the integration tests: actions on documents, two tenants, their members."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from rest_framework.test import APIClient

from clearance import ACTOR, Action, where
from tests.testapp.models import Document, Tenant


@pytest.fixture(autouse=True)
def contrib_urls(settings: Any) -> None:
    """Serve the integration tests' URLs."""
    settings.ROOT_URLCONF = "tests.contrib.urls"


@pytest.fixture(autouse=True)
def document_actions(fresh_registry: Any) -> Iterator[dict[str, Action]]:
    """The view, change and delete actions on documents (approve comes from testapp.authz)."""
    member = where(tenant__memberships__user=ACTOR)
    view = Action("testapp.view", model=Document, permission="testapp.view_document")
    view.policy("tenant_member", member, reason="Only members of the document's tenant see it.")
    change = Action("testapp.change", model=Document, permission="testapp.change_document")
    change.policy("tenant_member", member, reason="Only members of the tenant may change it.")
    change.policy("not_approved", ~where(state="approved"), reason="Approved documents are final.")
    change.invariant(
        "within_limit", where(amount__lte=10_000), reason="Documents above 10,000 are refused."
    )
    delete = Action("testapp.delete", model=Document, permission="testapp.delete_document")
    delete.policy("tenant_member", member, reason="Only members of the tenant may delete it.")
    delete.policy("draft", where(state="draft"), reason="Only drafts can be deleted.")
    create = Action("testapp.create", model=Document, permission="testapp.add_document")
    create.policy("tenant_member", member, reason="Documents are created in your own tenants.")
    create.invariant(
        "within_limit", where(amount__lte=10_000), reason="Documents above 10,000 are refused."
    )
    yield {"view": view, "change": change, "delete": delete, "create": create}


@pytest.fixture
def editors(db: None) -> Group:
    group = Group.objects.create(name="editors")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="testapp",
            codename__in=[
                "view_document",
                "add_document",
                "change_document",
                "delete_document",
            ],
        )
    )
    return group


@pytest.fixture
def member(make_user: Callable[..., User], tenant: Tenant, editors: Group) -> User:
    """Mia: approver and editor in tenant Acme, staff (may use the admin)."""
    user = make_user("mia", tenants=(tenant,), is_staff=True)
    user.groups.add(editors)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def outsider(make_user: Callable[..., User], other_tenant: Tenant, editors: Group) -> User:
    """Oscar: the same roles, in tenant Globex."""
    user = make_user("oscar", tenants=(other_tenant,), is_staff=True)
    user.groups.add(editors)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def reader(make_user: Callable[..., User], tenant: Tenant) -> User:
    """Rita: a member of Acme who holds no document permission at all."""
    return make_user("rita", approver=False, tenants=(tenant,))


@pytest.fixture
def root(make_user: Callable[..., User], tenant: Tenant) -> User:
    """Sue: an active superuser, member of Acme only."""
    return make_user("sue", approver=False, tenants=(tenant,), is_staff=True, is_superuser=True)


@pytest.fixture
def docs(make_doc: Callable[..., Document], other_tenant: Tenant, bob: User) -> dict[str, Document]:
    """Documents in Acme (owned by Bob) and one in Globex."""
    return {
        "a": make_doc(title="Acme ledger", owner=bob, amount=Decimal("100")),
        "big": make_doc(title="Acme turbine", owner=bob, amount=Decimal("20000")),
        "draft": make_doc(title="Acme draft", owner=bob, state="draft"),
        "b": make_doc(
            title="Globex secret plan", tenant=other_tenant, owner=None, amount=Decimal("5")
        ),
    }


@pytest.fixture
def client_for() -> Callable[[User], Client]:
    def login(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return login


@pytest.fixture
def api_for() -> Callable[[User], APIClient]:
    def login(user: User) -> APIClient:
        client = APIClient()
        client.force_login(user)
        return client

    return login
