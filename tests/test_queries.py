"""What a decision costs in SQL queries, counted on the real database."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from clearance import ACTOR, CTX, Action, authorize, explain, where
from tests.testapp.models import Document, Tenant

pytestmark = pytest.mark.django_db

LOGGING_ONLY = {"AUDIT_SINKS": ["clearance.audit.sinks.LoggingSink"]}

QueryCounter = Callable[..., Any]


def warm(user: User) -> User:
    """Load the user's permissions once, as the first check of a request does."""
    assert user.has_perm("testapp.approve_document")
    return user


@pytest.fixture
def local_action(fresh_registry: Any) -> Action:
    """Only local fields and foreign-key ids: nothing to ask the database."""
    action = Action(
        "testapp.local", model=Document, permission="testapp.approve_document", label="Local"
    )
    action.policy("same_tenant", where(tenant=CTX.tenant))
    action.policy("tenant_id", where(tenant_id__in=[CTX.tenant.pk]))
    action.policy("not_mine", ~where(owner=ACTOR))
    action.policy("owner_pk", ~where(owner__pk=ACTOR.pk))
    action.policy("submitted", where(state="submitted", priority__isnull=True))
    action.invariant("within_limit", where(amount__lte=Decimal("10000")))
    return action


@override_settings(CLEARANCE=LOGGING_ONLY)
def test_local_and_fk_id_rules_make_no_query(
    local_action: Action,
    alice: User,
    bob: User,
    tenant: Tenant,
    make_doc: Any,
    django_assert_num_queries: QueryCounter,
) -> None:
    alice = warm(alice)
    allowed, own, big = make_doc(owner=bob), make_doc(owner=alice), make_doc(amount=20_000)
    with django_assert_num_queries(0):
        assert authorize(alice, "testapp.local", allowed, tenant=tenant).allowed
        assert authorize(alice, "testapp.local", own, tenant=tenant).code == "policy.not_mine"
        assert authorize(alice, "testapp.local", big, tenant=tenant).code == (
            "invariant.within_limit"
        )
        assert not explain(alice, "testapp.local", own, tenant=tenant)


def test_an_allowed_local_decision_makes_no_query_with_the_default_audit(
    local_action: Action,
    alice: User,
    bob: User,
    tenant: Tenant,
    make_doc: Any,
    django_assert_num_queries: QueryCounter,
) -> None:
    alice = warm(alice)
    doc = make_doc(owner=bob)
    with django_assert_num_queries(0):
        assert authorize(alice, "testapp.local", doc, tenant=tenant).allowed


@override_settings(CLEARANCE=LOGGING_ONLY)
def test_a_to_many_rule_costs_one_query_then_none_for_the_same_actor(
    alice: User,
    bob: User,
    make_doc: Any,
    django_assert_num_queries: QueryCounter,
    django_assert_max_num_queries: QueryCounter,
) -> None:
    # testapp.approve: tenant_member crosses tenant -> memberships (to-many).
    alice = warm(alice)
    first, second, own = make_doc(owner=bob), make_doc(owner=bob), make_doc(owner=alice)
    with django_assert_max_num_queries(1):
        assert authorize(alice, "testapp.approve", first).allowed
    with django_assert_num_queries(0):
        assert authorize(alice, "testapp.approve", second).allowed
        assert authorize(alice, "testapp.approve", own).code == "policy.four_eyes"
        assert explain(alice, "testapp.approve", first).allowed


@override_settings(CLEARANCE=LOGGING_ONLY)
def test_each_actor_object_pays_its_own_query(
    alice: User,
    bob: User,
    make_doc: Any,
    django_assert_num_queries: QueryCounter,
) -> None:
    doc = make_doc(owner=bob)
    for _request in range(2):
        user = warm(User.objects.get(pk=alice.pk))  # a new request loads the user again
        with django_assert_num_queries(1):
            assert authorize(user, "testapp.approve", doc).allowed
        with django_assert_num_queries(0):
            assert authorize(user, "testapp.approve", doc).allowed
