"""Rules on one object: lookups, placeholders, the algebra and its readable text."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import FieldError
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from clearance import ACTOR, ANYONE, CTX, Action, authorize, predicate, where
from clearance.rules import Context, Rule, RuleNotFilterable
from tests.testapp.models import Document, Membership, Tenant

# Case-insensitive text lookups ask the database once how it folds case (PostgreSQL and
# SQLite differ), so every test here may touch it.
pytestmark = pytest.mark.django_db


def ctx_for(obj: Any, actor: Any = None, **extra: Any) -> Context:
    return Context(actor, None, obj, now=timezone.now(), extra=extra)


def holds(rule: Rule, obj: Any, actor: Any = None, **extra: Any) -> bool:
    return rule.evaluate(ctx_for(obj, actor, **extra))


# -- lookups on local fields and foreign-key ids --------------------------------------------


def test_lookups_on_local_fields() -> None:
    doc = Document(title="Quarterly Report", state="submitted", amount=Decimal("250.00"))
    assert holds(where(state="submitted"), doc)
    assert not holds(where(state="draft"), doc)
    assert holds(where(state__in=["draft", "submitted"]), doc)
    assert not holds(where(state__in=[]), doc)
    assert holds(where(amount__gt=100), doc) and not holds(where(amount__gt=250), doc)
    assert holds(where(amount__gte=250), doc) and holds(where(amount__lte=250), doc)
    assert holds(where(amount__lt="250.01"), doc)  # converted as the database would
    assert holds(where(amount__range=(200, 300)), doc)
    assert holds(where(title__iexact="quarterly report"), doc)
    assert holds(where(title__icontains="REPORT"), doc)
    assert holds(where(title__startswith="Quarterly"), doc)
    assert holds(where(title__istartswith="quarterly"), doc)
    assert holds(where(title__endswith="Report"), doc)
    assert holds(where(priority__isnull=True), doc)
    assert not holds(where(priority__isnull=False), doc)
    assert holds(where(priority=None), doc)


def test_null_fields_never_match_a_comparison() -> None:
    doc = Document(priority=None)
    for rule in (
        where(priority=1),
        where(priority__gt=0),
        where(priority__lt=10),
        where(priority__in=[1, 2]),
    ):
        assert not holds(rule, doc)
        assert holds(~rule, doc)  # as SQL's NOT (col op x AND col IS NOT NULL)


@pytest.mark.django_db
def test_foreign_key_compares_ids_without_fetching(django_assert_num_queries: Any) -> None:
    owner = User(pk=7, username="owner")
    doc = Document(owner_id=7, tenant_id=3)
    with django_assert_num_queries(0):
        assert holds(where(owner=ACTOR), doc, owner)
        assert holds(where(owner__pk=ACTOR.pk), doc, owner)
        assert holds(where(owner_id=7), doc)
        assert holds(where(owner__in=[User(pk=1), User(pk=7)]), doc)
        assert holds(where(tenant=3), doc)
        assert not holds(where(owner=ACTOR), doc, User(pk=8))
        assert holds(~where(owner=ACTOR), Document(owner_id=None), owner)


def test_placeholder_resolving_to_none_matches_nothing() -> None:
    unowned = Document(owner_id=None)
    assert not holds(where(owner=ACTOR), unowned, AnonymousUser())
    assert not holds(where(owner=CTX.who), unowned, None, who=None)
    assert holds(where(owner=None), unowned)  # a literal None is IS NULL


def test_ctx_values_and_attribute_paths() -> None:
    doc = Document(state="submitted", amount=Decimal("10"))
    assert holds(where(state=CTX.state), doc, state="submitted")
    assert not holds(where(state=CTX.state), doc, state="draft")
    actor = User(pk=1, username="x", first_name="submitted")
    assert holds(where(state=ACTOR.first_name), doc, actor)
    with pytest.raises(LookupError, match=r"CTX\.limit has no value"):
        holds(where(amount__lte=CTX.limit), doc)
    # The message names what was given instead.
    with pytest.raises(LookupError, match=r"\(given: level, state\)$"):
        holds(where(amount__lte=CTX.limit), doc, state="x", level=1)
    with pytest.raises(LookupError, match=r"\(given: nothing\)$"):
        holds(where(amount__lte=CTX.limit), doc)
    when = timezone.now() + dt.timedelta(days=1)
    assert holds(where(state="submitted") & predicate(lambda c: c.now < when), doc)


def test_unknown_field_is_a_field_error() -> None:
    with pytest.raises(FieldError, match="has no field 'nope'"):
        holds(where(nope=1), Document())


def test_none_with_a_comparison_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match="None only works with exact or iexact"):
        where(amount__gt=None)
    with pytest.raises(ValueError, match="None only works with exact or iexact"):
        where(owner__username__gt=None)  # the lookup is the last part, however long the path
    # Both of those take None (IS NULL), and match the same rows.
    assert holds(where(owner__iexact=None), Document()) and holds(where(owner=None), Document())


def test_wrong_model_instance_as_value_is_refused() -> None:
    with pytest.raises(TypeError, match=r"expected a auth\.User instance"):
        holds(where(owner=CTX.who), Document(owner_id=1), None, who=Tenant(pk=1))


@pytest.mark.django_db
def test_to_many_costs_one_query_then_none_for_the_same_actor(
    django_assert_num_queries: Any,
) -> None:
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    rule = where(tenant__memberships__user=ACTOR)
    mine, theirs = Document(tenant=acme), Document(tenant=globex)
    with django_assert_num_queries(1):
        assert holds(rule, mine, user)
        assert not holds(rule, theirs, user)
    fresh = User.objects.get(pk=user.pk)  # a new request loads a new user object
    Membership.objects.filter(user=user).delete()
    with django_assert_num_queries(1):
        assert not holds(rule, mine, fresh)  # a revoked membership is seen at once


@pytest.mark.django_db
def test_to_many_cache_works_through_a_lazy_request_user(
    django_assert_num_queries: Any,
) -> None:
    from django.utils.functional import SimpleLazyObject

    from clearance.rules import clear_actor_cache

    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    lazy = SimpleLazyObject(lambda: User.objects.get(pk=user.pk))  # as request.user is
    rule = where(tenant__memberships__user=ACTOR)
    holds(rule, Document(tenant=acme), lazy)
    with django_assert_num_queries(0):
        for _ in range(5):
            assert holds(rule, Document(tenant=acme), lazy)
    clear_actor_cache(lazy)
    with django_assert_num_queries(1):
        assert holds(rule, Document(tenant=acme), lazy)


def test_the_actor_cache_keeps_apart_the_answers_for_different_context_lists() -> None:
    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme, role="viewer")
    rule = where(tenant__memberships__user=ACTOR, tenant__memberships__role__in=CTX.roles)
    doc = Document(tenant=acme)
    # The same actor object throughout: its cache serves each list its own answer.
    assert holds(rule, doc, user, roles=["viewer"])
    assert not holds(rule, doc, user, roles=["admin"])
    assert holds(rule, doc, user, roles=["admin", "viewer"])
    assert not holds(rule, doc, user, roles=["admin", "owner"])
    # Any iterable will do, hashable or not (the keys of a dict of roles).
    assert holds(rule, doc, user, roles={"viewer": "can read"}.keys())
    assert not holds(rule, doc, user, roles={"admin": "can do all"}.keys())


@pytest.mark.filterwarnings("ignore::clearance.testing.NonBoolPredicateWarning")
def test_a_predicate_result_that_is_not_a_bool_is_reported_with_what_was_returned(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from clearance.testing import capture_non_bool_results

    action = Action("testapp.chatty_rule", model=Document, permission=ANYONE)
    action.policy("p", predicate(lambda ctx: "yes", name="chatty"), reason="chatty")
    with capture_non_bool_results() as seen:
        assert not authorize(alice, action, make_doc()).allowed
    assert [(r.predicate, r.returned) for r in seen] == [("chatty", "'yes' (a str)")]


def test_clearing_the_cache_of_an_actor_with_nothing_cached_is_harmless() -> None:
    from clearance.rules import clear_actor_cache

    user = User.objects.create_user("never-decided")
    clear_actor_cache(user)  # nothing was cached on it yet
    clear_actor_cache(AnonymousUser())
    assert holds(where(owner=ACTOR), Document(owner=user), user)


def test_a_predicate_called_directly_answers_for_the_context_it_is_given() -> None:
    @predicate
    def is_draft(ctx: Context) -> bool:
        return bool(ctx.obj.state == "draft")

    assert is_draft(ctx_for(Document(state="draft"))) is True
    assert is_draft(ctx_for(Document(state="paid"))) is False


def test_a_predicate_keeps_the_name_and_docstring_of_its_function() -> None:
    from clearance.rules import Predicate

    def is_draft(ctx: Context) -> bool:
        """Only drafts."""
        return bool(ctx.obj.state == "draft")

    declared = predicate(is_draft)
    assert declared.name == "is_draft" and declared.__doc__ == "Only drafts."
    assert declared.__wrapped__ is is_draft  # type: ignore[attr-defined]
    # Built directly, a predicate reads the object and does not follow relations, as declared.
    direct = Predicate(is_draft)
    assert direct(ctx_for(Document(state="draft"))) is True
    assert not direct.filterable
    with pytest.raises(TypeError, match="predicate 'is_draft' reads the object"):
        direct.through("parent")

    class OwnsIt:  # a callable object, no __name__: named after its class
        def __call__(self, ctx: Context) -> bool:
            return bool(ctx.obj.owner_id == ctx.actor.pk)

    assert predicate(OwnsIt()).name == "OwnsIt"


def test_predicate_with_options_decorates_as_declared() -> None:
    @predicate(name="draft_only")
    def is_draft(ctx: Context) -> bool:
        return bool(ctx.obj.state == "draft")

    assert is_draft.name == "draft_only" and str(is_draft) == "draft_only()"
    assert is_draft(ctx_for(Document(state="draft"))) is True  # it reads the object
    assert not is_draft.filterable

    @predicate(reach=True)
    def parent_is_draft(ctx: Context) -> bool:
        return bool(ctx.obj.state == "draft")

    child = Document(state="paid", parent=Document(state="draft"))
    assert holds(parent_is_draft.through("parent"), child)


@pytest.mark.django_db
def test_to_many_lookups_in_one_where_match_the_same_row() -> None:
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme, role="viewer")
    Membership.objects.create(user=User.objects.create_user("boss"), tenant=acme, role="admin")
    Membership.objects.create(user=user, tenant=globex, role="admin")
    same_row = where(tenant__memberships__user=ACTOR, tenant__memberships__role="admin")
    assert not holds(same_row, Document(tenant=acme), user)
    assert holds(same_row, Document(tenant=globex), user)


@pytest.mark.django_db
def test_to_many_on_the_object_itself() -> None:
    user = User.objects.create_user("watcher")
    watched = Document.objects.create()
    watched.watchers.add(user)
    assert holds(where(watchers=ACTOR), watched, user)
    assert not holds(where(watchers=ACTOR), Document.objects.create(), user)
    assert not holds(where(watchers=ACTOR), Document(), user)  # unsaved: nobody watches it


@pytest.mark.django_db
def test_forward_relation_to_another_field() -> None:
    acme = Tenant.objects.create(name="Acme")
    assert holds(where(tenant__name="Acme"), Document(tenant=acme))
    assert not holds(where(tenant__name="Acme"), Document(tenant=None))
    assert holds(where(tenant__name__isnull=True), Document(tenant=None))


@pytest.mark.django_db
def test_transforms_are_asked_of_the_database() -> None:
    doc = Document.objects.create(title="x")
    rule = where(title__regex=r"^x$")
    assert holds(rule, doc) and not holds(rule, Document.objects.create(title="y"))
    with pytest.raises(ValueError, match="not saved"):
        holds(rule, Document(title="x"))


def test_compiling_a_rule_that_reads_the_object_says_which_and_why() -> None:
    # to_q() on a rule with no SQL form: the error carries the rule and the reason.
    ctx = ctx_for(None)
    reads_object = predicate(lambda ctx: ctx.obj is not None, name="has_object")
    same_owner = where(owner=CTX.obj.owner)
    for rule, reason in (
        (reads_object, "predicate 'has_object' reads the object and has no SQL form"),
        (same_owner, "where(owner=CTX.obj.owner) reads the object through CTX.obj, and a filter"),
    ):
        with pytest.raises(RuleNotFilterable) as raised:
            (where(state="draft") & rule).to_q(ctx, Document)
        assert str(raised.value).startswith(reason)
        assert raised.value.detail == str(raised.value)
        assert raised.value.rule is rule
    # CTX.obj inside a list reads the object too.
    with pytest.raises(RuleNotFilterable, match=r"reads the object through CTX\.obj"):
        where(state__in=["draft", CTX.obj.state]).to_q(ctx, Document)


# -- the algebra ----------------------------------------------------------------------------

STATES = ["draft", "submitted", "approved", "paid"]

documents = st.builds(
    Document,
    title=st.text(alphabet="abAB", max_size=3),
    state=st.sampled_from(STATES),
    amount=st.decimals(min_value=-5, max_value=5, places=0),
    priority=st.none() | st.integers(min_value=-3, max_value=3),
    owner_id=st.none() | st.integers(min_value=1, max_value=3),
    tenant_id=st.none() | st.integers(min_value=1, max_value=3),
)

leaves = st.one_of(
    st.sampled_from(STATES).map(lambda s: where(state=s)),
    st.lists(st.sampled_from(STATES), max_size=3).map(lambda s: where(state__in=s)),
    st.integers(-4, 4).map(lambda n: where(amount__gt=n)),
    st.integers(-4, 4).map(lambda n: where(amount__lte=n)),
    st.integers(-3, 3).map(lambda n: where(priority=n)),
    st.integers(-3, 3).map(lambda n: where(priority__gte=n)),
    st.booleans().map(lambda b: where(priority__isnull=b)),
    st.just(where(owner=ACTOR)),
    st.just(where(owner=None)),
    st.integers(1, 3).map(lambda n: where(tenant=n)),
    st.sampled_from(["a", "b", "A", ""]).map(lambda s: where(title__icontains=s)),
    st.sampled_from(["a", "B"]).map(lambda s: where(title__startswith=s)),
)

rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.tuples(children, children).map(lambda p: p[0] & p[1]),
        st.tuples(children, children).map(lambda p: p[0] | p[1]),
        children.map(lambda r: ~r),
    ),
    max_leaves=8,
)

actors = st.integers(1, 3).map(lambda pk: User(pk=pk, username=f"u{pk}"))


@settings(max_examples=300, deadline=None)
@given(a=rules, b=rules, obj=documents, actor=actors)
def test_de_morgan(a: Rule, b: Rule, obj: Document, actor: User) -> None:
    assert holds(~(a & b), obj, actor) == holds(~a | ~b, obj, actor)
    assert holds(~(a | b), obj, actor) == holds(~a & ~b, obj, actor)


@settings(max_examples=300, deadline=None)
@given(a=rules, obj=documents, actor=actors)
def test_double_negation_and_excluded_middle(a: Rule, obj: Document, actor: User) -> None:
    assert holds(~~a, obj, actor) == holds(a, obj, actor)
    assert holds(a | ~a, obj, actor) is True
    assert holds(a & ~a, obj, actor) is False


@settings(max_examples=300, deadline=None)
@given(a=rules, b=rules, c=rules, obj=documents, actor=actors)
def test_and_or_are_associative_and_distribute(
    a: Rule, b: Rule, c: Rule, obj: Document, actor: User
) -> None:
    assert holds((a & b) & c, obj, actor) == holds(a & (b & c), obj, actor)
    assert holds(a & (b | c), obj, actor) == holds((a & b) | (a & c), obj, actor)


@settings(max_examples=300, deadline=None)
@given(
    state=st.sampled_from(STATES),
    amount=st.integers(-4, 4),
    priority=st.none() | st.integers(-3, 3),
    obj=documents,
    actor=actors,
)
def test_where_with_several_lookups_is_their_conjunction(
    state: str, amount: int, priority: int | None, obj: Document, actor: User
) -> None:
    combined = where(state=state, amount__lte=amount, priority=priority, owner=ACTOR)
    split = where(state=state) & where(amount__lte=amount) & where(priority=priority)
    split = split & where(owner=ACTOR)
    assert holds(combined, obj, actor) == holds(split, obj, actor)


def _rebuild(rule: Rule) -> Rule:
    """A structurally identical rule built from scratch."""
    from clearance.rules import All, Any_, Not, Where

    if isinstance(rule, Where):
        return Where(**dict(rule.lookups))
    if isinstance(rule, Not):
        return ~_rebuild(rule.rule)
    if isinstance(rule, All):
        return All(*(_rebuild(r) for r in rule.rules))
    if isinstance(rule, Any_):
        return Any_(*(_rebuild(r) for r in rule.rules))
    return rule


@settings(max_examples=200, deadline=None)
@given(a=rules)
def test_str_is_deterministic(a: Rule) -> None:
    assert str(a) == str(a) == str(_rebuild(a))


def test_str_shows_the_structure() -> None:
    a, b, c = where(state="paid"), where(amount__gt=0), where(owner=ACTOR)
    assert str(a) == "where(state='paid')"
    assert str(~a | b) == "~where(state='paid') | where(amount__gt=0)"
    assert str(~(a | b) & c) == "~(where(state='paid') | where(amount__gt=0)) & where(owner=ACTOR)"
    assert str((a | b) & c) == "(where(state='paid') | where(amount__gt=0)) & where(owner=ACTOR)"
    assert str(a & (b & c)) == str((a & b) & c)
    assert str(where(state__in={"b", "a"})) == "where(state__in={'a', 'b'})"
    assert str(where(tenant__memberships__user=ACTOR.pk)) == (
        "where(tenant__memberships__user=ACTOR.pk)"
    )
    assert str(where(due__lte=CTX.now)) == "where(due__lte=CTX.now)"
    assert str(where(state__in=["b", "a"])) == "where(state__in=['b', 'a'])"
    assert str(where(state__in=("b",))) == "where(state__in=('b',))"
    assert str(where(state__in=("b", "a"))) == "where(state__in=('b', 'a'))"

    @predicate(uses_object=False)
    def business_hours(ctx: Any) -> bool:
        return True

    assert str(a & business_hours) == "where(state='paid') & business_hours()"


def test_predicates_that_do_not_read_the_object_keep_their_own_answers(
    fresh_registry: Any, alice: User
) -> None:
    # Each is asked once per decision and its answer kept for that decision: two of them in
    # one rule must not share the answer.
    @predicate(uses_object=False)
    def open_today(ctx: Any) -> bool:
        return True

    @predicate(uses_object=False)
    def not_frozen(ctx: Any) -> bool:
        return False

    action = Action("testapp.two_flags", model=Document, permission=ANYONE)
    action.policy("both", open_today & not_frozen, reason="Open and not frozen.")
    doc = Document.objects.create(title="d")
    assert not authorize(alice, action, doc).allowed
    assert not holds(open_today & not_frozen, doc, alice)
    assert holds(open_today | not_frozen, doc, alice)
    assert holds(~not_frozen & open_today, doc, alice)
    # A composite reads the object when one of its parts does; nested ones are flattened.
    mine = where(owner=ACTOR)
    assert (open_today & not_frozen).uses_object is False
    assert (open_today | not_frozen).uses_object is False
    assert (open_today & mine).uses_object is True
    assert (open_today | mine).uses_object is True
    assert (open_today | (not_frozen | mine)).rules == (open_today, not_frozen, mine)
    assert (~open_today).uses_object is False
    assert (~mine).uses_object is True
    assert (open_today & (not_frozen & mine)).rules == (open_today, not_frozen, mine)


@pytest.mark.parametrize(
    ("use_tz", "now", "error", "message"),
    [
        (True, "2025-06-01", TypeError, "now= must be a datetime, got str: '2025-06-01'"),
        (
            True,
            dt.datetime(2025, 6, 1, 12, 30),
            ValueError,
            "now= must be an aware datetime (USE_TZ is True), "
            "got datetime.datetime(2025, 6, 1, 12, 30)",
        ),
        (
            False,
            dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone.utc),
            ValueError,
            "now= must be a naive datetime (USE_TZ is False), "
            "got datetime.datetime(2025, 6, 1, 12, 30, tzinfo=datetime.timezone.utc)",
        ),
    ],
)
def test_a_now_of_the_wrong_kind_is_refused_saying_what_is_expected(
    fresh_registry: Any,
    alice: User,
    make_doc: Any,
    use_tz: bool,
    now: Any,
    error: type[Exception],
    message: str,
) -> None:
    action = Action("testapp.dated_rules", model=Document, permission=ANYONE)
    action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    doc = make_doc()
    with override_settings(USE_TZ=use_tz), pytest.raises(error) as raised:
        authorize(alice, action, doc, now=now)
    assert str(raised.value) == message


def test_a_now_in_a_named_time_zone_is_an_aware_now(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # A zoneinfo time zone only knows its offset for a given instant.
    action = Action("testapp.zoned_rules", model=Document, permission=ANYONE)
    action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    paris = dt.datetime(2025, 6, 1, 14, 30, tzinfo=ZoneInfo("Europe/Paris"))
    decision = authorize(alice, action, make_doc(), now=paris)
    assert decision.allowed and decision.at == paris


def test_predicate_receives_the_context() -> None:
    seen: list[Context] = []

    @predicate
    def look(ctx: Context) -> bool:
        seen.append(ctx)
        return ctx.extra.get("ok", False) is True

    doc = Document(state="draft")
    assert holds(look, doc, None, ok=True) and not holds(look, doc, None)
    assert seen[0].obj is doc and isinstance(seen[0].now, dt.datetime)


@pytest.mark.django_db
def test_an_attribute_not_converted_yet_is_compared_as_it_will_be_stored(make_doc: Any) -> None:
    # A view that sets doc.amount = request.POST["amount"] decides on "50000", a string: the
    # rule compares it as the decimal the database will store, and denies for the real reason
    # (it does not raise, which would make the denial "could not be decided").
    doc = make_doc()
    for raw, holds in (("50000", False), ("5", True), ("10000.00", True)):
        doc.amount = raw
        for rule in (where(amount__lte=10_000), where(amount__range=(0, 10_000))):
            ctx = Context(None, None, doc, now=timezone.now())
            assert rule.evaluate(ctx) is holds, (raw, str(rule))


def test_a_conjunction_inside_a_disjunction_is_shown_without_parentheses() -> None:
    a, b, c = where(state="paid"), where(amount__gt=0), where(owner=ACTOR)
    # & binds tighter than |, as in Python.
    assert str(a & b | c) == "where(state='paid') & where(amount__gt=0) | where(owner=ACTOR)"
    assert str(c | a & b) == "where(owner=ACTOR) | where(state='paid') & where(amount__gt=0)"


def test_a_to_many_group_of_several_lookups_is_asked_once_per_actor(
    django_assert_num_queries: Any,
) -> None:
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme, role="admin")
    Membership.objects.create(user=user, tenant=globex, role="viewer")
    rule = where(tenant__memberships__user=ACTOR, tenant__memberships__role="admin")
    with django_assert_num_queries(1):
        assert holds(rule, Document(tenant=acme), user)
        assert not holds(rule, Document(tenant=globex), user)
    with django_assert_num_queries(0):
        assert holds(rule, Document(tenant=acme), user)


def test_a_page_under_a_to_many_group_tied_to_the_actor_is_one_query_then_none(
    fresh_registry: Any, django_assert_num_queries: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from clearance import authorize_many

    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme, role="admin")
    Membership.objects.create(user=user, tenant=globex, role="viewer")
    action = Action("testapp.admin_of_tenant", model=Document, permission=ANYONE)
    rule = where(tenant__memberships__user=ACTOR, tenant__memberships__role="admin")
    action.policy("admin", rule, reason="admin of the tenant")
    docs = [Document(pk=i, tenant=t) for i, t in enumerate([acme, globex, acme, globex], 1)]
    caplog.set_level(logging.DEBUG, logger="clearance")
    with django_assert_num_queries(1):
        decisions = authorize_many(user, action, docs)
    assert [d.allowed for d in decisions] == [True, False, True, False]
    # Nothing went wrong on the way (denials are audited, nothing else is reported).
    assert [r for r in caplog.records if r.name != "clearance.audit"] == []
    # The answer now sits on the actor until it is cleared: the next page costs nothing.
    with django_assert_num_queries(0):
        assert [d.allowed for d in authorize_many(user, action, docs)] == [
            True,
            False,
            True,
            False,
        ]


def test_a_warm_to_many_rule_through_a_parent_reads_the_parents_tenant(
    fresh_registry: Any,
) -> None:
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    action = Action("testapp.parent_in_my_tenant", model=Document, permission=ANYONE)
    action.policy("mine", where(parent__tenant__memberships__user=ACTOR), reason="my tenant's")
    mine, theirs = Document.objects.create(tenant=acme), Document.objects.create(tenant=globex)
    # A document of my tenant under a parent of another: the parent decides.
    child_of_theirs = Document.objects.create(tenant=acme, parent=theirs)
    child_of_mine = Document.objects.create(tenant=globex, parent=mine)
    for _ in range(2):  # cold, then with the answer cached on the actor
        assert not authorize(user, action, child_of_theirs).allowed
        assert authorize(user, action, child_of_mine).allowed


def test_a_warm_to_many_rule_decides_an_amount_not_converted_yet(fresh_registry: Any) -> None:
    # An amount set from a form ("500" for a decimal) is compared as the database stores it.
    # The compiled check then hands the object to the rule's own checker, which must still
    # read the answer cached on the actor for the right object.
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    direct = Action("testapp.big_in_my_tenant", model=Document, permission=ANYONE)
    direct.policy("mine", where(amount__gte=100, tenant__memberships__user=ACTOR), reason="mine")
    parent = Action("testapp.big_under_my_tenant", model=Document, permission=ANYONE)
    parent.policy(
        "mine", where(amount__gte=100, parent__tenant__memberships__user=ACTOR), reason="mine"
    )
    mine = Document.objects.create(tenant=acme, amount=500)
    theirs = Document.objects.create(tenant=globex, amount=500)
    child_of_theirs = Document.objects.create(tenant=acme, parent=theirs, amount=500)
    child_of_mine = Document.objects.create(tenant=globex, parent=mine, amount=500)
    # Cold: the answers are read and kept on the actor.
    assert authorize(user, direct, mine).allowed
    assert authorize(user, parent, child_of_mine).allowed
    for doc in (mine, theirs, child_of_theirs, child_of_mine):
        doc.amount = "500"
    expected = {
        (direct, mine): True,
        (direct, theirs): False,
        (parent, child_of_mine): True,
        (parent, child_of_theirs): False,
    }
    # The same user loaded again (nothing kept on it yet), then the one holding the answers.
    for actor in (User.objects.get(pk=user.pk), user):
        for (action, doc), allowed in expected.items():
            decision = authorize(actor, action, doc)
            assert (decision.allowed, decision.error) == (allowed, None), (action.name, doc.pk)


def test_two_to_many_groups_in_one_rule_keep_their_own_answers() -> None:
    # Neither is tied to the actor: each is one query for this object, and its answer is kept
    # for this decision apart from the other's.
    user = User.objects.create_user("watcher")
    doc = Document.objects.create(title="d")
    doc.watchers.add(user)
    Document.objects.create(title="other child", parent=doc)
    watched, titled = where(watchers__username="watcher"), where(children__title="child")
    assert holds(watched, doc) and not holds(titled, doc)
    assert not holds(watched & titled, doc)
    assert not holds(titled & watched, doc)
    assert holds(watched | titled, doc)


def test_a_fresh_decision_reads_a_to_many_rule_as_the_rows_are_now() -> None:
    # perform() and the write guards decide on fresh data: the answer kept on the actor by an
    # earlier decision is not used, also for the context made for each object.
    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    rule = where(tenant__memberships__user=ACTOR)
    doc = Document.objects.create(tenant=acme)
    assert holds(rule, doc, user)  # kept on the actor
    Membership.objects.filter(user=user).delete()
    assert holds(rule, doc, user)  # a decision that is not fresh may use what is kept
    fresh = Context(user, None, doc, now=timezone.now(), fresh=True)
    assert not rule.evaluate(fresh)
    assert not rule.evaluate(Context(user, None, None, now=fresh.now, fresh=True).with_object(doc))


class _Kiosk:
    """An actor of the caller's own that says it is signed in, and has no ``has_perm``."""

    is_anonymous = False
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


class _Job:
    """An actor of the caller's own with permissions, and no ``is_anonymous``."""

    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True


def test_an_actor_that_is_not_a_row_is_no_member_whatever_key_it_carries(
    fresh_registry: Any,
) -> None:
    # Each carries the key of the member who owns the document: it is not that member, and
    # neither rule holds (no error for the audit to show). One reads the actor's tenants through
    # a to-many relation, the other compares a foreign key of the object itself, in Python.
    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    member = Action("testapp.in_my_tenant", model=Document, permission=ANYONE)
    member.policy("member", where(tenant__memberships__user=ACTOR), reason="Members only.")
    own = Action("testapp.own", model=Document, permission=ANYONE)
    own.policy("mine", where(owner=ACTOR), reason="Owners only.")
    doc = Document.objects.create(tenant=acme, owner=user)
    for action in (member, own):
        assert authorize(user, action, doc).allowed
        for stranger in (_Kiosk(user.pk), _Job(user.pk)):
            decision = authorize(stranger, action, doc)
            assert (decision.allowed, decision.error) == (False, None), (
                action.name,
                type(stranger).__name__,
            )


def test_an_unsaved_row_as_a_value_matches_no_object_without_one(fresh_registry: Any) -> None:
    # CTX.who is a user not saved yet (no key): it is nobody's owner, not the owner of the
    # documents that have none.
    action = Action("testapp.owned_by", model=Document, permission=ANYONE)
    action.policy("theirs", where(owner=CTX.who), reason="Theirs.")
    clerk = User.objects.create_user("clerk")
    unowned = Document.objects.create(owner=None)
    decision = authorize(clerk, action, unowned, who=User(username="new"))
    assert (decision.allowed, decision.error) == (False, None)


def test_a_relation_compared_with_another_user_than_the_actor_reads_that_user(
    fresh_registry: Any,
) -> None:
    # The compiled plans read the actor's key directly only for owner=ACTOR itself: owner=CTX.who
    # and owner=ACTOR.boss compare with the user they name.
    owner, clerk = User.objects.create_user("owner"), User.objects.create_user("clerk")
    doc = Document.objects.create(owner=owner)
    by_ctx = Action("testapp.owned_by_who", model=Document, permission=ANYONE)
    by_ctx.policy("theirs", where(owner=CTX.who), reason="Theirs.")
    by_boss = Action("testapp.owned_by_boss", model=Document, permission=ANYONE)
    by_boss.policy("boss", where(owner=ACTOR.boss), reason="My boss's.")
    clerk.boss = owner  # type: ignore[attr-defined]
    for _ in range(2):  # cold, then warm
        assert authorize(clerk, by_ctx, doc, who=owner).allowed
        assert not authorize(owner, by_ctx, doc, who=clerk).allowed
        assert authorize(clerk, by_boss, doc).allowed


def test_a_text_given_where_a_collection_is_expected_is_an_error(fresh_registry: Any) -> None:
    # state__in=CTX.states with states="draft": not the letters of "draft", an error.
    clerk = User.objects.create_user("clerk")
    action = Action("testapp.in_states", model=Document, permission=ANYONE)
    action.policy("listed", where(state__in=CTX.states), reason="Listed states.")
    doc = Document.objects.create(state="d")
    decision = authorize(clerk, action, doc, states="draft")
    assert not decision.allowed
    assert decision.error is not None and "expected a collection" in decision.error
    assert authorize(clerk, action, doc, states=["d"]).allowed


def test_attribute_names_the_compiled_plans_read_directly() -> None:
    from clearance.rules.context import attribute_name

    assert attribute_name("owner_id")
    assert not attribute_name("class")  # a keyword: obj.class is not Python
    assert not attribute_name("due-date")  # not an identifier


def test_a_negated_rule_decides_an_amount_not_converted_yet(fresh_registry: Any) -> None:
    # "50" set from a form: the compiled check hands the object to the negation's checker,
    # which compares it as the database will store it.
    user = User.objects.create_user("clerk")
    action = Action("testapp.small", model=Document, permission=ANYONE)
    action.policy("small", ~where(amount__gte=100), reason="Small amounts only.")
    small, large = Document.objects.create(amount=50), Document.objects.create(amount=500)
    small.amount, large.amount = "50", "500"
    decisions = [authorize(user, action, doc) for doc in (small, large)]
    assert [(d.allowed, d.error) for d in decisions] == [(True, None), (False, None)]
    # Beside it, a literal None (IS NULL), a lookup compared in no direct way (in) and a plain
    # equality.
    beside = Action("testapp.small_draft", model=Document, permission=ANYONE)
    beside.policy(
        "small_draft",
        where(amount__lte=100, priority=None, state__in=["draft"], state="draft"),
        reason="Small drafts without a priority.",
    )
    decision = authorize(user, beside, small)
    assert (decision.allowed, decision.error) == (True, None)
    small.priority = 1
    decision = authorize(user, beside, small)
    assert (decision.allowed, decision.error) == (False, None)


def test_a_to_many_lookup_compared_with_an_actor_attribute_uses_that_attribute() -> None:
    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    rule = where(tenant__memberships__user__username=ACTOR.username)
    for _ in range(2):
        assert holds(rule, Document(tenant=acme), user)


def test_a_range_comparison_with_the_actor_is_not_kept_on_the_actor(
    django_assert_num_queries: Any,
) -> None:
    acme = Tenant.objects.create(name="Acme")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    # Every tenant with a member from this user onwards: not a set to keep per actor.
    rule = where(tenant__memberships__user__gte=ACTOR)
    with django_assert_num_queries(1):
        assert holds(rule, Document(tenant=acme), user)
    Membership.objects.filter(user=user).delete()
    with django_assert_num_queries(1):
        assert not holds(rule, Document(tenant=acme), user)  # seen at once


def test_an_actor_that_takes_no_attributes_is_decided_without_a_cache() -> None:
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    user = User.objects.create_user("member")
    Membership.objects.create(user=user, tenant=acme)
    rule = where(tenant__memberships__user=ACTOR)
    # A bare user id as the actor (a service calling on behalf of a user): nothing to keep
    # the answer on, so each decision asks again.
    assert holds(rule, Document(tenant=acme), user.pk)
    assert not holds(rule, Document(tenant=globex), user.pk)


# -- a relation named by its key, one-to-one relations ----------------------------------------


@pytest.fixture
def owned_by_first() -> tuple[User, User, Document]:
    """Two users, and a document of the first, loaded afresh (nothing of its owner cached)."""
    first, second = User.objects.create_user("first"), User.objects.create_user("second")
    Document.objects.create(owner=first)
    return first, second, Document.objects.get()


def test_a_relation_named_by_its_key_is_decided_on_the_foreign_key_without_a_query(
    owned_by_first: tuple[User, User, Document], django_assert_num_queries: Any
) -> None:
    # owner__id=..., owner__pk__gt=...: the key is the foreign key's own column, so the check
    # reads owner_id and never fetches the user; the lookup after the key name is kept.
    first, second, doc = owned_by_first
    cases = [
        (where(owner__id=first.pk), True),
        (where(owner__pk=second.pk), False),
        (where(owner__id__gt=first.pk), False),
        (where(owner__pk__gte=first.pk), True),
        (where(owner__id__lt=second.pk), True),
        (where(owner__pk__in=[second.pk]), False),
        (where(owner__id__range=(first.pk, second.pk)), True),
    ]
    for rule, expected in cases:
        with django_assert_num_queries(0):
            assert holds(rule, doc, first) is expected, rule
        listed = Document.objects.filter(rule.to_q(ctx_for(None, first), Document)).exists()
        assert listed is expected, rule


def test_a_relation_compared_with_another_fields_relation_is_decided_in_python(
    django_assert_num_queries: Any,
) -> None:
    # owner=F("parent__owner") (or owner__id=..., owner__pk=...): both sides are at hand once
    # the parent is loaded, so no query is made per object, and the list agrees.
    mine, theirs = User.objects.create_user("mine"), User.objects.create_user("theirs")
    parent = Document.objects.create(owner=mine)
    Document.objects.create(owner=mine, parent=parent, title="same")
    Document.objects.create(owner=theirs, parent=parent, title="other")
    children = list(Document.objects.select_related("parent").filter(parent__isnull=False))
    for rule in (
        where(owner=F("parent__owner")),
        where(owner__id=F("parent__owner")),
        where(owner__pk__exact=F("parent__owner")),
    ):
        with django_assert_num_queries(0):
            kept = {doc.title for doc in children if holds(rule, doc, mine)}
        assert kept == {"same"}, rule
        listed = Document.objects.filter(rule.to_q(ctx_for(None, mine), Document))
        assert set(listed.values_list("title", flat=True)) == {"same"}, rule


def test_a_forward_one_to_one_is_a_plain_relation_and_a_reverse_one_is_asked_of_the_database(
    django_assert_num_queries: Any,
) -> None:
    from django.contrib.auth.models import Group

    from tests.githubapp.models import Organization, Team

    org = Organization.objects.create(name="acme")
    core, ops = Group.objects.create(name="core"), Group.objects.create(name="ops")
    team = Team.objects.create(organization=org, name="Core", group=core)
    team = Team.objects.get(pk=team.pk)
    # Team.group: the team's own column, compared without a query.
    with django_assert_num_queries(0):
        assert holds(where(group=CTX.group), team, None, group=core)
        assert not holds(where(group=CTX.group), team, None, group=ops)
    # Group.team (the reverse side): no column on the group; the database answers.
    rule = where(team__name="Core")
    for group, expected in ((core, True), (ops, False)):
        group = Group.objects.get(pk=group.pk)
        with django_assert_num_queries(1):
            assert holds(rule, group) is expected
    assert list(Group.objects.filter(rule.to_q(ctx_for(None), Group))) == [core]


def test_a_bare_ctx_as_a_value_is_an_error_not_the_actor(fresh_registry: Any) -> None:
    # where(owner=CTX) names no context value: the decision fails closed with the reason; it
    # is not read as owner=ACTOR.
    owner = User.objects.create_user("owner")
    doc = Document.objects.create(owner=owner)
    action = Action("testapp.bare_ctx", model=Document, permission=ANYONE)
    action.policy("mine", where(owner=CTX), reason="Mine.")
    for _ in range(2):  # cold, then warm
        decision = authorize(owner, action, doc)
        assert not decision.allowed
        assert decision.error is not None and "CTX must be followed by a name" in decision.error


def test_a_database_lookup_after_a_relations_key_is_asked_of_the_database(
    owned_by_first: tuple[User, User, Document], django_assert_num_queries: Any
) -> None:
    # owner__id__regex: a lookup Python does not decide, after the key's name: the database
    # answers, as the filter does.
    first, second, doc = owned_by_first
    for user, expected in ((first, True), (second, False)):
        rule = where(owner__id__regex=rf"^{user.pk}$")
        with django_assert_num_queries(1):
            assert holds(rule, doc, first) is expected
        assert Document.objects.filter(rule.to_q(ctx_for(None, first), Document)).exists() is (
            expected
        )


def test_a_to_many_rule_on_context_values_is_not_kept_on_the_actor(
    django_assert_num_queries: Any,
) -> None:
    # Only a to-many rule bound to the actor keeps its answer on the actor; one bound to the
    # context (a list of CTX values, an expression on one) asks again, and sees a change.
    acme = Tenant.objects.create(name="Acme")
    clerk, member = User.objects.create_user("clerk"), User.objects.create_user("member")
    for rule in (
        where(tenant__memberships__user__in=[CTX.who]),
        where(tenant__memberships__user__id=CTX.who.pk + 0),
    ):
        Membership.objects.create(user=member, tenant=acme)
        with django_assert_num_queries(1):
            assert holds(rule, Document(tenant=acme), clerk, who=member)
        Membership.objects.filter(user=member).delete()
        with django_assert_num_queries(1):
            assert not holds(rule, Document(tenant=acme), clerk, who=member), rule


def test_isnull_compared_with_a_context_value_reads_it_as_true_or_false() -> None:
    titled, untitled = Document(title="memo"), Document(title=None)
    rule = where(title__isnull=CTX.missing)
    assert holds(rule, titled, None, missing=False) and not holds(rule, titled, None, missing=True)
    assert holds(rule, untitled, None, missing=True) and not holds(rule, untitled, None, missing=0)


def test_pk_after_a_relation_to_another_column_than_the_key_reads_the_related_row() -> None:
    # Nameplate.holder refers to User.username: holder__pk is the user's key, which the
    # nameplate does not hold (holder_id is the username); the check reads the user, as the
    # filter joins it.
    from tests.testapp.models import Nameplate

    alice, bob = User.objects.create_user("alice"), User.objects.create_user("bob")
    Nameplate.objects.create(holder=alice, label="gold")
    plate = Nameplate.objects.get()
    for user, expected in ((alice, True), (bob, False)):
        for rule in (where(holder__pk=user.pk), where(holder__id=user.pk)):
            assert holds(rule, plate, user) is expected, (rule.lookups, user)
            listed = Nameplate.objects.filter(rule.to_q(ctx_for(None, user), Nameplate)).exists()
            assert listed is expected, (rule.lookups, user)
    assert holds(where(holder="alice"), plate) and holds(where(holder__username="alice"), plate)
