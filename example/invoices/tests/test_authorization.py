"""Who may do what with an invoice: every rule of ``invoices/authz.py``, passing and denying.

Written with ``clearance.testing`` alone, against the seeded demo (``manage.py seed_demo``):

- alice (approver in Acme), bob (clerk in Acme), carol (approver in Acme, auditor in
  Globex), dave (clerk in Globex), erin (auditor in Acme), admin (superuser, member of Acme):
  each role is held in its tenant only (the scope ``tenant``), so gate 1 refuses another
  tenant's invoice; the policy ``tenant_member`` binds the superuser, who holds every
  permission globally;
- ACME-001 draft by bob, ACME-002 submitted by bob (980), ACME-003 submitted by alice,
  ACME-004 submitted by bob (18,500), ACME-005 approved, ACME-007 paid, GLX-00x Globex's.

The table in :func:`expectations` names, for each case, the outcome: ``"allowed"`` or the code
of the rule that must deny. Every rule appears at least once allowing and once denying; the
coverage report proves it::

    pytest example/invoices/tests/test_authorization.py \\
        --clearance-coverage --clearance-coverage-app invoices
"""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from clearance.testing import (
    assert_allowed,
    assert_denied,
    assert_matrix,
    assert_write_refused,
)
from invoices.models import Invoice, Tenant

pytestmark = pytest.mark.django_db(databases="__all__")

UserGetter = Callable[[str], AbstractBaseUser]
InvoiceGetter = Callable[[str], Invoice]


def expectations(user: UserGetter, invoice: InvoiceGetter) -> list[tuple[Any, str, Any, str]]:
    """The example's authorization table: (actor, action, invoice) -> expected outcome."""
    alice, bob, carol, dave, erin, admin = (
        user(n) for n in ("alice", "bob", "carol", "dave", "erin", "admin")
    )
    anonymous = AnonymousUser()
    acme = Tenant.objects.get(slug="acme")
    globex = Tenant.objects.get(slug="globex")
    return [
        # invoices.view: the view_invoice permission in the invoice's tenant (or globally,
        # then tenant membership).
        (erin, "invoices.view", invoice("ACME-002"), "allowed"),
        (carol, "invoices.view", invoice("GLX-002"), "allowed"),
        (anonymous, "invoices.view", invoice("ACME-002"), "permission.invoices.view_invoice"),
        (dave, "invoices.view", invoice("ACME-002"), "permission.invoices.view_invoice"),
        (admin, "invoices.view", invoice("GLX-002"), "policy.tenant_member"),
        # invoices.submit: a clerk of the tenant submits their own draft.
        (bob, "invoices.submit", invoice("ACME-001"), "allowed"),
        (alice, "invoices.submit", invoice("ACME-008"), "permission.invoices.submit_invoice"),
        (dave, "invoices.submit", invoice("ACME-001"), "permission.invoices.submit_invoice"),
        (admin, "invoices.submit", invoice("GLX-001"), "policy.tenant_member"),
        (admin, "invoices.submit", invoice("ACME-001"), "policy.owner"),
        (bob, "invoices.submit", invoice("ACME-002"), "policy.draft"),
        # invoices.approve: four eyes, a submitted invoice, and never above 10,000.
        (alice, "invoices.approve", invoice("ACME-002"), "allowed"),
        (bob, "invoices.approve", invoice("ACME-002"), "permission.invoices.approve_invoice"),
        (alice, "invoices.approve", invoice("GLX-002"), "permission.invoices.approve_invoice"),
        (carol, "invoices.approve", invoice("GLX-002"), "permission.invoices.approve_invoice"),
        (admin, "invoices.approve", invoice("GLX-002"), "policy.tenant_member"),
        (alice, "invoices.approve", invoice("ACME-003"), "policy.four_eyes"),
        (alice, "invoices.approve", invoice("ACME-005"), "policy.submitted"),
        (alice, "invoices.approve", invoice("ACME-004"), "invariant.within_limit"),
        # invoices.pay: an approved invoice of one's own tenant.
        (alice, "invoices.pay", invoice("ACME-005"), "allowed"),
        (bob, "invoices.pay", invoice("ACME-005"), "permission.invoices.pay_invoice"),
        (alice, "invoices.pay", invoice("GLX-003"), "permission.invoices.pay_invoice"),
        (admin, "invoices.pay", invoice("GLX-003"), "policy.tenant_member"),
        (alice, "invoices.pay", invoice("ACME-002"), "policy.approved"),
        # invoices.change: drafts only, in one's own tenant.
        (bob, "invoices.change", invoice("ACME-001"), "allowed"),
        (alice, "invoices.change", invoice("ACME-008"), "permission.invoices.change_invoice"),
        (dave, "invoices.change", invoice("ACME-001"), "permission.invoices.change_invoice"),
        (admin, "invoices.change", invoice("GLX-001"), "policy.tenant_member"),
        (bob, "invoices.change", invoice("ACME-002"), "policy.draft"),
        # invoices.create: decided on the unsaved invoice.
        (bob, "invoices.create", Invoice(tenant=acme), "allowed"),
        (alice, "invoices.create", Invoice(tenant=acme), "permission.invoices.add_invoice"),
        (bob, "invoices.create", Invoice(tenant=globex), "permission.invoices.add_invoice"),
        (admin, "invoices.create", Invoice(tenant=globex), "policy.tenant_member"),
        # invoices.delete: nobody but the superuser holds delete_invoice.
        (admin, "invoices.delete", invoice("ACME-001"), "allowed"),
        (bob, "invoices.delete", invoice("ACME-001"), "permission.invoices.delete_invoice"),
        (admin, "invoices.delete", invoice("GLX-001"), "policy.tenant_member"),
        (admin, "invoices.delete", invoice("ACME-002"), "policy.draft"),
    ]


def test_authorization_table(user: UserGetter, invoice: InvoiceGetter) -> None:
    assert_matrix(expectations(user, invoice))


# -- the stories behind the table ----------------------------------------------------------------


def test_nobody_approves_their_own_invoice(user: UserGetter, invoice: InvoiceGetter) -> None:
    decision = assert_denied(
        user("alice"), "invoices.approve", invoice("ACME-003"), layer="policy", rule="four_eyes"
    )
    assert decision.reason == "Nobody approves their own invoice."
    assert_allowed(user("carol"), "invoices.approve", invoice("ACME-003"))


def test_the_limit_binds_the_superuser_too(user: UserGetter, invoice: InvoiceGetter) -> None:
    assert_denied(
        user("admin"),
        "invoices.approve",
        invoice("ACME-004"),
        layer="invariant",
        rule="within_limit",
    )


def test_an_auditor_only_looks(user: UserGetter, invoice: InvoiceGetter) -> None:
    erin, acme_002 = user("erin"), invoice("ACME-002")
    assert_allowed(erin, "invoices.view", acme_002)
    for action in ("invoices.submit", "invoices.approve", "invoices.pay", "invoices.change"):
        assert_denied(erin, action, acme_002, layer="permission")


def test_a_paid_invoice_keeps_a_positive_amount(invoice: InvoiceGetter) -> None:
    paid = invoice("ACME-007")
    paid.description = "Printer maintenance, invoice corrected"
    paid.save()  # paid_is_final holds: the amount stays positive
    paid.amount = Decimal("0")
    with assert_write_refused(rule="paid_is_final") as refusal:
        paid.save()
    assert refusal.decision is not None
    assert refusal.decision.reason == "A paid invoice keeps a positive amount."
    assert invoice("ACME-007").amount == Decimal("310.00")
