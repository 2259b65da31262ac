"""``authorized()``: exactly the objects ``authorize()`` allows, in one query, as a plain queryset.

The random search over rule trees lives in ``test_filtering_properties.py``; the tests here pin
down each promise of the issue with a case a user would recognise.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from clearance import ACTOR, ANYONE, Action, authorize, authorized, where
from clearance.rules import Rule
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


def declare(*policies: Rule, permission: Any = ANYONE, name: str = "testapp.filtering") -> Action:
    """An action on Document with ``policies`` named p0, p1, ... (use with fresh_registry)."""
    action = Action(name, model=Document, permission=permission)
    for i, rule in enumerate(policies):
        action.policy(f"p{i}", rule, reason=f"policy {i}")
    return action


def pks(queryset: QuerySet[Any]) -> set[int]:
    return set(queryset.values_list("pk", flat=True))


def allowed_one_by_one(actor: Any, action: Action, **extra: Any) -> set[int]:
    return {
        doc.pk
        for doc in Document.objects.all()
        if authorize(User.objects.get(pk=actor.pk) if actor.pk else actor, action, doc, **extra)
    }


def assert_agree(actor: Any, action: Action, **extra: Any) -> set[int]:
    got = pks(authorized(actor, action, Document.objects.all(), **extra))
    assert got == allowed_one_by_one(actor, action, **extra)
    return got


# -- NULLs: SQL and Python agree on rows with no owner, no tenant, no priority ------------------


def test_negated_owner_keeps_documents_without_owner(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    mine, theirs, nobodys = make_doc(owner=alice), make_doc(owner=bob), make_doc(owner=None)
    action = declare(~where(owner=ACTOR))
    assert assert_agree(alice, action) == {theirs.pk, nobodys.pk}
    assert mine.pk not in assert_agree(alice, action)


def test_negated_lookup_through_a_nullable_foreign_key_keeps_rows_without_it(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    # Python: a path that meets None does not match, so its negation holds. The SQL must agree
    # also when the negation sits next to another branch that reads the same foreign key (Django
    # would otherwise reuse the join without its IS NOT NULL guard and drop the NULL rows).
    nobodys, alices, bobs = make_doc(owner=None), make_doc(owner=alice), make_doc(owner=bob)
    rule = where(owner=ACTOR, state="draft") | ~where(owner__username="alice")
    assert assert_agree(alice, declare(rule)) == {nobodys.pk, bobs.pk}
    assert alices.pk not in pks(
        authorized(alice, declare(rule, name="testapp.f2"), Document.objects.all())
    )


def test_negated_database_lookup_through_a_nullable_foreign_key(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    # A lookup Python cannot decide (regex) is asked of the database, through the same join.
    nobodys, bobs = make_doc(owner=None), make_doc(owner=bob)
    make_doc(owner=alice)
    rule = where(owner=ACTOR, state="draft") | ~where(owner__username__regex="^a")
    assert assert_agree(alice, declare(rule)) == {nobodys.pk, bobs.pk}


def test_negated_lookup_on_nullable_field(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    none, low, high = make_doc(priority=None), make_doc(priority=1), make_doc(priority=5)
    assert assert_agree(alice, declare(~where(priority__gt=2))) == {none.pk, low.pk}
    assert assert_agree(alice, declare(where(priority__gt=2), name="testapp.f2")) == {high.pk}


def test_anonymous_actor_matches_no_owner(fresh_registry: Any, make_doc: Any) -> None:
    unowned = make_doc(owner=None)
    action = declare(where(owner=ACTOR))
    assert pks(authorized(AnonymousUser(), action, Document.objects.all())) == set()
    assert pks(
        authorized(
            AnonymousUser(), declare(~where(owner=ACTOR), name="testapp.f2"), Document.objects.all()
        )
    ) == {unowned.pk}


# -- text: case-insensitive lookups fold as the database does -----------------------------------


@pytest.mark.parametrize(
    ("title", "lookup", "value"),
    [
        ("Strauß", "iexact", "STRAUSS"),
        ("STRAUSS", "iexact", "strauß"),
        ("Straße", "icontains", "SS"),
        ("Éclair", "iexact", "éclair"),
        ("éclair", "istartswith", "É"),
        ("Report", "contains", "rep"),
        ("100%", "endswith", "0%"),
        ("a_c", "contains", "_"),
        ("abc", "contains", "_"),
    ],
)
def test_text_lookups_agree_with_the_database(
    fresh_registry: Any, alice: User, make_doc: Any, title: str, lookup: str, value: str
) -> None:
    make_doc(title=title)
    action = declare(where(**{f"title__{lookup}": value}))
    negated = declare(~where(**{f"title__{lookup}": value}), name="testapp.negated")
    assert assert_agree(alice, action) | assert_agree(alice, negated) == pks(Document.objects.all())
