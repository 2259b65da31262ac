"""What a decision costs in queries, and that the fast paths decide and record as before.

A warm decision (the same user object, as within one request) asks the database nothing when
its rules read local fields and foreign-key ids, and at most one query per to-many rule; a
cold one (a fresh user object, as on the next request) asks no more than a hand-written check
with the same per-request caching. The fast paths behind this must not change a verdict, a
trace or a record.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils.functional import SimpleLazyObject

from clearance import ACTOR, ANYONE, Action, Decision, authorize, explain, where
from clearance.conf import clearance_settings
from tests.testapp.models import Document, Membership

pytestmark = pytest.mark.django_db


def hand_written(user: Any, doc: Document) -> bool:
    """The inline check a view would contain, caching the tenant ids on the user object."""
    ids = getattr(user, "_tenant_ids", None)
    if ids is None:
        ids = user._tenant_ids = set(
            Membership.objects.filter(user=user).values_list("tenant_id", flat=True)
        )
    return bool(
        user.has_perm("testapp.approve_document")
        and doc.tenant_id in ids
        and doc.owner_id != user.pk
        and doc.state == "submitted"
        and doc.amount <= 10_000
    )


def queries(fn: Any, *args: Any) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as captured:
        result = fn(*args)
    return result, len(captured)


@override_settings(CLEARANCE={"AUDIT_SINKS": []})  # a recorded denial costs its audit row
def test_a_warm_decision_asks_the_database_nothing(alice: User, bob: User, make_doc: Any) -> None:
    allowed, over = make_doc(owner=bob), make_doc(owner=bob, amount=50_000)
    authorize(alice, "testapp.approve", allowed)
    for doc, verdict in ((allowed, True), (over, False), (allowed, True)):
        decision, count = queries(authorize, alice, "testapp.approve", doc)
        assert decision.allowed is verdict
        assert count == 0


def test_a_cold_decision_asks_no_more_than_the_hand_written_check(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    fresh = [User.objects.get(pk=alice.pk) for _ in range(2)]
    verdict, by_hand = queries(hand_written, fresh[0], doc)
    decision, by_clearance = queries(authorize, fresh[1], "testapp.approve", doc)
    assert verdict is True and decision.allowed
    assert by_hand == 3  # the user's permissions, the group's, the memberships
    assert by_clearance <= by_hand


def test_local_fields_and_foreign_key_ids_need_no_query(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    act = Action("testapp.touch", model=Document, permission=ANYONE)
    act.policy("not_mine", ~where(owner=ACTOR))
    act.policy("in_tenant", where(tenant_id__in=[doc.tenant_id, doc.tenant_id + 1]))
    act.invariant("small", where(amount__lte=1000, state="submitted"))
    cold = User.objects.get(pk=alice.pk)
    decision, count = queries(authorize, cold, act, doc)
    assert decision.allowed and count == 0


def test_a_to_many_rule_costs_one_query_per_user_object(
    alice: User, bob: User, make_doc: Any
) -> None:
    docs = [make_doc(owner=bob) for _ in range(3)]
    user = User.objects.get(pk=alice.pk)
    user.has_perm("testapp.approve_document")  # gate 1 warm: only the rule is counted
    _, first = queries(authorize, user, "testapp.approve", docs[0])
    counts = [queries(authorize, user, "testapp.approve", d)[1] for d in docs]
    assert first == 1 and counts == [0, 0, 0]


def test_a_revoked_membership_counts_on_the_next_user_object(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    assert authorize(alice, "testapp.approve", doc).allowed
    Membership.objects.filter(user=alice).delete()
    assert authorize(alice, "testapp.approve", doc).allowed  # the same request: cached
    nxt = User.objects.get(pk=alice.pk)
    decision = authorize(nxt, "testapp.approve", doc)
    assert not decision.allowed and decision.code == "policy.tenant_member"


def test_the_actor_binds_alike_whatever_the_actor_object(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    lazy_bob: Any = SimpleLazyObject(lambda: User.objects.get(pk=bob.pk))
    lazy_alice: Any = SimpleLazyObject(lambda: User.objects.get(pk=alice.pk))
    assert authorize(lazy_alice, "testapp.approve", doc).allowed
    own = authorize(lazy_bob, "testapp.approve", doc)
    assert own.code == "policy.four_eyes"
    read = explain(AnonymousUser(), "testapp.read", doc)
    assert read.allowed  # an anonymous actor owns nothing and belongs nowhere


def test_the_engines_decision_is_a_complete_decision(alice: User, bob: User, make_doc: Any) -> None:
    decision = authorize(alice, "testapp.approve", make_doc(owner=bob, amount=50_000))
    rebuilt = Decision(**decision._fields())
    assert rebuilt == decision and hash(rebuilt) == hash(decision)
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert [(t.layer.value, t.rule, t.outcome) for t in decision.trace] == [
        ("permission", "testapp.approve_document", True),
        ("policy", "tenant_member", True),
        ("policy", "four_eyes", True),
        ("policy", "submitted", True),
        ("invariant", "within_limit", False),
    ]
    assert all(t.duration >= 0 for t in decision.trace)
    assert decision.trace[-1].expression == "where(amount__lte=10000)"
    with pytest.raises(AttributeError, match="immutable"):
        decision.allowed = True  # type: ignore[misc]


def test_a_renamed_user_is_recorded_under_the_new_name(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    assert authorize(alice, "testapp.approve", doc).actor.label == "alice"
    alice.username = "alice.smith"
    assert authorize(alice, "testapp.approve", doc).actor.label == "alice.smith"


def test_a_changed_rule_set_is_used_at_once(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    act = Action("testapp.stamp", model=Document, permission=ANYONE)
    doc = make_doc(owner=bob)
    first = authorize(alice, act, doc)
    act.policy("drafts_only", where(state="draft"))
    second = authorize(alice, act, doc)
    assert first.allowed and not second.allowed
    assert second.code == "policy.drafts_only" and second.fingerprint != first.fingerprint


def test_settings_read_during_decisions_follow_changes() -> None:
    assert clearance_settings.RECORD_ALLOWED is False
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True}):
        assert clearance_settings.RECORD_ALLOWED is True
    assert clearance_settings.RECORD_ALLOWED is False
