"""The unguarded-view middleware: warn, or raise in strict mode, when no decision was made."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.test import AsyncClient, Client

from clearance.contrib.guard import UnguardedView
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

ClientFor = Callable[[User], Client]
Docs = dict[str, Document]
GUARD = "clearance.contrib.guard.UnguardedViewMiddleware"


@pytest.fixture
def guarded(settings: Any) -> Any:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, GUARD]
    return settings


@pytest.fixture
def strict(guarded: Any) -> Any:
    guarded.CLEARANCE = {"GUARD_STRICT": True}
    return guarded


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "clearance.guard"]


def test_a_view_without_any_decision_is_reported(
    guarded: Any, client_for: ClientFor, member: User, docs: Docs, caplog: Any
) -> None:
    with caplog.at_level(logging.WARNING, logger="clearance.guard"):
        response = client_for(member).get("/contrib/unguarded/")
    assert response.status_code == 200
    [message] = warnings(caplog)
    assert message.startswith(
        "GET /contrib/unguarded/ was answered by tests.contrib.views.unguarded"
    )
    assert "without any authorization decision" in message


def test_strict_mode_raises_so_the_test_fails(
    strict: Any, client_for: ClientFor, member: User, docs: Docs
) -> None:
    with pytest.raises(UnguardedView, match="/contrib/unguarded/"):
        client_for(member).get("/contrib/unguarded/")


def test_strict_mode_catches_an_async_view_too(strict: Any, member: User, docs: Docs) -> None:
    client = AsyncClient()
    client.force_login(member)
    with pytest.raises(UnguardedView, match="unguarded_async"):
        async_to_sync(client.get)("/contrib/unguarded-async/")


@pytest.mark.parametrize(
    "path",
    [
        "/contrib/fn/{a}/",
        "/contrib/cbv/{a}/",
        "/contrib/cbv/",
        "/contrib/cards/",
        "/api/documents/",
        "/api/documents/{a}/",
        "/contrib/admin/testapp/document/",
    ],
)
def test_protected_views_pass_in_strict_mode(
    strict: Any, client_for: ClientFor, member: User, docs: Docs, path: str
) -> None:
    response = client_for(member).get(path.format(a=docs["a"].pk))
    assert response.status_code == 200


def test_async_protected_views_pass_in_strict_mode(strict: Any, member: User, docs: Docs) -> None:
    client = AsyncClient()
    client.force_login(member)
    for path in (f"/contrib/fn-async/{docs['a'].pk}/", "/contrib/cbv-async/"):
        assert async_to_sync(client.get)(path).status_code == 200


def test_error_responses_and_login_redirects_are_not_reported(
    strict: Any, client_for: ClientFor, member: User, docs: Docs
) -> None:
    assert client_for(member).get(f"/contrib/fn/{docs['b'].pk}/").status_code == 404
    assert client_for(member).get("/no/such/page/").status_code == 404
    assert Client().get(f"/contrib/fn/{docs['a'].pk}/").status_code == 302


def test_exempt_paths_and_views(
    strict: Any, client_for: ClientFor, member: User, docs: Docs
) -> None:
    assert client_for(member).get("/contrib/public/").content == b"hello"
    strict.CLEARANCE = {"GUARD_STRICT": True, "GUARD_EXEMPT": [r"^contrib/unguarded/$"]}
    assert client_for(member).get("/contrib/unguarded/").status_code == 200


def test_without_the_middleware_nothing_is_counted(client_for: ClientFor, member: User) -> None:
    from clearance.request_context import decisions_in_request

    assert client_for(member).get("/contrib/unguarded/").status_code == 200
    assert decisions_in_request.get() is None
