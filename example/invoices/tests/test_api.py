"""The invoices API: error bodies, 403 versus 409, one query for the authorization filter."""

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from invoices.models import Invoice

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

InvoiceGetter = Callable[[str], Invoice]


@pytest.fixture
def api_for(demo: str) -> Callable[[str], APIClient]:
    def login(username: str) -> APIClient:
        client = APIClient()
        client.force_login(get_user_model().objects.get(username=username))
        return client

    return login


def test_list_issues_one_query_for_the_authorization_filter(
    api_for: Callable[[str], APIClient],
) -> None:
    client = api_for("carol")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/invoices/")
    assert len(response.json()) == 12
    invoice_queries = [q["sql"] for q in queries if "invoices_invoice" in q["sql"]]
    assert len(invoice_queries) == 1
    assert "invoices_membership" in invoice_queries[0]


def test_a_refusal_carries_code_layer_and_reason(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    response = api_for("bob").patch(
        f"/api/invoices/{invoice('ACME-002').pk}/", {"description": "Changed"}
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only draft invoices can be edited.",
        "code": "policy.draft",
        "layer": "policy",
        "reason": "Only draft invoices can be edited.",
        "action": "invoices.change",
    }


def test_editing_a_draft(api_for: Callable[[str], APIClient], invoice: InvoiceGetter) -> None:
    response = api_for("bob").patch(
        f"/api/invoices/{invoice('ACME-001').pk}/", {"description": "Ergonomic chairs"}
    )
    assert response.status_code == 200
    assert invoice("ACME-001").description == "Ergonomic chairs"


def test_the_workflow_through_the_api(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    bob, alice = api_for("bob"), api_for("alice")
    draft = invoice("ACME-001")
    assert bob.post(f"/api/invoices/{draft.pk}/submit/").json()["state"] == "submitted"
    assert alice.post(f"/api/invoices/{draft.pk}/approve/").json()["approved_by"] == "alice"
    assert alice.post(f"/api/invoices/{draft.pk}/pay/").json()["state"] == "paid"


def test_an_invariant_violation_answers_409(
    api_for: Callable[[str], APIClient], invoice: InvoiceGetter
) -> None:
    response = api_for("alice").post(f"/api/invoices/{invoice('ACME-004').pk}/approve/")
    assert response.status_code == 409
    assert response.json()["code"] == "invariant.within_limit"
    assert response.json()["reason"] == "Invoices above 10,000 can never be approved."


def test_a_role_without_the_capability_gets_403_with_the_permission(
    api_for: Callable[[str], APIClient],
) -> None:
    response = api_for("bob").get("/api/invoices/approvable/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission.invoices.approve_invoice"
