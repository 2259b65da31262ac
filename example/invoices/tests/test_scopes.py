"""Roles per tenant: gate 1 held through a membership of the invoice's tenant (the scope
``tenant`` in ``invoices/authz.py``).

The seeded demo gives nobody a role group globally: carol is an approver in Acme and an
auditor in Globex, alice an approver in Acme only, bob a clerk in Acme, dave a clerk in Globex,
erin an auditor in Acme; admin is a superuser (every permission, globally) and a member of Acme.
"""

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

import clearance
from clearance import Layer
from clearance.actions import registry
from clearance.engine import clear_actor_cache
from clearance.testing import assert_allowed, assert_denied
from invoices.models import Invoice, Membership, Tenant

from .pages import action_row, invoice_row, listed_numbers

pytestmark = pytest.mark.django_db(databases="__all__")

UserGetter = Callable[[str], AbstractBaseUser]
InvoiceGetter = Callable[[str], Invoice]
ClientFor = Callable[[str], Client]

pages = pytest.mark.urls("demo.urls")

USERNAMES = ["alice", "bob", "carol", "dave", "erin", "admin"]
ACTIONS = [a.name for a in registry.actions if a.app_label == "invoices"]


def membership(username: str, slug: str) -> Membership:
    return Membership.objects.get(user__username=username, tenant__slug=slug)


def test_every_invoice_action_holds_its_permission_within_the_tenant() -> None:
    assert ACTIONS
    for name in ACTIONS:
        assert registry.get(name).scope == ("tenant",), name


def test_carol_approves_in_acme_and_only_reads_in_globex(user, invoice):
    carol = user("carol")
    assert_allowed(carol, "invoices.approve", invoice("ACME-002"))
    assert_allowed(carol, "invoices.view", invoice("GLX-002"))
    assert_denied(carol, "invoices.approve", invoice("GLX-002"), layer="permission")


def test_carol_approves_in_acme_through_her_membership(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    acme_002 = invoice("ACME-002")
    decision = assert_allowed(user("carol"), "invoices.approve", acme_002)
    (gate1,) = [entry for entry in decision.trace if entry.layer is Layer.PERMISSION]
    m = membership("carol", "acme")
    assert gate1.reason == (
        f"Holds the permission invoices.approve_invoice through membership {m.pk} of tenant "
        f"{acme_002.tenant_id} (role approver, group approver)."
    )


def test_carol_only_reads_in_globex(user: UserGetter, invoice: InvoiceGetter) -> None:
    carol, glx_002 = user("carol"), invoice("GLX-002")
    assert_allowed(carol, "invoices.view", glx_002)
    decision = assert_denied(carol, "invoices.approve", glx_002, layer="permission")
    assert decision.code == "permission.invoices.approve_invoice"
    assert decision.rule == "invoices.approve_invoice"
    assert decision.reason == (
        "This needs the permission invoices.approve_invoice, globally or through a membership "
        "of the object's tenant, which you do not hold."
    )


def test_a_role_in_one_tenant_opens_nothing_in_another(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    # The central attack: a membership of Acme used on Globex's invoices, and the reverse.
    for action, number in [
        ("invoices.view", "GLX-001"),
        ("invoices.approve", "GLX-002"),
        ("invoices.pay", "GLX-003"),
    ]:
        assert_denied(user("alice"), action, invoice(number), layer="permission")
    for action, number in [("invoices.change", "ACME-001"), ("invoices.view", "ACME-002")]:
        assert_denied(user("dave"), action, invoice(number), layer="permission")


def test_a_create_is_decided_on_the_unsaved_invoices_tenant(user: UserGetter) -> None:
    bob, dave = user("bob"), user("dave")
    acme, globex = Tenant.objects.get(slug="acme"), Tenant.objects.get(slug="globex")
    assert_allowed(bob, "invoices.create", Invoice(tenant=acme, amount=Decimal(1)))
    assert_denied(bob, "invoices.create", Invoice(tenant=globex), layer="permission")
    assert_allowed(dave, "invoices.create", Invoice(tenant=globex))
    # No tenant yet: no scope to hold the permission in.
    assert_denied(bob, "invoices.create", Invoice(), layer="permission")


def test_the_superuser_holds_every_permission_globally_and_the_policy_still_binds(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    admin = user("admin")
    decision = assert_allowed(admin, "invoices.delete", invoice("ACME-001"))
    (gate1,) = [entry for entry in decision.trace if entry.layer is Layer.PERMISSION]
    assert gate1.reason == "Holds the permission invoices.delete_invoice."
    assert_denied(
        admin, "invoices.delete", invoice("GLX-001"), layer="policy", rule="tenant_member"
    )


def test_inactive_and_anonymous_users_hold_nothing_through_memberships(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    alice = user("alice")
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    inactive = user("alice")
    assert Membership.objects.filter(user=inactive).exists()
    assert_denied(inactive, "invoices.approve", invoice("ACME-002"), layer="permission")
    assert not clearance.can_attempt(inactive, "invoices.view")
    assert_denied(AnonymousUser(), "invoices.view", invoice("ACME-002"), layer="permission")
    assert not clearance.authorized(inactive, "invoices.view", Invoice.objects.all()).exists()


def test_a_role_nobody_mapped_grants_nothing(user: UserGetter, invoice: InvoiceGetter) -> None:
    # "superuser" is kept on admin's membership for people; on anybody else's it grants nothing.
    Membership.objects.filter(user__username="erin").update(role="superuser")
    erin = user("erin")
    assert_denied(erin, "invoices.view", invoice("ACME-002"), layer="permission")
    assert not clearance.can_attempt(erin, "invoices.view")


def test_menus_ask_whether_the_permission_is_held_in_some_tenant(user: UserGetter) -> None:
    can = clearance.can_attempt
    assert can(user("carol"), "invoices.approve")  # in Acme
    assert can(user("dave"), "invoices.change")  # in Globex
    assert not can(user("carol"), "invoices.change")  # approver and auditor: no clerk anywhere
    assert not can(user("erin"), "invoices.approve")
    assert can(user("admin"), "invoices.delete")  # globally


def test_a_removed_membership_holds_until_the_actor_cache_is_cleared(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    carol, acme_002 = user("carol"), invoice("ACME-002")
    assert clearance.authorize(carol, "invoices.approve", acme_002)
    membership("carol", "acme").delete()
    # Like Django's _perm_cache: the same user object keeps what it loaded ...
    assert clearance.authorize(carol, "invoices.approve", acme_002)
    # ... until the cache is cleared (the next request loads a fresh user anyway).
    clear_actor_cache(carol)
    assert_denied(carol, "invoices.approve", acme_002, layer="permission")
    assert_denied(user("carol"), "invoices.approve", acme_002, layer="permission")


def test_a_new_role_is_seen_after_clearing_the_cache(
    user: UserGetter, invoice: InvoiceGetter
) -> None:
    carol, glx_002 = user("carol"), invoice("GLX-002")
    assert not clearance.authorize(carol, "invoices.approve", glx_002)
    Membership.objects.filter(user=carol, tenant__slug="globex").update(role="approver")
    clear_actor_cache(carol)
    assert_allowed(carol, "invoices.approve", glx_002)


def test_authorized_gives_exactly_what_authorize_allows_in_one_query(demo: str) -> None:
    users = get_user_model().objects.filter(username__in=USERNAMES)
    invoices = list(Invoice.objects.order_by("pk"))
    for person in users:
        for name in ACTIONS:
            expected = {i.pk for i in invoices if clearance.authorize(person, name, i)}
            # The actor is warm now: its memberships are loaded.
            with CaptureQueriesContext(connection) as queries:
                listed = set(
                    clearance.authorized(person, name, Invoice.objects.all()).values_list(
                        "pk", flat=True
                    )
                )
            assert listed == expected, (person.username, name)
            assert len(queries) <= 1, (person.username, name, [q["sql"] for q in queries])
            many = clearance.authorize_many(person, name, invoices)
            assert {i.pk for i, d in zip(invoices, many, strict=True) if d} == expected


def test_a_warm_decision_makes_no_query(user: UserGetter, invoice: InvoiceGetter) -> None:
    carol, acme_002, glx_002 = user("carol"), invoice("ACME-002"), invoice("GLX-002")
    clearance.authorize(carol, "invoices.approve", acme_002)  # loads her memberships
    with CaptureQueriesContext(connection) as queries:
        assert clearance.authorize(carol, "invoices.approve", acme_002)
        assert not clearance.authorize(carol, "invoices.approve", glx_002)
    # Only the to-many policy rows and memberships were read, on the first decision.
    assert [q["sql"] for q in queries] == []


@pages
def test_the_scope_is_visible_on_the_pages(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    carol = client_for("carol")
    page = carol.get("/invoices/").content.decode()
    # Her role in each tenant, beside her name.
    assert "Acme: approver" in page and "Globex: auditor" in page
    numbers = listed_numbers(page)
    assert "GLX-002" in numbers and "ACME-002" in numbers
    assert "denied permission invoices.approve_invoice" in invoice_row(page, "GLX-002")
    assert "allowed" in invoice_row(page, "ACME-002")
    detail = carol.get(f"/invoices/{invoice('GLX-002').pk}/").content.decode()
    assert "globally or through a membership" in action_row(detail, "approve")
    # Trying anyway: the permission gate refuses, the invoice is unchanged.
    glx_002 = invoice("GLX-002")
    assert carol.post(f"/invoices/{glx_002.pk}/approve/").status_code == 403
    assert invoice("GLX-002").state == "submitted"


@pages
def test_the_api_refuses_another_tenants_role(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    glx_002 = invoice("GLX-002")
    response = client_for("carol").post(f"/api/invoices/{glx_002.pk}/approve/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission.invoices.approve_invoice"
    assert invoice("GLX-002").state == "submitted"


@pages
def test_drafts_menu_follows_roles_in_some_tenant(client_for: ClientFor) -> None:
    assert "Drafts" in client_for("dave").get("/invoices/").content.decode()
    assert "Drafts" not in client_for("carol").get("/invoices/").content.decode()
    assert client_for("carol").get("/invoices/drafts/").status_code == 403
