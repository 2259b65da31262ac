"""``authorized()``: exactly the objects ``authorize()`` allows, in one query, as a plain queryset.

The random search over rule trees lives in ``test_filtering_properties.py``; the tests here pin
down each promise of the issue with a case a user would recognise.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import QuerySet, Sum
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from clearance import (
    ACTOR,
    ANYONE,
    CTX,
    Action,
    BulkInvariantViolation,
    GuardedQuerySet,
    InvariantViolation,
    NotFilterable,
    UnknownAction,
    aauthorized,
    authorize,
    authorized,
    model_invariant,
    predicate,
    where,
)
from clearance.actions import registry
from clearance.rules import Rule
from tests.testapp.models import Document, Membership, Note

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


def test_a_to_many_rule_through_a_nullable_foreign_key_lists_no_row_without_it(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # tenant__memberships__user=ACTOR: a document without a tenant has no member, in the
    # per-object check and in the filter (which compares the tenant column with a subquery: a
    # NULL there must not be read as a match).
    mine, orphan = make_doc(), make_doc(tenant=None)
    child_of_orphan, child_of_mine = make_doc(parent=orphan), make_doc(parent=mine)
    make_doc(tenant=None, parent=None)
    action = declare(where(tenant__memberships__user=ACTOR))
    assert orphan.pk not in assert_agree(alice, action)
    parents = declare(where(parent__tenant__memberships__user=ACTOR), name="testapp.f2")
    assert assert_agree(alice, parents) == {child_of_mine.pk}
    assert child_of_orphan.pk not in assert_agree(alice, parents)


def test_every_part_of_a_conjunction_narrows_the_list(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    # Lookups and to-many groups in one where(), and where()s joined with &: the list is the
    # rows every part holds for, as the per-object check decides.
    wanted = make_doc(owner=alice, state="open")
    make_doc(owner=alice, state="draft")
    make_doc(owner=bob, state="open")
    no_tenant = make_doc(owner=alice, state="open", tenant=None)
    expected = {
        where(state="open") & where(owner=ACTOR): {wanted.pk, no_tenant.pk},
        where(owner=ACTOR) & where(state="open"): {wanted.pk, no_tenant.pk},
        where(state="open") & where(owner=ACTOR) & where(tenant__memberships__user=ACTOR): {
            wanted.pk
        },
        where(state="open", owner=ACTOR, tenant__memberships__user=ACTOR): {wanted.pk},
        where(tenant__memberships__user=ACTOR, owner__tenant_memberships__role="member")
        & where(state="open", owner=ACTOR): {wanted.pk},
    }
    for i, (rule, allowed) in enumerate(expected.items()):
        assert assert_agree(alice, declare(rule, name=f"testapp.conj{i}")) == allowed, str(rule)


def test_placeholders_in_a_list_through_a_to_many_relation(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    watched_by_alice, watched_by_bob, unwatched = make_doc(), make_doc(), make_doc()
    watched_by_alice.watchers.add(alice)
    watched_by_bob.watchers.add(bob)
    rule = where(watchers__in=[ACTOR, CTX.user])
    action = declare(rule)
    negated = declare(~rule, name="testapp.negated")
    for actor in (alice, AnonymousUser()):
        for user in (bob, None):
            assert_agree(actor, action, user=user)
            assert_agree(actor, negated, user=user)
    assert assert_agree(alice, action, user=bob) == {watched_by_alice.pk, watched_by_bob.pk}
    # An anonymous actor and a missing user are no candidates: nothing matches.
    assert assert_agree(AnonymousUser(), action, user=None) == set()
    assert assert_agree(AnonymousUser(), negated, user=None) == {
        watched_by_alice.pk,
        watched_by_bob.pk,
        unwatched.pk,
    }


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


# -- the one-query guarantee -------------------------------------------------------------------


@pytest.fixture
def many_rules(fresh_registry: Any) -> Action:
    """An action with eight rules of every kind: local, foreign key, to-many, CTX, predicates."""
    action = Action("testapp.busy", model=Document, permission="testapp.approve_document")
    action.policy("member", where(tenant__memberships__user=ACTOR), reason="Members.")
    action.policy("not_own", ~where(owner=ACTOR), reason="Four eyes.")
    action.policy("submitted", where(state__in=["submitted", "draft"]), reason="Open.")
    action.policy("in_ctx_tenant", where(tenant=CTX.tenant) | where(priority=None), reason="C.")
    action.policy("not_watched", ~where(watchers=ACTOR), reason="Not watching.")
    action.policy("owner_named", ~where(owner__username="mallory"), reason="Not Mallory's.")
    action.policy("open_hours", predicate(lambda ctx: True, uses_object=False), reason="Open.")
    action.invariant("within_limit", where(amount__lte=10_000), reason="Limit.")
    return action


def test_warm_user_lists_in_exactly_one_query_whatever_the_number_of_rules(
    many_rules: Action,
    alice: User,
    bob: User,
    tenant: Any,
    make_doc: Any,
    django_assert_num_queries: Any,
) -> None:
    for _ in range(5):
        make_doc(owner=bob)
    alice.has_perm("testapp.approve_document")  # warm: the permission cache is filled
    with django_assert_num_queries(1):
        listed = list(authorized(alice, many_rules, Document.objects.all(), tenant=tenant))
    assert len(listed) == 5
    assert_agree(alice, many_rules, tenant=tenant)


def test_cold_user_asks_gate_one_once_then_one_query(
    many_rules: Action,
    alice: User,
    bob: User,
    tenant: Any,
    make_doc: Any,
    django_assert_num_queries: Any,
) -> None:
    make_doc(owner=bob)
    with CaptureQueriesContext(connection) as cold:
        list(authorized(alice, many_rules, Document.objects.all(), tenant=tenant))
    permission_queries = [q for q in cold.captured_queries if "auth_permission" in q["sql"]]
    # Django's ModelBackend loads the user's and the groups' permissions once; then one query.
    assert len(cold) == len(permission_queries) + 1
    with django_assert_num_queries(1):
        list(authorized(alice, many_rules, Document.objects.all(), tenant=tenant))


def test_user_in_several_tenants_gets_no_duplicates(
    fresh_registry: Any, make_user: Any, tenant: Any, other_tenant: Any, make_doc: Any
) -> None:
    alice = make_user("alice", tenants=(tenant, other_tenant))
    Membership.objects.create(user=alice, tenant=tenant, role="admin")  # twice in one tenant
    bob = make_user("bob", tenants=(tenant,))
    docs = [make_doc(owner=bob), make_doc(tenant=other_tenant, owner=bob), make_doc(owner=None)]
    for doc in docs:
        doc.watchers.add(alice, bob)
    action = declare(where(tenant__memberships__user=ACTOR) & where(watchers=ACTOR))

    qs = authorized(alice, action, Document.objects.all())

    rows = list(qs.values_list("pk", flat=True))
    assert sorted(rows) == sorted(doc.pk for doc in docs)
    assert qs.count() == 3
    # Subqueries, not joins: the outer query reads one table and needs no DISTINCT.
    assert not qs.query.distinct
    assert len([alias for alias, n in qs.query.alias_refcount.items() if n]) == 1
    total = qs.aggregate(total=Sum("amount"))["total"]
    assert total == sum(doc.amount for doc in docs)  # not inflated by repeated rows


def test_result_is_a_plain_queryset(alice: User, bob: User, make_doc: Any) -> None:
    docs = [make_doc(owner=bob, title=f"doc {i}", priority=i) for i in range(6)]
    make_doc(owner=alice)  # four_eyes hides it

    qs = authorized(alice, "testapp.approve", Document.objects.all())

    assert isinstance(qs, QuerySet) and qs.model is Document
    assert list(qs.order_by("-priority")[:2]) == [docs[5], docs[4]]
    assert list(qs.filter(priority__lt=2).order_by("pk")) == docs[:2]
    assert qs.exclude(priority=0).count() == 5
    assert set(qs.values_list("title", flat=True)) == {f"doc {i}" for i in range(6)}
    assert qs.filter(pk=docs[3].pk).exists()
    # and it can be narrowed again by another action (composition is intersection)
    readable = authorized(alice, "testapp.read", qs)
    assert readable.count() == 6


def test_the_given_queryset_is_narrowed_not_replaced(alice: User, bob: User, make_doc: Any) -> None:
    draft_like = make_doc(owner=bob, priority=1)
    make_doc(owner=bob, priority=2)
    qs = authorized(alice, "testapp.approve", Document.objects.filter(priority=1))
    assert list(qs) == [draft_like]


def test_queryset_stays_lazy_and_sees_later_changes(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob)
    qs = authorized(alice, "testapp.approve", Document.objects.all())
    Document.objects.filter(pk=doc.pk).update(state="archived")
    assert list(qs) == []


# -- gate 1, predicates without the object, invariants ----------------------------------------


def test_no_capability_gives_none_without_a_query(
    make_user: Any, tenant: Any, bob: User, make_doc: Any, django_assert_num_queries: Any
) -> None:
    make_doc(owner=bob)
    clerk = make_user("clerk", approver=False, tenants=(tenant,))
    qs = authorized(clerk, "testapp.approve", Document.objects.all())
    with django_assert_num_queries(0):
        assert list(qs) == []
    with django_assert_num_queries(0):
        assert list(authorized(AnonymousUser(), "testapp.approve", Document.objects.all())) == []
    sleeper = make_user("sleeper", is_active=False, tenants=(tenant,))
    with django_assert_num_queries(0):
        assert list(authorized(sleeper, "testapp.approve", Document.objects.all())) == []


def test_superuser_passes_gate_one_but_not_the_rules(tenant: Any, bob: User, make_doc: Any) -> None:
    root = User.objects.create_superuser("root", password="x")
    Membership.objects.create(user=root, tenant=tenant)
    theirs, own = make_doc(owner=bob), make_doc(owner=root)
    make_doc(owner=bob, amount=Decimal("50000"))
    assert pks(authorized(root, "testapp.approve", Document.objects.all())) == {theirs.pk}
    assert own.pk not in assert_agree(root, registry.get("testapp.approve"))


def test_predicate_without_the_object_runs_once_per_call(
    fresh_registry: Any, alice: User, make_doc: Any, django_assert_num_queries: Any
) -> None:
    for _ in range(10):
        make_doc()
    calls: list[Any] = []

    @predicate(uses_object=False)
    def open_for_business(ctx: Any) -> bool:
        calls.append(ctx.actor)
        return ctx.extra.get("open", True)

    # Used in two rules, and twice inside one: still once per call.
    action = declare(
        open_for_business,
        where(state="submitted") & open_for_business | ~open_for_business,
    )
    assert len(authorized(alice, action, Document.objects.all())) == 10
    assert calls == [alice]
    with django_assert_num_queries(0):
        assert list(authorized(alice, action, Document.objects.all(), open=False)) == []
    assert len(calls) == 2


def test_a_predicate_that_says_it_ignores_the_object_but_reads_it_fails_closed(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    draft = make_doc(state="draft")
    make_doc(state="submitted")

    @predicate(uses_object=False)
    def drafts_only(ctx: Any) -> bool:
        # Wrongly declared: it reads the object. Filtering calls it once, without an object;
        # it must not widen the list to every row, nor decide per object differently.
        return ctx.obj is None or ctx.obj.state == "draft"

    action = declare(drafts_only)
    assert pks(authorized(alice, action, Document.objects.all())) == set()
    assert allowed_one_by_one(alice, action) == set()
    decision = authorize(alice, action, draft)
    assert decision.error is not None
    assert "drafts_only" in decision.error and "uses_object=False" in decision.error


def test_action_invariants_are_part_of_the_filter(alice: User, bob: User, make_doc: Any) -> None:
    small, _big = make_doc(owner=bob), make_doc(owner=bob, amount=Decimal("10000.01"))
    limit = make_doc(owner=bob, amount=Decimal("10000"))
    assert assert_agree(alice, registry.get("testapp.approve")) == {small.pk, limit.pk}


def test_ctx_values_are_bound_and_a_missing_one_filters_out_everything(
    fresh_registry: Any, alice: User, tenant: Any, other_tenant: Any, make_doc: Any
) -> None:
    here, there = make_doc(), make_doc(tenant=other_tenant)
    action = declare(where(tenant=CTX.tenant))
    assert pks(authorized(alice, action, Document.objects.all(), tenant=tenant)) == {here.pk}
    assert pks(authorized(alice, action, Document.objects.all(), tenant=other_tenant)) == {there.pk}
    assert pks(authorized(alice, action, Document.objects.all(), tenant=None)) == set()
    # Forgetting the value is a programming error: fail closed (and raise in test suites).
    assert pks(authorized(alice, action, Document.objects.all())) == set()
    with override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True}), pytest.raises(LookupError):
        authorized(alice, action, Document.objects.all())


# -- NotFilterable and the Python path ---------------------------------------------------------


def long_title(ctx: Any) -> bool:
    return len(ctx.obj.title) > 5


def test_object_predicate_raises_not_filterable_naming_rule_and_action(
    fresh_registry: Any, alice: User, django_assert_num_queries: Any
) -> None:
    action = declare(where(state="submitted"), where(owner=ACTOR) | predicate(long_title))
    with django_assert_num_queries(0), pytest.raises(NotFilterable) as raised:
        authorized(alice, action, Document.objects.all())
    error = raised.value
    assert (error.action, error.rule) == ("testapp.filtering", "p1")
    assert "'p1'" in str(error) and "testapp.filtering" in str(error)
    assert "long_title" in str(error)
    assert "evaluate_in_python=True" in str(error)


def test_not_filterable_does_not_depend_on_who_asks(
    fresh_registry: Any, make_user: Any, tenant: Any, django_assert_num_queries: Any
) -> None:
    # A rule set that cannot be filtered is a programming error: it surfaces for every actor,
    # also one whom gate 1 would refuse, and before gate 1 asks the database.
    action = declare(predicate(long_title), permission="testapp.approve_document")
    clerk = make_user("clerk", approver=False, tenants=(tenant,))
    for actor in (clerk, AnonymousUser()):
        with django_assert_num_queries(0), pytest.raises(NotFilterable, match="'p0'"):
            authorized(actor, action, Document.objects.all())


def test_evaluate_in_python_agrees_with_authorize(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    docs = [
        make_doc(owner=owner, title=title)
        for owner in (alice, bob, None)
        for title in ("short", "a long title")
    ]
    docs[0].watchers.add(alice)
    action = declare(
        where(tenant__memberships__user=ACTOR),
        where(owner=ACTOR) | predicate(long_title) | where(watchers=ACTOR),
    )
    qs = authorized(alice, action, Document.objects.all(), evaluate_in_python=True)
    assert pks(qs) == allowed_one_by_one(alice, action)
    assert pks(qs) == {docs[0].pk, docs[1].pk, docs[3].pk, docs[5].pk}
    assert qs.filter(owner=None).count() == 1  # still a queryset


def test_evaluate_in_python_only_reads_rows_the_sql_rules_let_through(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    seen: list[int] = []

    def spy(ctx: Any) -> bool:
        seen.append(ctx.obj.pk)
        return True

    submitted = [make_doc(state="submitted") for _ in range(3)]
    for _ in range(7):
        make_doc(state="draft")
    action = declare(where(state="submitted"), predicate(spy))
    qs = authorized(alice, action, Document.objects.all(), evaluate_in_python=True)
    assert sorted(seen) == sorted(doc.pk for doc in submitted)
    assert pks(qs) == {doc.pk for doc in submitted}


def test_evaluate_in_python_keeps_the_sql_rules_live(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    doc = make_doc(title="a long title")
    action = declare(where(state="submitted"), predicate(long_title))
    qs = authorized(alice, action, Document.objects.all(), evaluate_in_python=True)
    # The queryset is evaluated later (a template, a paginator): the SQL rules still apply.
    Document.objects.filter(pk=doc.pk).update(state="archived")
    assert list(qs) == []


def test_evaluate_in_python_answers_to_many_rules_once_per_chunk(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    docs = [make_doc(title="short") for _ in range(25)]
    for doc in docs[::2]:
        doc.watchers.add(bob)
    # Not tied to the actor, so nothing is cached on it: each chunk asks once.
    action = declare(where(watchers__username=CTX.name) | predicate(long_title))
    with CaptureQueriesContext(connection) as queries:
        qs = authorized(
            alice,
            action,
            Document.objects.all(),
            evaluate_in_python=True,
            chunk_size=10,
            name="bob",
        )
    watcher_queries = [q for q in queries.captured_queries if "watchers" in q["sql"]]
    assert len(watcher_queries) == 3  # 25 rows in chunks of 10
    assert pks(qs) == {doc.pk for doc in docs[::2]}
    assert pks(qs) == allowed_one_by_one(alice, action, name="bob")


def test_evaluate_in_python_answers_a_to_many_lookup_after_a_predicate_once_per_chunk(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    docs = [make_doc(title="short") for _ in range(25)]
    for doc in docs[::2]:
        doc.watchers.add(bob)
    # The predicate comes first in the rule: the to-many lookup after it is still batched.
    action = declare(predicate(long_title) | where(watchers__username=CTX.name))
    with CaptureQueriesContext(connection) as queries:
        qs = authorized(
            alice,
            action,
            Document.objects.all(),
            evaluate_in_python=True,
            chunk_size=10,
            name="bob",
        )
    watcher_queries = [q for q in queries.captured_queries if "watchers" in q["sql"]]
    assert len(watcher_queries) == 3  # 25 rows in chunks of 10, not one per row
    assert pks(qs) == {doc.pk for doc in docs[::2]}


def test_evaluate_in_python_does_not_fetch_again_what_sql_already_filtered(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    docs = [make_doc(title="a long title") for _ in range(5)]
    for doc in docs[:3]:
        doc.watchers.add(bob)
    # The to-many rule becomes SQL; only the predicate is checked row by row.
    action = declare(where(watchers__username=CTX.name), predicate(long_title))
    with CaptureQueriesContext(connection) as queries:
        qs = authorized(alice, action, Document.objects.all(), evaluate_in_python=True, name="bob")
    watcher_queries = [q for q in queries.captured_queries if "watchers" in q["sql"]]
    assert len(watcher_queries) == 1  # the filtering query itself, no prefetch of the rule
    assert pks(qs) == {doc.pk for doc in docs[:3]}


def test_a_rule_that_raises_while_filtering_gives_nothing(
    fresh_registry: Any, alice: User, make_doc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_doc()

    @predicate(uses_object=False)
    def broken(ctx: Any) -> bool:
        raise RuntimeError("the feature-flag service is down")

    action = declare(broken)
    with caplog.at_level("ERROR", logger="clearance"):
        assert list(authorized(alice, action, Document.objects.all())) == []
    # The log names the rule and the action, for whoever is paged.
    [logged] = [r for r in caplog.records if r.name.startswith("clearance")]
    code = action.rules[0].code
    assert logged.getMessage() == f"Rule {code} of action testapp.filtering raised while filtering"
    assert logged.exc_info is not None and "feature-flag" in str(logged.exc_info[1])
    assert allowed_one_by_one(alice, action) == set()


# -- bad input -----------------------------------------------------------------------------


def test_bad_input_is_a_precise_error(alice: User) -> None:
    with pytest.raises(TypeError, match="needs a QuerySet, got list"):
        authorized(alice, "testapp.approve", [Document()])  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"acts on testapp\.Document; the queryset is of testapp\.Note"
    ):
        authorized(alice, "testapp.approve", Note.objects.all())  # type: ignore[arg-type]
    with pytest.raises(UnknownAction):
        authorized(alice, "testapp.aprove", Document.objects.all())
    with pytest.raises(TypeError, match=r"^The actor is None\. Pass request\.user"):
        authorized(None, "testapp.approve", Document.objects.all())
    clerk = User.objects.create_user("clerk")  # refused by gate 1, and still told
    for actor in (alice, clerk, AnonymousUser()):
        with pytest.raises(TypeError, match=r"^authorized\(\) needs a queryset that is not sliced"):
            authorized(actor, "testapp.approve", Document.objects.all()[:10])
        with pytest.raises(TypeError, match=r"cannot filter a union\(\)"):
            authorized(
                actor, "testapp.approve", Document.objects.all().union(Document.objects.all())
            )


def test_an_action_on_no_model_filters_no_queryset(fresh_registry: Any, alice: User) -> None:
    action = Action("testapp.export_all", permission=ANYONE)
    with pytest.raises(TypeError, match=r"acts on no model; the queryset is of testapp\.Document"):
        authorized(alice, action, Document.objects.all())


def test_a_rule_decided_once_for_a_queryset_sees_the_action(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    @predicate(uses_object=False)
    def named_action(ctx: Any) -> bool:
        return ctx.action is not None and ctx.action.name == "testapp.filtering"

    doc = make_doc()
    action = declare(named_action)
    assert pks(authorized(alice, action, Document.objects.all())) == {doc.pk}


def test_a_custom_backend_is_asked_gate_one_once_per_queryset(
    settings: Any, alice: User, make_doc: Any
) -> None:
    from tests.test_authorize_many import CountingBackend

    settings.AUTHENTICATION_BACKENDS = ["tests.test_authorize_many.CountingBackend"]
    make_doc()
    CountingBackend.asked.clear()
    qs = authorized(User.objects.get(pk=alice.pk), "testapp.approve", Document.objects.all())
    assert CountingBackend.asked == ["testapp.approve_document"]
    assert pks(qs) == allowed_one_by_one(alice, "testapp.approve")  # type: ignore[arg-type]


# -- async -------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_aauthorized_agrees_and_stays_lazy(alice: User, bob: User, make_doc: Any) -> None:
    from asgiref.sync import sync_to_async

    theirs = await sync_to_async(make_doc)(owner=bob)
    await sync_to_async(make_doc)(owner=alice)
    qs = await aauthorized(alice, "testapp.approve", Document.objects.all())
    assert [doc async for doc in qs] == [theirs]
    assert await qs.acount() == 1


# -- NULL at every hop of a nullable chain: None, isnull both ways, under ~ and | ----------------

_NULL_CHAIN_RULES = [
    where(owner__last_login=None),
    where(owner__last_login__isnull=True),
    where(owner__last_login__isnull=False),
    where(parent__owner__last_login=None),
    where(parent__owner__last_login__isnull=True),
    where(parent__owner__last_login__isnull=False),
    where(parent__owner=None),
    where(parent__owner__isnull=False),
    where(parent__owner__username="alice"),
    where(parent__owner__username__iexact="ALICE"),
]


@pytest.mark.parametrize(
    "rule",
    [
        variant
        for base in _NULL_CHAIN_RULES
        for variant in (base, ~base, base | where(state="never"), ~(base | where(state="never")))
    ],
    ids=str,
)
def test_none_and_isnull_through_a_nullable_chain_agree_at_every_hop(
    fresh_registry: Any, alice: User, make_doc: Any, rule: Rule
) -> None:
    # Django's own filter(owner__last_login=None) keeps a document without an owner (a LEFT
    # JOIN meets NULL), and so does the per-object check; the compiled filter must too.
    alice.last_login = None
    alice.save()
    bob = User.objects.create_user("bob")
    bob.last_login = bob.date_joined
    bob.save()
    root_alice, root_bob, root_nobody = (
        make_doc(owner=alice),
        make_doc(owner=bob),
        make_doc(owner=None),
    )
    for parent in (None, root_alice, root_bob, root_nobody):
        make_doc(parent=parent, owner=None)
        make_doc(parent=parent, owner=bob)
    assert_agree(alice, declare(rule))


def test_guarded_bulk_update_sees_null_at_the_first_hop(fresh_registry: Any, make_doc: Any) -> None:
    doc = make_doc(title="orphan", owner=None)
    model_invariant(
        Document, "owner_signed_in", ~where(owner__last_login=None), reason="Owners signed in."
    )
    # The instance guard refuses the document without an owner (its owner never signed in,
    # as Django's filter(owner__last_login=None) says) ...
    with pytest.raises(InvariantViolation):
        doc.save()
    # ... and the bulk guard, which shares the compiled filter, refuses it too.
    with pytest.raises(BulkInvariantViolation):
        GuardedQuerySet(model=Document).filter(pk=doc.pk).update(title="still orphan")


# -- CTX.obj: a rule that reads the object through the context is never filtered wider ---------


def test_ctx_obj_in_a_rule_is_not_filterable_and_agrees_in_python(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    same, other, nobody = (
        make_doc(owner=alice, title="alice"),
        make_doc(owner=bob, title="alice"),
        make_doc(owner=None, title="alice"),
    )
    action = declare(~where(title=CTX.obj.owner.username))
    with pytest.raises(NotFilterable) as info:
        authorized(alice, action, Document.objects.all())
    assert info.value.rule == "p0" and "CTX.obj" in str(info.value)
    got = pks(authorized(alice, action, Document.objects.all(), evaluate_in_python=True))
    assert got == allowed_one_by_one(alice, action) == {other.pk, nobody.pk}
    assert same.pk not in got


def test_ctx_obj_in_a_model_invariant_is_checked_per_row_by_the_bulk_guard(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    doc = make_doc(owner=alice, title="memo")
    model_invariant(
        Document,
        "title_is_not_the_owner",
        ~where(title=CTX.obj.owner.username),
        reason="A title never repeats its owner's name.",
    )
    with pytest.raises(BulkInvariantViolation):
        GuardedQuerySet(model=Document).filter(pk=doc.pk).update(title="alice")
    doc.refresh_from_db()
    assert doc.title == "memo"
