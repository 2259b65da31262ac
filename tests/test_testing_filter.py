"""``clearance.testing.assert_filter_consistent``: users check their own rules' filters."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q

from clearance import ACTOR, ANYONE, Action, NotFilterable, predicate, where
from clearance.rules import Context, Rule
from clearance.testing import assert_filter_consistent
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


class Disagreeing(Rule):
    """A hand-written rule whose two halves disagree: Python says drafts, SQL says submitted."""

    def evaluate(self, ctx: Context) -> bool:
        return bool(ctx.obj.state == "draft")

    def to_q(self, ctx: Context, model: Any) -> Q:
        return Q(state="submitted")

    def __str__(self) -> str:
        return "disagreeing()"


class Joining(Rule):
    """A hand-written rule that joins a to-many relation, so rows repeat."""

    def evaluate(self, ctx: Context) -> bool:
        return bool(ctx.obj.watchers.exists())

    def to_q(self, ctx: Context, model: Any) -> Q:
        return Q(watchers__isnull=False)

    def __str__(self) -> str:
        return "joining()"


def test_consistent_rules_pass_and_report_what_each_actor_may_do(
    make_user: Any, tenant: Any, other_tenant: Any, make_doc: Any
) -> None:
    alice = make_user("alice", tenants=(tenant, other_tenant))
    bob = make_user("bob", tenants=(tenant,))
    carol = make_user("carol", tenants=(other_tenant,))
    mine = make_doc(owner=alice)
    bobs = make_doc(owner=bob)
    elsewhere = make_doc(tenant=other_tenant, owner=None)
    make_doc(owner=bob, state="draft")
    make_doc(owner=bob, amount=50_000)

    allowed = assert_filter_consistent(
        "testapp.approve", [alice, bob, carol, AnonymousUser()], Document.objects.all()
    )

    assert allowed[alice] == {bobs.pk, elsewhere.pk}
    assert allowed[bob] == {mine.pk}
    assert allowed[carol] == {elsewhere.pk}
    assert allowed[AnonymousUser()] == set()


def test_a_disagreement_names_the_actor_the_object_and_the_rule(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    draft = make_doc(state="draft", title="Draft one")
    submitted = make_doc(state="submitted", title="Ready one")
    action = Action("testapp.lying", model=Document, permission=ANYONE)
    action.policy("state_check", Disagreeing(), reason="Broken on purpose.")

    with pytest.raises(AssertionError) as failure:
        assert_filter_consistent(action, [alice], Document.objects.all())

    message = str(failure.value)
    assert "testapp.lying (2 problems)" in message
    assert f"alice on testapp.Document:{draft.pk} (Draft one): authorize() allows it" in message
    assert (
        f"alice on testapp.Document:{submitted.pk} (Ready one): authorized() returns it, "
        "authorize() denies it (policy.state_check: Broken on purpose.)"
    ) in message
    assert "rule policy.state_check (disagreeing()): per object True, in SQL False" in message
    assert "rule policy.state_check (disagreeing()): per object False, in SQL True" in message


def test_duplicate_rows_are_reported(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    watched = make_doc()
    watched.watchers.add(alice, bob)
    action = Action("testapp.joining", model=Document, permission=ANYONE)
    action.policy("watched", Joining(), reason="Watched documents.")

    with pytest.raises(AssertionError, match=rf"testapp.Document:{watched.pk} 2 times"):
        assert_filter_consistent(action, [alice], Document.objects.all())


def test_the_filtered_queryset_is_compared_not_the_whole_table(
    alice: User, bob: User, make_doc: Any
) -> None:
    make_doc(owner=bob)
    archived = make_doc(owner=bob, state="archived")

    allowed = assert_filter_consistent(
        "testapp.read", [alice], Document.objects.filter(state="archived")
    )
    assert allowed[alice] == set()  # the only archived document is hidden by not_archived
    assert archived.pk not in allowed[alice]


def test_nothing_to_compare_is_an_error(alice: User) -> None:
    with pytest.raises(ValueError, match="empty"):
        assert_filter_consistent("testapp.approve", [alice], Document.objects.all())
    with pytest.raises(ValueError, match="at least one actor"):
        assert_filter_consistent("testapp.approve", [], Document.objects.all())
    with pytest.raises(TypeError, match="QuerySet"):
        assert_filter_consistent("testapp.approve", [alice], [Document()])


def test_object_predicates_need_the_python_path(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    mine, theirs = make_doc(owner=alice, title="short"), make_doc(owner=bob, title="a long title")
    action = Action("testapp.titled", model=Document, permission=ANYONE)
    action.policy("member", where(tenant__memberships__user=ACTOR), reason="Members.")
    action.policy(
        "long_title", predicate(lambda ctx: len(ctx.obj.title) > 5), reason="Long titles."
    )

    with pytest.raises(NotFilterable, match="long_title"):
        assert_filter_consistent(action, [alice], Document.objects.all())
    allowed = assert_filter_consistent(
        action, [alice, bob], Document.objects.all(), evaluate_in_python=True
    )
    assert allowed == {alice: {theirs.pk}, bob: {theirs.pk}}
    assert mine.pk not in allowed[alice]
