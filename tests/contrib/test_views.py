"""Function views and class-based views over HTTP: 404 when hidden, 403/409 with the reason."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]
Docs = dict[str, Document]


def text(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined,no-any-return]


# -- function views -----------------------------------------------------------------------------


def test_function_view_shows_a_visible_object(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).get(f"/contrib/fn/{docs['a'].pk}/")
    assert response.status_code == 200
    assert text(response) == "Acme ledger (submitted, 100.00)"


def test_function_view_hides_another_tenants_object_as_not_found(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    hidden = client_for(member).get(f"/contrib/fn/{docs['b'].pk}/")
    missing = client_for(member).get("/contrib/fn/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert "Globex" not in text(hidden)
    assert text(hidden) == text(missing)


def test_function_view_answers_a_policy_denial_with_403_and_the_reason(
    client_for: ClientFor, bob: User, docs: Docs, editors: object
) -> None:
    bob.groups.add(editors)  # type: ignore[arg-type]
    response = client_for(bob).post(
        f"/contrib/fn/{docs['a'].pk}/approve/", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Nobody approves their own document.",
        "code": "policy.four_eyes",
        "layer": "policy",
        "reason": "Nobody approves their own document.",
        "action": "testapp.approve",
    }
    docs["a"].refresh_from_db()
    assert docs["a"].state == "submitted"


def test_function_view_answers_an_invariant_with_409(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).post(
        f"/contrib/fn/{docs['big'].pk}/approve/", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invariant.within_limit"
    docs["big"].refresh_from_db()
    assert docs["big"].state == "submitted"


def test_invariant_status_is_a_setting(
    client_for: ClientFor, member: User, docs: Docs, settings: object
) -> None:
    settings.CLEARANCE = {"INVARIANT_STATUS": 422}  # type: ignore[attr-defined]
    response = client_for(member).post(f"/contrib/fn/{docs['big'].pk}/approve/")
    assert response.status_code == 422


def test_html_denial_renders_the_projects_403_page_without_rule_expressions(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).post(f"/contrib/fn/{docs['big'].pk}/approve/")
    assert response.status_code == 409
    assert "amount__lte" not in text(response)


def test_function_view_allows_and_acts(client_for: ClientFor, member: User, docs: Docs) -> None:
    response = client_for(member).post(f"/contrib/fn/{docs['a'].pk}/approve/")
    assert response.status_code == 200
    assert text(response) == "approved Acme ledger"
    docs["a"].refresh_from_db()
    assert docs["a"].state == "approved"


def test_hiding_can_be_turned_off_per_view(client_for: ClientFor, member: User, docs: Docs) -> None:
    response = client_for(member).get(
        f"/contrib/fn/{docs['b'].pk}/approve-unhidden/", HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "policy.tenant_member"


def test_a_denial_raised_inside_the_view_is_answered_with_its_status(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    response = client_for(member).post(
        f"/contrib/fn/{docs['a'].pk}/amount/", {"amount": "50000"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 409
    assert response.json()["reason"] == "Documents above 10,000 are refused."
    docs["a"].refresh_from_db()
    assert docs["a"].amount == Decimal("100")


def test_anonymous_visitor_is_sent_to_the_login_page(docs: Docs) -> None:
    response = Client().get(f"/contrib/fn/{docs['a'].pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/contrib/fn/")


def test_user_without_the_view_permission_gets_not_found(
    client_for: ClientFor, reader: User, docs: Docs
) -> None:
    response = client_for(reader).get(f"/contrib/fn/{docs['a'].pk}/")
    assert response.status_code == 404


def test_a_malformed_lookup_value_is_not_found(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    from django.test import RequestFactory

    from tests.contrib.views import document_detail

    request = RequestFactory().get("/x/")
    request.user = member
    from django.http import Http404

    with pytest.raises(Http404):
        document_detail(request, pk="not-a-number")


# -- class-based views --------------------------------------------------------------------------


def test_detail_view_shows_and_hides(client_for: ClientFor, member: User, docs: Docs) -> None:
    client = client_for(member)
    assert text(client.get(f"/contrib/cbv/{docs['a'].pk}/")).startswith("Acme ledger")
    hidden = client.get(f"/contrib/cbv/{docs['b'].pk}/")
    assert hidden.status_code == 404
    assert "Globex" not in text(hidden)


def test_update_view_uses_the_action_of_each_method(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    client = client_for(member)
    approved = docs["a"]
    Document.objects.filter(pk=approved.pk).update(state="approved")
    # GET needs testapp.view: allowed. POST needs testapp.change: approved documents are final.
    assert client.get(f"/contrib/cbv/{approved.pk}/edit/").status_code == 200
    response = client.post(
        f"/contrib/cbv/{approved.pk}/edit/",
        {"title": "Renamed", "amount": "1", "tenant": approved.tenant_id},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "policy.not_approved"
    approved.refresh_from_db()
    assert approved.title == "Acme ledger"


def test_update_view_hides_another_tenants_object(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    b = docs["b"]
    response = client_for(member).post(
        f"/contrib/cbv/{b.pk}/edit/", {"title": "Mine now", "amount": "1", "tenant": b.tenant_id}
    )
    assert response.status_code == 404
    b.refresh_from_db()
    assert b.title == "Globex secret plan"


def test_update_view_decides_again_on_what_the_form_would_save(
    client_for: ClientFor, member: User, docs: Docs, other_tenant: object
) -> None:
    a = docs["a"]
    client = client_for(member)
    moved = client.post(
        f"/contrib/cbv/{a.pk}/edit/",
        {"title": "Moved", "amount": "100", "tenant": other_tenant.pk},  # type: ignore[attr-defined]
        HTTP_ACCEPT="application/json",
    )
    assert moved.status_code == 403
    assert moved.json()["code"] == "policy.tenant_member"
    too_big = client.post(
        f"/contrib/cbv/{a.pk}/edit/",
        {"title": "Bigger", "amount": "50000", "tenant": a.tenant_id},
        HTTP_ACCEPT="application/json",
    )
    assert too_big.status_code == 409
    assert too_big.json()["code"] == "invariant.within_limit"
    a.refresh_from_db()
    assert (a.title, a.tenant_id, a.amount) == ("Acme ledger", a.tenant_id, Decimal("100"))
    ok = client.post(
        f"/contrib/cbv/{a.pk}/edit/", {"title": "Renamed", "amount": "150", "tenant": a.tenant_id}
    )
    assert ok.status_code == 302
    a.refresh_from_db()
    assert a.title == "Renamed"


def test_list_view_shows_only_authorized_objects(
    client_for: ClientFor, member: User, outsider: User, docs: Docs
) -> None:
    mine = text(client_for(member).get("/contrib/cbv/"))
    theirs = text(client_for(outsider).get("/contrib/cbv/"))
    assert "Acme ledger" in mine and "Globex" not in mine
    assert theirs == "Globex secret plan (submitted, 5.00)"


def test_list_view_scoped_by_another_action(
    client_for: ClientFor, member: User, docs: Docs
) -> None:
    page = text(client_for(member).get("/contrib/cbv/approvable/"))
    # Not the 20,000 turbine (invariant), not the draft (policy), not Globex's.
    assert page.splitlines() == ["Acme ledger (submitted, 100.00)"]


def test_list_view_refuses_who_may_not_attempt_the_action(
    client_for: ClientFor, reader: User, docs: Docs
) -> None:
    response = client_for(reader).get("/contrib/cbv/", HTTP_ACCEPT="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "permission.testapp.view_document"


def test_a_rule_that_raises_is_answered_with_the_decisions_reason(
    client_for: ClientFor, member: User, docs: Docs, document_actions: dict[str, object]
) -> None:
    from clearance import ACTOR, authorize, where

    document_actions["change"].policy(  # type: ignore[attr-defined]
        "within_approval_limit",
        where(amount__lte=ACTOR.approver_profile.approval_limit),
        reason="The amount is above your approval limit.",
    )
    a = docs["a"]
    decision = authorize(member, "testapp.change", a)
    assert not decision and decision.error
    response = client_for(member).post(
        f"/contrib/cbv/{a.pk}/edit/",
        {"title": "Renamed", "amount": "100", "tenant": a.tenant_id},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 403
    assert response.json()["reason"] == decision.reason
    assert response.json()["code"] == "policy.within_approval_limit"
    assert "approver_profile" not in text(response)


def test_the_class_based_view_passes_values_to_the_rules_as_ctx(
    rf: object, member: User, docs: Docs, document_actions: dict[str, object]
) -> None:
    from typing import Any

    from django.http import Http404

    from clearance import CTX, where
    from tests.contrib.views import DocumentDetail

    document_actions["view"].policy(  # type: ignore[attr-defined]
        "in_state", where(state=CTX.wanted), reason="Only documents in the wanted state."
    )

    class Submitted(DocumentDetail):
        def get_clearance_context(self) -> dict[str, Any]:
            return {"wanted": "submitted"}

    request = rf.get("/")  # type: ignore[attr-defined]
    request.user = member
    assert Submitted.as_view()(request, pk=docs["a"].pk).status_code == 200
    with pytest.raises(Http404):
        DocumentDetail.as_view()(request, pk=docs["a"].pk)
