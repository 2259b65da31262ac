"""The demo's rules, asked directly through clearance's API."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractBaseUser

import clearance
from clearance import Layer, PolicyDenied
from invoices.models import Invoice

pytestmark = pytest.mark.django_db(databases="__all__")

UserGetter = Callable[[str], AbstractBaseUser]
InvoiceGetter = Callable[[str], Invoice]


def test_four_eyes(user: UserGetter, invoice: InvoiceGetter) -> None:
    decision = clearance.authorize(user("alice"), "invoices.approve", invoice("ACME-003"))
    assert not decision
    assert decision.layer is Layer.POLICY
    assert decision.rule == "four_eyes"
    assert decision.code == "policy.four_eyes"
    assert decision.reason == "Nobody approves their own invoice."

    assert clearance.authorize(user("carol"), "invoices.approve", invoice("ACME-003"))


def test_approval_limit(user: UserGetter, invoice: InvoiceGetter) -> None:
    decision = clearance.authorize(user("alice"), "invoices.approve", invoice("ACME-004"))
    assert decision.layer is Layer.INVARIANT
    assert decision.rule == "within_limit"


def test_clerk_lacks_the_approve_permission(user: UserGetter, invoice: InvoiceGetter) -> None:
    decision = clearance.authorize(user("bob"), "invoices.approve", invoice("ACME-002"))
    assert decision.layer is Layer.PERMISSION
    assert decision.rule == "invoices.approve_invoice"


def test_auditor_only_looks(user: UserGetter, invoice: InvoiceGetter) -> None:
    erin = user("erin")
    assert clearance.authorize(erin, "invoices.view", invoice("ACME-002"))
    for action in ("invoices.submit", "invoices.approve", "invoices.pay"):
        decision = clearance.authorize(erin, action, invoice("ACME-002"))
        assert decision.layer is Layer.PERMISSION, action


def test_enforce_raises_the_denial(user: UserGetter, invoice: InvoiceGetter) -> None:
    with pytest.raises(PolicyDenied) as raised:
        clearance.enforce(user("alice"), "invoices.approve", invoice("ACME-003"))
    assert raised.value.decision.rule == "four_eyes"


def test_visible_invoices_follow_membership(user: UserGetter, demo: str) -> None:
    def numbers(username: str) -> set[str]:
        visible = clearance.authorized(user(username), "invoices.view", Invoice.objects.all())
        return {invoice.number for invoice in visible}

    acme = set(Invoice.objects.filter(tenant__slug="acme").values_list("number", flat=True))
    globex = set(Invoice.objects.filter(tenant__slug="globex").values_list("number", flat=True))
    assert numbers("alice") == acme
    assert numbers("dave") == globex
    assert numbers("carol") == acme | globex
