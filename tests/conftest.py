"""Fixtures shared by the library's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

from clearance.actions import registry
from tests.testapp.models import Document, Membership, Tenant


@pytest.fixture
def fresh_registry() -> Iterator[Any]:
    """Declare actions freely in a test; the registry is restored afterwards."""
    state = registry.snapshot()
    try:
        yield registry
    finally:
        registry.restore(state)


@pytest.fixture
def tenant(db: None) -> Tenant:
    return Tenant.objects.create(name="Acme")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return Tenant.objects.create(name="Globex")


@pytest.fixture
def approvers(db: None) -> Group:
    group = Group.objects.create(name="approvers")
    group.permissions.add(
        Permission.objects.get(codename="approve_document", content_type__app_label="testapp")
    )
    return group


@pytest.fixture
def make_user(db: None, approvers: Group) -> Callable[..., User]:
    def make(
        username: str,
        *,
        approver: bool = True,
        tenants: tuple[Tenant, ...] = (),
        **fields: Any,
    ) -> User:
        user = User.objects.create_user(username=username, password="x", **fields)
        if approver:
            user.groups.add(approvers)
        for t in tenants:
            Membership.objects.create(user=user, tenant=t)
        # A fresh object, as each request would load it.
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture
def alice(make_user: Callable[..., User], tenant: Tenant) -> User:
    return make_user("alice", tenants=(tenant,))


@pytest.fixture
def bob(make_user: Callable[..., User], tenant: Tenant) -> User:
    return make_user("bob", tenants=(tenant,))


@pytest.fixture
def make_doc(db: None, tenant: Tenant) -> Callable[..., Document]:
    def make(**fields: Any) -> Document:
        fields.setdefault("tenant", tenant)
        fields.setdefault("state", "submitted")
        fields.setdefault("amount", Decimal("100"))
        return Document.objects.create(**fields)

    return make
