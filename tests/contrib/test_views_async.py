"""Async function and class-based views, served through Django's async handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import AsyncClient

from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

Docs = dict[str, Document]


@pytest.fixture
def async_client_for() -> Callable[[User], AsyncClient]:
    def login(user: User) -> AsyncClient:
        client = AsyncClient()
        client.force_login(user)
        return client

    return login


def get(client: AsyncClient, path: str, **headers: Any) -> Any:
    # async_to_sync keeps the ORM calls of the async view on this test's connection.
    return async_to_sync(client.get)(path, headers=headers)


def post(client: AsyncClient, path: str, **headers: Any) -> Any:
    return async_to_sync(client.post)(path, headers=headers)


def test_async_function_view_shows_a_visible_object(
    async_client_for: Callable[[User], AsyncClient], member: User, docs: Docs
) -> None:
    response = get(async_client_for(member), f"/contrib/fn-async/{docs['a'].pk}/")
    assert response.status_code == 200
    assert response.json() == {"title": "Acme ledger", "state": "submitted"}


def test_async_function_view_hides_another_tenants_object(
    async_client_for: Callable[[User], AsyncClient], member: User, docs: Docs
) -> None:
    response = get(async_client_for(member), f"/contrib/fn-async/{docs['b'].pk}/")
    assert response.status_code == 404
    assert b"Globex" not in response.content


def test_async_function_view_sends_anonymous_visitors_to_log_in(docs: Docs) -> None:
    response = get(AsyncClient(), f"/contrib/fn-async/{docs['a'].pk}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_async_class_based_view_decides_per_method(
    async_client_for: Callable[[User], AsyncClient], member: User, docs: Docs
) -> None:
    client = async_client_for(member)
    assert get(client, f"/contrib/cbv-async/{docs['a'].pk}/").json() == {"title": "Acme ledger"}
    refused = post(client, f"/contrib/cbv-async/{docs['big'].pk}/", accept="application/json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "invariant.within_limit"
    approved = post(client, f"/contrib/cbv-async/{docs['a'].pk}/")
    assert approved.json() == {"approved": "Acme ledger"}
    docs["a"].refresh_from_db()
    assert docs["a"].state == "approved"


def test_async_class_based_view_hides_and_refuses_with_the_reason(
    async_client_for: Callable[[User], AsyncClient], member: User, bob: User, docs: Docs
) -> None:
    hidden = get(async_client_for(member), f"/contrib/cbv-async/{docs['b'].pk}/")
    assert hidden.status_code == 404
    assert b"Globex" not in hidden.content
    own = post(async_client_for(bob), f"/contrib/cbv-async/{docs['a'].pk}/")
    # Bob holds no view permission: his own document is not even visible to him.
    assert own.status_code == 404


def test_async_list_view_is_scoped(
    async_client_for: Callable[[User], AsyncClient],
    member: User,
    outsider: User,
    reader: User,
    docs: Docs,
) -> None:
    mine = get(async_client_for(member), "/contrib/cbv-async/").json()["titles"]
    assert mine == ["Acme draft", "Acme ledger", "Acme turbine"]
    theirs = get(async_client_for(outsider), "/contrib/cbv-async/").json()["titles"]
    assert theirs == ["Globex secret plan"]
    refused = get(async_client_for(reader), "/contrib/cbv-async/", accept="application/json")
    assert refused.status_code == 403
    assert refused.json()["layer"] == "permission"
