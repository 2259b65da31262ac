"""The invoice admin with clearance's mixin: scoped rows, guarded bulk actions."""

import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from clearance import authorized
from invoices.models import Invoice

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

ClientFor = Callable[[str], Client]
InvoiceGetter = Callable[[str], Invoice]
CHANGELIST = "/admin/invoices/invoice/"


def listed(page: str) -> list[str]:
    return re.findall(r'class="field-number"><a href="[^"]+">([^<]+)</a>', page)


def bulk(client: Client, action: str, *invoices: Invoice) -> str:
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [i.pk for i in invoices], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("username", ["alice", "carol", "admin"])
def test_staff_see_exactly_the_rows_authorized_gives(client_for: ClientFor, username: str) -> None:
    user = get_user_model().objects.get(username=username)
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    page = client_for(username).get(f"{CHANGELIST}?o=1").content.decode()
    expected = authorized(user, "invoices.view", Invoice.objects.order_by("number"))
    assert listed(page) == [i.number for i in expected]


def test_bulk_approval_refused_on_one_invoice_changes_none(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    ok, big = invoice("ACME-002"), invoice("ACME-004")
    page = bulk(client_for("admin"), "approve_selected", ok, big)
    assert "Nothing was done: 1 of the selected objects may not be acted on." in page
    assert "ACME-004 (Submitted): Invoices above 10,000 can never be approved." in page
    assert invoice("ACME-002").state == invoice("ACME-004").state == "submitted"


def test_bulk_approval_of_allowed_invoices(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    page = bulk(client_for("admin"), "approve_selected", invoice("ACME-002"))
    assert "Approved 1 invoice(s)." in page
    approved = invoice("ACME-002")
    assert approved.state == "approved" and approved.approved_by.username == "admin"


def test_bulk_action_that_would_break_an_invariant_shows_an_error_and_changes_nothing(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    Invoice.objects.filter(number="ACME-005").update(amount=Decimal("0"))  # approved, amount 0
    page = bulk(client_for("admin"), "pay_selected", invoice("ACME-005"), invoice("ACME-006"))
    assert "Nothing was changed: A paid invoice keeps a positive amount." in page
    assert invoice("ACME-005").state == invoice("ACME-006").state == "approved"


def test_bulk_payment(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    page = bulk(client_for("admin"), "pay_selected", invoice("ACME-005"), invoice("ACME-006"))
    assert "Marked 2 invoice(s) as paid." in page
    assert invoice("ACME-005").state == invoice("ACME-006").state == "paid"


def test_a_role_held_in_a_tenant_opens_the_invoices_entry_of_the_index(
    client_for: ClientFor,
) -> None:
    # erin is staff and an auditor in Acme: view_invoice through her membership only.
    erin = client_for("erin")
    index = erin.get("/admin/").content.decode()
    assert 'href="/admin/invoices/invoice/"' in index
    assert erin.get("/admin/invoices/").status_code == 200
    assert "ACME-002" in erin.get(CHANGELIST).content.decode()


def test_staff_without_any_role_get_no_invoices_entry(client_for: ClientFor) -> None:
    from invoices.models import Membership

    Membership.objects.filter(user__username="erin").update(role="superuser")  # maps to nothing
    erin = client_for("erin")
    assert 'href="/admin/invoices/invoice/"' not in erin.get("/admin/").content.decode()
    assert erin.get("/admin/invoices/").status_code == 404
    assert erin.get(CHANGELIST).status_code == 403
