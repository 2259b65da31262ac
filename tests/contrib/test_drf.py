"""Django REST framework: permission class, filter backend, error bodies, 404 versus 403/409."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

ApiFor = Callable[[User], APIClient]
Docs = dict[str, Document]


def titles(response: object) -> list[str]:
    return [row["title"] for row in response.json()]  # type: ignore[attr-defined]


def test_list_returns_only_authorized_objects(
    api_for: ApiFor, member: User, outsider: User, docs: Docs
) -> None:
    assert titles(api_for(member).get("/api/documents/")) == [
        "Acme draft",
        "Acme ledger",
        "Acme turbine",
    ]
    assert titles(api_for(outsider).get("/api/documents/")) == ["Globex secret plan"]


def test_list_authorization_filter_is_one_query(api_for: ApiFor, member: User, docs: Docs) -> None:
    client = api_for(member)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/documents/")
    assert response.status_code == 200
    touching = [q["sql"] for q in queries.captured_queries if "testapp_document" in q["sql"]]
    assert len(touching) == 1, touching
    assert "testapp_membership" in touching[0]
    assert not any("testapp_membership" in q["sql"] for q in queries.captured_queries[:-1]), (
        "the membership rule must be part of the list query, not a query of its own"
    )


def test_retrieve_hides_another_tenants_object_as_not_found(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    hidden = api_for(member).get(f"/api/documents/{docs['b'].pk}/")
    missing = api_for(member).get("/api/documents/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert b"Globex" not in hidden.content


def test_permission_gate_denial_carries_code_layer_and_reason(
    api_for: ApiFor, reader: User, docs: Docs
) -> None:
    response = api_for(reader).get("/api/documents/")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission.testapp.view_document"
    assert body["layer"] == "permission"
    assert body["reason"] == (
        "This needs the permission testapp.view_document, which you do not hold."
    )


def test_policy_denial_on_a_visible_object_is_403_with_the_reason(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    Document.objects.filter(pk=docs["a"].pk).update(state="approved")
    response = api_for(member).patch(f"/api/documents/{docs['a'].pk}/", {"title": "x"})
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Approved documents are final.",
        "code": "policy.not_approved",
        "layer": "policy",
        "reason": "Approved documents are final.",
        "action": "testapp.change",
    }
    for secret in ("~where", "state=", "trace", "expression"):
        assert secret not in response.content.decode()


def test_invariant_on_a_custom_action_answers_409(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    response = api_for(member).post(f"/api/documents/{docs['big'].pk}/approve/")
    assert response.status_code == 409
    assert response.json()["code"] == "invariant.within_limit"
    assert response.json()["layer"] == "invariant"
    docs["big"].refresh_from_db()
    assert docs["big"].state == "submitted"


def test_invariant_status_setting_applies_to_the_api(
    api_for: ApiFor, member: User, docs: Docs, settings: object
) -> None:
    settings.CLEARANCE = {"INVARIANT_STATUS": 422}  # type: ignore[attr-defined]
    response = api_for(member).post(f"/api/documents/{docs['big'].pk}/approve/")
    assert response.status_code == 422


def test_custom_action_allowed_acts(api_for: ApiFor, member: User, docs: Docs) -> None:
    response = api_for(member).post(f"/api/documents/{docs['a'].pk}/approve/")
    assert response.status_code == 200
    assert response.json()["state"] == "approved"


def test_custom_action_on_another_tenants_object_is_not_found(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    response = api_for(member).post(f"/api/documents/{docs['b'].pk}/approve/")
    assert response.status_code == 404
    docs["b"].refresh_from_db()
    assert docs["b"].state == "submitted"


def test_update_of_another_tenants_object_is_not_found(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    response = api_for(member).put(
        f"/api/documents/{docs['b'].pk}/",
        {"title": "Mine", "state": "draft", "amount": "1", "tenant": docs["b"].tenant_id},
    )
    assert response.status_code == 404
    docs["b"].refresh_from_db()
    assert docs["b"].title == "Globex secret plan"


def test_an_invariant_broken_by_the_update_itself_answers_409_and_rolls_back(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    response = api_for(member).patch(f"/api/documents/{docs['a'].pk}/", {"amount": "50000"})
    assert response.status_code == 409
    assert response.json()["code"] == "invariant.within_limit"
    docs["a"].refresh_from_db()
    assert str(docs["a"].amount) == "100.00"


def test_custom_list_action_is_scoped_by_its_own_action(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    assert titles(api_for(member).get("/api/documents/approvable/")) == ["Acme ledger"]


def test_anonymous_request_is_not_authenticated(docs: Docs) -> None:
    response = APIClient().get("/api/documents/")
    assert response.status_code in (401, 403)
    assert b"Acme" not in response.content


def test_an_unmapped_viewset_action_is_a_configuration_error(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    client = api_for(member)
    assert client.get("/api/unmapped/").status_code == 200  # list defaults to the view action
    with pytest.raises(ImproperlyConfigured, match="maps no clearance action to 'destroy'"):
        client.delete(f"/api/unmapped/{docs['a'].pk}/")
    assert Document.objects.filter(pk=docs["a"].pk).exists()


def test_a_denial_raised_in_a_plain_drf_view_keeps_its_body(
    rf: object, member: User, docs: Docs
) -> None:
    from rest_framework.views import APIView

    from clearance import enforce
    from clearance.contrib.drf import exception_handler

    class Approve(APIView):
        def get_exception_handler(self):  # type: ignore[no-untyped-def]
            return exception_handler

        def post(self, request, pk):  # type: ignore[no-untyped-def]
            enforce(request.user, "testapp.approve", Document.objects.get(pk=pk))

    request = rf.post("/")  # type: ignore[attr-defined]
    request.user = member
    request._dont_enforce_csrf_checks = True
    response = Approve.as_view()(request, pk=docs["big"].pk)
    assert response.status_code == 409
    assert response.data["code"] == "invariant.within_limit"


def test_without_the_filter_backend_a_hidden_object_is_still_not_found(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    client = api_for(member)
    hidden = client.get(f"/api/unmapped/{docs['b'].pk}/")
    missing = client.get("/api/unmapped/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() == {"detail": "No Document matches the given query."}


# -- writes are decided on what they would write --------------------------------------------------


def test_create_is_decided_on_the_unsaved_instance(
    api_for: ApiFor, member: User, docs: Docs, other_tenant: object
) -> None:
    client = api_for(member)
    payload = {"title": "Planted", "state": "draft", "amount": "1"}
    foreign = client.post("/api/documents/", {**payload, "tenant": other_tenant.pk})  # type: ignore[attr-defined]
    assert foreign.status_code == 403
    assert foreign.json()["code"] == "policy.tenant_member"
    too_big = client.post(
        "/api/documents/", {**payload, "amount": "50000", "tenant": docs["a"].tenant_id}
    )
    assert too_big.status_code == 409
    assert too_big.json()["code"] == "invariant.within_limit"
    assert not Document.objects.filter(title="Planted").exists()
    ok = client.post("/api/documents/", {**payload, "tenant": docs["a"].tenant_id})
    assert ok.status_code == 201


def test_update_is_decided_on_the_object_as_the_change_leaves_it(
    api_for: ApiFor, member: User, docs: Docs, other_tenant: object
) -> None:
    response = api_for(member).patch(
        f"/api/documents/{docs['a'].pk}/",
        {"tenant": other_tenant.pk},  # type: ignore[attr-defined]
    )
    assert response.status_code == 403
    assert response.json()["code"] == "policy.tenant_member"
    docs["a"].refresh_from_db()
    assert docs["a"].tenant_id != other_tenant.pk  # type: ignore[attr-defined]


def test_a_write_without_the_mixin_is_a_configuration_error(
    api_for: ApiFor, member: User, docs: Docs
) -> None:
    client = api_for(member)
    with pytest.raises(ImproperlyConfigured, match="ClearanceAPIMixin"):
        client.post("/api/without-mixin/", {"title": "x", "tenant": docs["a"].tenant_id})
    with pytest.raises(ImproperlyConfigured, match="ClearanceAPIMixin"):
        client.patch(f"/api/without-mixin/{docs['a'].pk}/", {"title": "x"})
    assert not Document.objects.filter(title="x").exists()


def test_the_view_passes_values_to_the_rules_as_ctx(
    api_for: ApiFor, member: User, docs: Docs, document_actions: dict[str, object]
) -> None:
    from clearance import CTX, where

    document_actions["create"].policy(  # type: ignore[attr-defined]
        "by_channel",
        where(title__startswith=CTX.channel),
        reason="Titles start with the channel.",
    )
    client = api_for(member)
    payload = {"title": "api: memo", "state": "draft", "amount": "1", "tenant": docs["a"].tenant_id}
    refused = client.post("/api/channel/", payload, HTTP_X_CHANNEL="web")
    assert refused.status_code == 403
    assert refused.json()["code"] == "policy.by_channel"
    assert client.post("/api/channel/", payload, HTTP_X_CHANNEL="api").status_code == 201


def test_a_lookup_several_objects_match_is_not_found_like_a_missing_one(
    api_for: ApiFor, member: User, docs: Docs, make_doc: Callable[..., Document]
) -> None:
    make_doc(title="Globex secret plan", tenant=docs["a"].tenant)  # the same title in Acme
    client = api_for(member)
    own = client.get("/api/by-title/Globex secret plan/")
    assert own.status_code == 200
    assert own.json()["tenant"] == docs["a"].tenant_id
    make_doc(title="Globex secret plan", tenant=docs["a"].tenant)  # and a second one in Acme
    several = client.get("/api/by-title/Globex secret plan/")
    missing = client.get("/api/by-title/No such title/")
    assert several.status_code == missing.status_code == 404
    assert several.json() == missing.json()
