"""The demo as a person uses it: real HTTP requests through Django's test client."""

from collections.abc import Callable

import pytest
from django.test import Client

from invoices.models import Invoice

from .pages import action_row, invoice_row, listed_numbers, visible_text

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

ClientFor = Callable[[str], Client]
InvoiceGetter = Callable[[str], Invoice]


def test_anonymous_visitor_is_sent_to_the_login_page(demo: str) -> None:
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_logging_in_with_the_demo_password_shows_the_invoices(demo: str) -> None:
    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": "alice", "password": "demo", "next": "/"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/invoices/"
    page = response.content.decode()
    assert "Signed in as" in page and "alice" in page
    assert "ACME-002" in page


def test_alice_sees_each_approval_decision_with_gate_rule_and_reason(
    client_for: ClientFor,
) -> None:
    page = client_for("alice").get("/invoices/").content.decode()

    assert "allowed" in invoice_row(page, "ACME-002")
    assert "denied policy four_eyes Nobody approves their own invoice." in invoice_row(
        page, "ACME-003"
    )
    assert "denied invariant within_limit Invoices above 10,000 can never be approved." in (
        invoice_row(page, "ACME-004")
    )
    assert "denied policy submitted Only submitted invoices can be approved." in invoice_row(
        page, "ACME-005"
    )


def test_members_see_only_their_tenants_invoices(client_for: ClientFor) -> None:
    alice = listed_numbers(client_for("alice").get("/invoices/").content.decode())
    dave = listed_numbers(client_for("dave").get("/invoices/").content.decode())
    carol = listed_numbers(client_for("carol").get("/invoices/").content.decode())

    assert alice and all(number.startswith("ACME-") for number in alice)
    assert dave and all(number.startswith("GLX-") for number in dave)
    assert set(carol) == set(alice) | set(dave)


def test_clerk_is_denied_approval_by_the_permission_gate(client_for: ClientFor) -> None:
    page = client_for("bob").get("/invoices/").content.decode()
    assert "denied permission invoices.approve_invoice" in invoice_row(page, "ACME-002")


def test_alice_cannot_approve_her_own_invoice(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    own = invoice("ACME-003")
    client = client_for("alice")

    detail = client.get(f"/invoices/{own.pk}/").content.decode()
    assert "denied policy four_eyes Nobody approves their own invoice." in action_row(
        detail, "approve"
    )

    response = client.post(f"/invoices/{own.pk}/approve/")
    assert response.status_code == 403
    page = visible_text(response.content.decode())
    assert "Nobody approves their own invoice." in page
    assert "four_eyes" in page and "policy" in page
    assert invoice("ACME-003").state == "submitted"


def test_alice_cannot_approve_an_invoice_above_the_limit(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    big = invoice("ACME-004")
    response = client_for("alice").post(f"/invoices/{big.pk}/approve/")

    assert response.status_code == 409  # Conflict, as the API answers an invariant
    page = visible_text(response.content.decode())
    assert "Invoices above 10,000 can never be approved." in page
    assert "within_limit" in page and "invariant" in page
    assert invoice("ACME-004").state == "submitted"


def test_even_the_superuser_is_stopped_by_the_invariant(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    big = invoice("ACME-004")
    detail = client_for("admin").get(f"/invoices/{big.pk}/").content.decode()
    assert "denied invariant within_limit" in action_row(detail, "approve")


def test_clerk_approval_post_is_refused(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    submitted = invoice("ACME-002")
    response = client_for("bob").post(f"/invoices/{submitted.pk}/approve/")

    assert response.status_code == 403
    page = visible_text(response.content.decode())
    assert "permission" in page and "invoices.approve_invoice" in page
    assert invoice("ACME-002").state == "submitted"


def test_other_tenants_invoice_is_not_found(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    acme = invoice("ACME-002")
    client = client_for("dave")

    assert client.get(f"/invoices/{acme.pk}/").status_code == 404
    assert client.post(f"/invoices/{acme.pk}/submit/").status_code == 404
    assert invoice("ACME-002").state == "submitted"


def test_alice_approves_a_submitted_invoice(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    submitted = invoice("ACME-002")
    response = client_for("alice").post(f"/invoices/{submitted.pk}/approve/", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == f"/invoices/{submitted.pk}/"
    assert "Invoice ACME-002 approved." in response.content.decode()
    approved = invoice("ACME-002")
    assert approved.state == "approved"
    assert approved.approved_by is not None and approved.approved_by.username == "alice"
    assert approved.approved_at is not None


def test_an_invoice_goes_through_the_whole_workflow(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    draft = invoice("ACME-001")
    bob, alice = client_for("bob"), client_for("alice")

    detail = bob.get(f"/invoices/{draft.pk}/").content.decode()
    assert "allowed" in action_row(detail, "submit")
    assert bob.post(f"/invoices/{draft.pk}/submit/").status_code == 302
    assert invoice("ACME-001").state == "submitted"

    assert alice.post(f"/invoices/{draft.pk}/approve/").status_code == 302
    assert invoice("ACME-001").state == "approved"

    assert alice.post(f"/invoices/{draft.pk}/pay/").status_code == 302
    assert invoice("ACME-001").state == "paid"

    detail = alice.get(f"/invoices/{draft.pk}/").content.decode()
    assert "Only approved invoices can be paid." in action_row(detail, "pay")


def test_only_the_author_submits_a_draft(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    alices_draft = invoice("ACME-008")
    response = client_for("bob").post(f"/invoices/{alices_draft.pk}/submit/")

    assert response.status_code == 403
    assert "Only the invoice's author may submit it." in visible_text(response.content.decode())
    assert invoice("ACME-008").state == "draft"


def test_state_changes_need_a_post(client_for: ClientFor, invoice: InvoiceGetter) -> None:
    submitted = invoice("ACME-002")
    assert client_for("alice").get(f"/invoices/{submitted.pk}/approve/").status_code == 405
    assert invoice("ACME-002").state == "submitted"


def test_links_and_buttons_are_offered_only_to_who_may_use_them(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    draft = invoice("ACME-001")
    alice = client_for("alice")
    assert "/invoices/drafts/" not in alice.get("/invoices/").content.decode()
    assert alice.get("/invoices/drafts/").status_code == 403
    assert "/invoices/drafts/" in client_for("bob").get("/invoices/").content.decode()

    # The delete page's button: only for whoever may delete the draft (the superuser here).
    refused = visible_text(alice.get(f"/invoices/{draft.pk}/delete/").content.decode())
    assert "Delete invoice ACME-001?" in refused
    assert "denied permission invoices.delete_invoice" in refused
    assert "Drafts" not in refused
    page = client_for("admin").get(f"/invoices/{draft.pk}/delete/").content.decode()
    assert '<button type="submit" class="primary">Delete</button>' in page


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    "path", ["/invoices/{pk}/", "/invoices/{pk}/print/", "/invoices/{pk}/edit/"]
)
def test_not_yours_and_missing_are_the_same_styled_page(
    client_for: ClientFor, invoice: InvoiceGetter, settings: object, debug: bool, path: str
) -> None:
    settings.DEBUG = debug  # type: ignore[attr-defined]
    client = client_for("bob")
    foreign = client.get(path.format(pk=invoice("GLX-001").pk))
    missing = client.get(path.format(pk=999_999))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    page = foreign.content.decode()
    assert "/static/invoices/style.css" in page  # the demo's page, not Django's (yellow) one
    assert "There is nothing here that you may see." in visible_text(page)
    assert "URLconf" not in page and "GLX" not in page and "Invoice matches" not in page


def test_the_html_pages_and_the_api_answer_a_refusal_with_the_same_status(
    client_for: ClientFor, invoice: InvoiceGetter, settings: object
) -> None:
    alice = client_for("alice")
    big, own = invoice("ACME-004"), invoice("ACME-003")
    for target, status in [(big, 409), (own, 403)]:
        html = alice.post(f"/invoices/{target.pk}/approve/")
        api = alice.post(f"/api/invoices/{target.pk}/approve/")
        assert html.status_code == api.status_code == status, target.number

    # The status of an invariant is the setting both integrations read.
    settings.CLEARANCE = {**settings.CLEARANCE, "INVARIANT_STATUS": 422}  # type: ignore[attr-defined]
    assert alice.post(f"/invoices/{big.pk}/approve/").status_code == 422
    assert alice.post(f"/api/invoices/{big.pk}/approve/").status_code == 422
    assert invoice("ACME-004").state == "submitted"
