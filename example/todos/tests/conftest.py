"""Fixtures of the AuthZEN tests: the specification's examples as data of this app, callers."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from clearance.contrib.authzen.models import Caller
from todos.models import Account, Document
from todos.scenario import seed

PREFIX = "/authzen/access/v1/"


def _grant(user: User, *codenames: str) -> None:
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="todos", codename__in=codenames)
    )


@pytest.fixture
def spec_world(db: None) -> dict[str, Any]:
    """The people and objects the specification's examples name.

    alice@example.com and bob@example.com; documents ``boxcarring.md`` (alice's),
    ``resource-search.md`` (bob's, alice reads it), ``1`` (alice's), ``2`` (bob's, hidden from
    alice), ``3`` (bob's, alice reads it), and no ``subject-search.md``; accounts ``123`` (alice
    and bob), ``456`` and ``789`` (alice) and ``999`` (bob).
    """
    alice = User.objects.create_user("alice", email="alice@example.com")
    bob = User.objects.create_user("bob", email="bob@example.com")
    for user in (alice, bob):
        _grant(user, "view_document", "change_document", "view_account", "change_account")
    docs = {}
    for name, owner, readers in [
        ("boxcarring.md", alice, []),
        ("resource-search.md", bob, [alice]),
        ("1", alice, []),
        ("2", bob, []),
        ("3", bob, [alice]),
    ]:
        docs[name] = Document.objects.create(name=name, owner=owner)
        docs[name].readers.set(readers)
    accounts = {}
    for number, holders in [
        ("123", [alice, bob]),
        ("456", [alice]),
        ("789", [alice]),
        ("999", [bob]),
    ]:
        accounts[number] = Account.objects.create(number=number)
        accounts[number].holders.set(holders)
    return {"alice": alice, "bob": bob, "documents": docs, "accounts": accounts}


@pytest.fixture
def token(db: None) -> str:
    """The bearer token of a caller that may ask about users."""
    _, issued = Caller.issue("gateway", subject_types=["user"])
    return issued


@pytest.fixture
def post(client: Client, token: str) -> Callable[..., Any]:
    """POST a body to an endpoint (``"evaluation"``, ``"search/resource"``...) as the gateway."""

    def send(endpoint: str, body: Any, **headers: Any) -> Any:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return client.post(
            PREFIX + endpoint,
            data=data,
            content_type=headers.pop("content_type", "application/json"),
            **headers,
        )

    return send


@pytest.fixture
def scenario(db: None) -> list[User]:
    """The Todo scenario's role groups and five users."""
    return seed()
