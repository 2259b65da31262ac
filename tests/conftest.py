"""Fixtures shared by the library's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User

from clearance import model_invariant, where
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
def positive(fresh_registry: Any) -> Any:
    """A model invariant: documents keep a positive amount (the guarded-write tests' rule)."""
    return model_invariant(
        Document, "positive_amount", where(amount__gt=0), reason="Amounts stay positive."
    )


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


# -- the ICU database pass (tests.settings_postgres_icu) ------------------------------------------


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Under ``tests.settings_postgres_icu``, make sure the ICU template database exists.

    Django creates the test database ``WITH TEMPLATE`` it, so the test database has the
    template's ICU ``en-US`` collation (Django has no setting for a locale provider).
    """
    from django.conf import settings

    template = getattr(settings, "CLEARANCE_TEST_ICU_TEMPLATE", None)
    if template:
        _ensure_icu_template(settings.DATABASES["default"], template)


def _ensure_icu_template(db: dict[str, Any], name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=int(db.get("PORT") or 5432),
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        row = conn.execute(
            "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if row is not None and tuple(row) == ("i", "en-US"):
            return
        if row is not None:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL(
                "CREATE DATABASE {} LOCALE_PROVIDER icu ICU_LOCALE 'en-US' TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
