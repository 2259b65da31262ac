"""The demo's model invariant holds on every write path."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.test import Client

from clearance import InvariantViolation
from invoices.models import Invoice

pytestmark = pytest.mark.django_db(databases="__all__")

InvoiceGetter = Callable[[str], Invoice]
ClientFor = Callable[[str], Client]


def test_a_paid_invoice_keeps_a_positive_amount(invoice: InvoiceGetter) -> None:
    paid = invoice("ACME-007")
    paid.amount = Decimal("0")
    with pytest.raises(InvariantViolation) as raised:
        paid.save()
    assert raised.value.decision.rule == "paid_is_final"
    assert invoice("ACME-007").amount == Decimal("310.00")


def test_bulk_updates_cannot_break_the_invariant(invoice: InvoiceGetter) -> None:
    with pytest.raises(InvariantViolation) as raised:
        Invoice.objects.filter(number="ACME-007").update(amount=0)
    assert raised.value.decision.rule == "paid_is_final"
    assert invoice("ACME-007").amount == Decimal("310.00")


@pytest.mark.urls("demo.urls")
def test_not_even_the_superuser_breaks_it_in_the_admin(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    paid = invoice("ACME-007")
    response = client_for("admin").post(
        f"/admin/invoices/invoice/{paid.pk}/change/",
        {
            "tenant": paid.tenant_id,
            "owner": paid.owner_id,
            "number": paid.number,
            "description": paid.description,
            "amount": "0",
            "state": "paid",
            "approved_by": paid.approved_by_id,
            "approved_at_0": "",
            "approved_at_1": "",
        },
    )
    # The invoice admin decides invoices.change on the stored invoice before any write: a paid
    # invoice is no longer a draft, so not even the superuser may edit it. (The admin's bulk
    # "mark as paid" reaching this invariant is tested in test_admin.py.)
    assert response.status_code == 403
    assert invoice("ACME-007").amount == Decimal("310.00")
