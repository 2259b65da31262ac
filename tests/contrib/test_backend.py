"""``ClearanceBackend``: ``has_perm(perm, obj)`` through the gates; Django's answers unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import AnonymousUser, User

from clearance import authorize
from clearance.backends import actions_naming
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

Docs = dict[str, Document]

MODEL = "django.contrib.auth.backends.ModelBackend"
CLEARANCE = "clearance.backends.ClearanceBackend"
GRANT_ALL = "tests.contrib.test_backend.GrantEveryObject"

PERMS = [
    "testapp.approve_document",
    "testapp.view_document",
    "testapp.change_document",
    "testapp.delete_document",
    "testapp.submit_document",  # named by no action
    "testapp.add_document",
    "auth.view_user",
]


class GrantEveryObject(BaseBackend):
    """An object-permission backend that grants everything (to show the denial is final)."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return obj is not None


def fresh(user: User) -> User:
    """The user as the next request would load it (no permission caches)."""
    return User.objects.get(pk=user.pk)


@pytest.fixture
def people(
    member: User, outsider: User, bob: User, reader: User, make_user: Callable[..., User]
) -> list[Any]:
    inactive = make_user("ida", tenants=(), is_active=False)
    return [member, outsider, bob, reader, inactive, AnonymousUser()]


@pytest.fixture
def with_backend(settings: Any) -> None:
    settings.AUTHENTICATION_BACKENDS = [MODEL, CLEARANCE]


def expected(user: Any, perm: str, obj: Document) -> bool:
    acts = actions_naming(perm, Document)
    return bool(acts) and all(authorize(user, act, obj) for act in acts)


def test_has_perm_with_an_object_agrees_with_authorize_for_every_action_naming_it(
    with_backend: None, people: list[Any], docs: Docs
) -> None:
    seen = []
    for person in people:
        for obj in docs.values():
            for perm in PERMS:
                user = fresh(person) if person.pk else person
                answer = user.has_perm(perm, obj)
                assert answer is expected(user, perm, obj), (person, perm, obj)
                seen.append(answer)
    assert len(seen) == len(people) * len(docs) * len(PERMS)
    assert seen.count(True) >= 5 and seen.count(False) >= 5


def test_has_perm_with_an_object_is_true_only_when_every_naming_action_allows(
    with_backend: None, member: User, docs: Docs, document_actions: dict[str, Any]
) -> None:
    from clearance import Action, where

    # A second action naming the change permission, stricter than testapp.change.
    rename = Action("testapp.rename", model=Document, permission="testapp.change_document")
    rename.policy("draft_only", where(state="draft"), reason="Only drafts are renamed.")
    user = fresh(member)
    assert authorize(user, "testapp.change", docs["a"])
    assert not authorize(user, "testapp.rename", docs["a"])
    assert user.has_perm("testapp.change_document", docs["a"]) is False
    assert user.has_perm("testapp.change_document", docs["draft"]) is True


def test_answers_without_an_object_are_djangos(
    settings: Any, people: list[Any], docs: Docs
) -> None:
    def answers() -> list[Any]:
        out = []
        for person in people:
            user = fresh(person) if person.pk else person
            out.append(
                (
                    [user.has_perm(p) for p in PERMS],
                    user.has_perms(PERMS[:2]),
                    sorted(user.get_all_permissions()),
                    sorted(user.get_all_permissions(docs["a"])),
                    user.has_module_perms("testapp"),
                    user.has_perm("testapp.submit_document", docs["a"]),
                )
            )
        return out

    settings.AUTHENTICATION_BACKENDS = [MODEL]
    without = answers()
    settings.AUTHENTICATION_BACKENDS = [MODEL, CLEARANCE]
    with_it = answers()
    assert with_it == without
    assert any(row[0][0] for row in without)  # somebody does hold approve_document


def test_the_backend_authenticates_nobody(with_backend: None, member: User) -> None:
    from django.contrib.auth import authenticate

    assert authenticate(username="mia", password="x") == member  # through ModelBackend
    from clearance.backends import ClearanceBackend

    assert ClearanceBackend().authenticate(None, username="mia", password="x") is None


def test_a_denial_is_final_even_if_a_later_backend_would_grant(
    settings: Any, member: User, docs: Docs
) -> None:
    settings.AUTHENTICATION_BACKENDS = [MODEL, GRANT_ALL]
    assert fresh(member).has_perm("testapp.view_document", docs["b"]) is True
    settings.AUTHENTICATION_BACKENDS = [MODEL, CLEARANCE, GRANT_ALL]
    assert fresh(member).has_perm("testapp.view_document", docs["b"]) is False
    # A permission no action names is left to the other backends.
    assert fresh(member).has_perm("testapp.submit_document", docs["b"]) is True


def test_ahas_perm_agrees_with_authorize(with_backend: None, people: list[Any], docs: Docs) -> None:
    for person in people:
        for obj in docs.values():
            for perm in PERMS:
                user = fresh(person) if person.pk else person
                answer = async_to_sync(user.ahas_perm)(perm, obj)
                assert answer is expected(user, perm, obj), (person, perm, obj)


def test_ahas_perm_without_an_object_is_djangos(settings: Any, member: User, reader: User) -> None:
    def answers() -> list[bool]:
        return [async_to_sync(fresh(u).ahas_perm)(p) for u in (member, reader) for p in PERMS]

    settings.AUTHENTICATION_BACKENDS = [MODEL]
    without = answers()
    settings.AUTHENTICATION_BACKENDS = [MODEL, CLEARANCE]
    assert answers() == without


def test_has_perm_cannot_bind_a_superuser(with_backend: None, root: User, docs: Docs) -> None:
    """Documented: Django answers True for an active superuser before any backend runs."""
    user = fresh(root)
    assert not authorize(user, "testapp.approve", docs["big"])  # the invariant binds root...
    assert not authorize(user, "testapp.view", docs["b"])  # ...and so does the policy,
    assert user.has_perm("testapp.approve_document", docs["big"]) is True  # but has_perm cannot.
    assert user.has_perm("testapp.view_document", docs["b"]) is True
    assert async_to_sync(user.ahas_perm)("testapp.view_document", docs["b"]) is True
