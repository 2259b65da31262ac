"""``authorize_many``: a page of objects decided at once, with the same answers as one by one."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clearance import (
    ACTOR,
    ANYONE,
    CTX,
    Action,
    Decision,
    Layer,
    authorize,
    authorize_many,
    where,
)
from clearance import predicate as make_predicate
from clearance.engine import aauthorize_many
from clearance.testing import capture_decisions
from tests.testapp.models import Document, Membership, Note, Tenant

pytestmark = pytest.mark.django_db


def summary(decision: Decision) -> tuple[Any, ...]:
    """What a user sees of a decision (the timing in the trace aside)."""
    return (
        decision.allowed,
        decision.layer,
        decision.rule,
        decision.code,
        decision.reason,
        decision.resource,
        [(t.layer, t.rule, t.outcome) for t in decision.trace],
    )


@pytest.fixture
def page(
    make_user: Callable[..., User], tenant: Tenant, other_tenant: Tenant, make_doc: Any
) -> list[Document]:
    """Fifty documents across two tenants, owners, states, amounts and watchers."""
    dora = make_user("dora", tenants=(tenant, other_tenant))
    erin = make_user("erin", tenants=(other_tenant,))
    docs = []
    for i in range(50):
        doc = make_doc(
            tenant=(tenant, other_tenant, None)[i % 3],
            owner=(dora, erin, None)[i % 4 % 3],
            state=("submitted", "draft")[i % 5 == 0],
            amount=Decimal(20_000 if i % 7 == 0 else 100 + i),
            title=f"doc {i}",
        )
        if i % 2:
            doc.watchers.add(dora)
        docs.append(doc)
    return list(Document.objects.filter(pk__in=[d.pk for d in docs]).order_by("pk"))


@pytest.fixture(autouse=True)
def _no_audit_sinks(settings: Any) -> None:
    """Count the queries of the rules alone (audit sinks have tests of their own)."""
    settings.CLEARANCE = {"AUDIT_SINKS": []}


def fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def test_fifty_objects_one_query_for_the_to_many_rule_and_the_same_decisions(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    action = Action("testapp.many", model=Document, permission=ANYONE)
    action.policy("member", where(tenant__memberships__user=ACTOR), reason="Members only.")
    action.policy("four_eyes", ~where(owner=ACTOR), reason="Not your own.")
    action.invariant("limit", where(amount__lte=10_000), reason="Limit.")

    actor = fresh(alice)
    with CaptureQueriesContext(connection) as queries:
        batch = authorize_many(actor, action, page)
    assert len(queries) == 1, [q["sql"] for q in queries.captured_queries]

    one_by_one = [authorize(fresh(alice), action, doc) for doc in page]
    assert [summary(d) for d in batch] == [summary(d) for d in one_by_one]
    assert {d.code for d in batch} == {"allowed", "policy.member", "invariant.limit"}


def test_a_to_many_rule_not_tied_to_the_actor_is_one_query_per_batch(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    action = Action("testapp.watched", model=Document, permission=ANYONE)
    action.policy("watched", where(watchers__username=CTX.watcher), reason="Watched.")
    action.policy("admins", where(tenant__memberships__role=CTX.role), reason="Has members.")

    with CaptureQueriesContext(connection) as queries:
        batch = authorize_many(alice, action, page, watcher="dora", role="member")
    assert len(queries) == 2  # one per to-many rule, whatever the number of objects

    one_by_one = [authorize(alice, action, doc, watcher="dora", role="member") for doc in page]
    assert [summary(d) for d in batch] == [summary(d) for d in one_by_one]
    assert any(d.allowed for d in batch) and not all(d.allowed for d in batch)


def test_lookups_through_a_foreign_key_load_the_related_rows_once(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    action = Action("testapp.named", model=Document, permission=ANYONE)
    action.policy("bobs", where(owner__username="dora") | where(tenant__name="Globex"), reason="B.")

    with CaptureQueriesContext(connection) as queries:
        batch = authorize_many(alice, action, page)
    assert len(queries) == 2  # the owners, the tenants: not one query per document

    one_by_one = [authorize(alice, action, doc) for doc in Document.objects.order_by("pk")]
    assert [summary(d) for d in batch] == [summary(d) for d in one_by_one]


def test_lookups_only_the_database_decides_are_one_query_per_batch(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    action = Action("testapp.pattern", model=Document, permission=ANYONE)
    action.policy("pattern", where(title__regex=r"^doc [0-9]$"), reason="Single digits.")

    with CaptureQueriesContext(connection) as queries:
        batch = authorize_many(alice, action, page)
    assert len(queries) == 1

    assert [summary(d) for d in batch] == [summary(authorize(alice, action, d)) for d in page]
    assert [d.resource.pk for d in batch if d.allowed] == [d.pk for d in page[:10]]  # type: ignore[union-attr]


def test_gate_one_is_asked_once(
    make_user: Callable[..., User], tenant: Tenant, alice: User, page: list[Document]
) -> None:
    cold = fresh(alice)
    with CaptureQueriesContext(connection) as queries:
        batch = authorize_many(cold, "testapp.approve", page)
    permission_queries = [q for q in queries.captured_queries if "auth_permission" in q["sql"]]
    assert len(permission_queries) == 2  # the user's and the groups' permissions, once
    assert len(queries) == 3  # and the tenant memberships, once
    assert [summary(d) for d in batch] == [
        summary(authorize(alice, "testapp.approve", doc)) for doc in page
    ]

    clerk = make_user("clerk", approver=False, tenants=(tenant,))
    with CaptureQueriesContext(connection) as queries:
        refused = authorize_many(clerk, "testapp.approve", page)
    assert {d.code for d in refused} == {"permission.testapp.approve_document"}
    assert all("memberships" not in q["sql"] for q in queries.captured_queries)


def test_a_predicate_without_the_object_runs_once_per_batch(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    calls: list[Any] = []

    @make_predicate(uses_object=False)
    def open_now(ctx: Any) -> bool:
        calls.append(ctx.obj)
        return True

    action = Action("testapp.open", model=Document, permission=ANYONE)
    action.policy("open", open_now, reason="Open.")
    action.policy("again", open_now | where(state="draft"), reason="Open, again.")
    assert all(authorize_many(alice, action, page))
    assert len(calls) == 1


def test_order_empty_pages_and_bad_input(alice: User, bob: User, make_doc: Any) -> None:
    docs = [make_doc(owner=bob, title=f"{i}") for i in range(3)]
    reversed_docs = list(reversed(docs))
    decisions = authorize_many(alice, "testapp.approve", reversed_docs)
    assert [d.resource.pk for d in decisions if d.resource] == [d.pk for d in reversed_docs]
    assert authorize_many(alice, "testapp.approve", []) == []
    assert authorize_many(alice, "testapp.approve", iter(docs))[0].resource.pk == docs[0].pk  # type: ignore[union-attr]
    with pytest.raises(TypeError, match=r"got a testapp\.Note"):
        authorize_many(alice, "testapp.approve", [docs[0], Note.objects.create()])
    with pytest.raises(TypeError, match="actor is None"):
        authorize_many(None, "testapp.approve", docs)


def test_unsaved_objects_are_decided_like_authorize(
    alice: User, bob: User, tenant: Tenant, make_doc: Any
) -> None:
    saved = make_doc(owner=bob)
    unsaved = Document(tenant=tenant, owner=bob, state="submitted", amount=Decimal("5"))
    elsewhere = Document(tenant=Tenant(name="unsaved"), state="submitted", amount=Decimal("5"))
    batch = authorize_many(alice, "testapp.approve", [saved, unsaved, elsewhere])
    assert [summary(d) for d in batch] == [
        summary(authorize(alice, "testapp.approve", obj)) for obj in (saved, unsaved, elsewhere)
    ]
    assert [d.allowed for d in batch] == [True, True, False]


def test_every_decision_is_offered_to_the_audit(
    alice: User, bob: User, page: list[Document]
) -> None:
    with capture_decisions() as log:
        batch = authorize_many(alice, "testapp.approve", page)
    assert list(log) == batch
    assert len(log.denied) == len([d for d in batch if not d.allowed]) > 0


@pytest.mark.django_db(transaction=True)
async def test_async_twin_agrees(alice: User, bob: User, make_doc: Any) -> None:
    from asgiref.sync import sync_to_async

    docs = [await sync_to_async(make_doc)(owner=owner) for owner in (alice, bob)]
    decisions = await aauthorize_many(alice, "testapp.approve", docs)
    assert [d.allowed for d in decisions] == [False, True]
    assert decisions[0].rule == "four_eyes"


def test_membership_added_between_requests_is_seen_by_a_fresh_actor(
    alice: User, make_user: Callable[..., User], other_tenant: Tenant, make_doc: Any
) -> None:
    bob = make_user("bob")
    doc = make_doc(tenant=other_tenant, owner=bob)
    assert not authorize_many(alice, "testapp.approve", [doc])[0]
    Membership.objects.create(user=alice, tenant=other_tenant)
    assert authorize_many(fresh(alice), "testapp.approve", [doc])[0]


class CountingBackend:
    """Django's model backend, counting the permission questions it is asked."""

    asked: list[str] = []

    def __init__(self) -> None:
        from django.contrib.auth.backends import ModelBackend

        self.model_backend = ModelBackend()

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def has_perm(self, user: Any, perm: str, obj: Any = None) -> bool:
        CountingBackend.asked.append(perm)
        return self.model_backend.has_perm(user, perm, obj)


def test_a_custom_backend_is_asked_gate_one_once_per_page(
    settings: Any, alice: User, page: list[Document]
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["tests.test_authorize_many.CountingBackend"]
    CountingBackend.asked.clear()
    batch = authorize_many(fresh(alice), "testapp.approve", page)
    assert CountingBackend.asked == ["testapp.approve_document"]  # not once per object
    assert [summary(d) for d in batch] == [
        summary(authorize(alice, "testapp.approve", doc)) for doc in page
    ]


def test_a_refused_actor_costs_no_query_for_the_rules(
    fresh_registry: Any, make_user: Callable[..., User], tenant: Tenant, page: list[Document]
) -> None:
    clerk = fresh(make_user("clerk", approver=False, tenants=(tenant,)))
    action = Action("testapp.watched", model=Document, permission="testapp.approve_document")
    action.policy("watched", where(watchers__username=CTX.name), reason="Watched.")
    with CaptureQueriesContext(connection) as queries:
        refused = authorize_many(clerk, action, page, name="dora")
    assert not any(refused)
    assert {d.layer for d in refused} == {Layer.PERMISSION}
    assert not [q for q in queries.captured_queries if "watchers" in q["sql"]]


def test_the_rules_see_the_action_in_a_batch(
    fresh_registry: Any, alice: User, page: list[Document]
) -> None:
    @make_predicate
    def named_action(ctx: Any) -> bool:
        return ctx.action is not None and ctx.action.name == "testapp.named"

    action = Action("testapp.named", model=Document, permission=ANYONE)
    action.policy("names_itself", named_action, reason="Reads the action.")
    assert all(authorize_many(alice, action, page[:3]))


def test_each_decision_of_a_batch_reaches_the_signal_with_the_request(
    alice: User, page: list[Document]
) -> None:
    from django.test import RequestFactory

    from clearance.signals import decision_made

    seen: list[Any] = []

    def receiver(sender: Any, decision: Decision, request: Any = None, **kwargs: Any) -> None:
        seen.append(request)

    request = RequestFactory().get("/documents/")
    decision_made.connect(receiver)
    try:
        authorize_many(alice, "testapp.approve", page[:3], request=request)
    finally:
        decision_made.disconnect(receiver)
    assert seen == [request] * 3
