"""A superuser is bound by policies and invariants through every integration (not has_perm)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

Docs = dict[str, Document]


@pytest.fixture
def web(client_for: Callable[[User], Client], root: User) -> Client:
    return client_for(root)


@pytest.fixture
def api(api_for: Callable[[User], APIClient], root: User) -> APIClient:
    return api_for(root)


def test_function_view(web: Client, docs: Docs) -> None:
    hidden = web.get(f"/contrib/fn/{docs['b'].pk}/")
    assert hidden.status_code == 404  # policy: tenant_member
    refused = web.post(f"/contrib/fn/{docs['big'].pk}/approve/", HTTP_ACCEPT="application/json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "invariant.within_limit"


def test_class_based_views(web: Client, docs: Docs) -> None:
    assert web.get(f"/contrib/cbv/{docs['b'].pk}/").status_code == 404
    assert "Globex" not in web.get("/contrib/cbv/").content.decode()
    too_big = web.post(
        f"/contrib/cbv/{docs['a'].pk}/edit/",
        {"title": "x", "amount": "50000", "tenant": docs["a"].tenant_id},
    )
    assert too_big.status_code == 409


def test_drf(api: APIClient, docs: Docs) -> None:
    assert "Globex" not in api.get("/api/documents/").content.decode()
    assert api.get(f"/api/documents/{docs['b'].pk}/").status_code == 404
    refused = api.post(f"/api/documents/{docs['big'].pk}/approve/")
    assert refused.status_code == 409
    docs["big"].refresh_from_db()
    assert docs["big"].state == "submitted"


def test_admin(web: Client, docs: Docs) -> None:
    changelist = "/contrib/admin/testapp/document/"
    assert "Globex" not in web.get(changelist).content.decode()
    response = web.post(
        changelist,
        {"action": "approve_selected", "_selected_action": [docs["big"].pk], "index": 0},
        follow=True,
    )
    assert "Documents above 10,000 can never be approved." in response.content.decode()
    docs["big"].refresh_from_db()
    assert docs["big"].state == "submitted"


def test_template(web: Client, docs: Docs) -> None:
    page = web.get("/contrib/cards/").content.decode()
    assert "Globex" not in page
    assert "Acme turbine [no: invariant invariant.within_limit" in page


def test_has_perm_is_the_documented_exception(root: User, docs: Docs, settings: object) -> None:
    settings.AUTHENTICATION_BACKENDS = [  # type: ignore[attr-defined]
        "django.contrib.auth.backends.ModelBackend",
        "clearance.backends.ClearanceBackend",
    ]
    user = User.objects.get(pk=root.pk)
    assert user.has_perm("testapp.approve_document", docs["big"]) is True
    assert user.has_perm("testapp.view_document", docs["b"]) is True
