"""Rule expressions: arithmetic on placeholders, ``F()`` comparisons and ``Rule.through()``.

Each form is decided per object in Python and compiled to SQL; the tests compare
``authorize()``, ``authorized()`` and ``authorize_many()`` on rows a user would recognise,
NULLs and negations included. The random search lives in ``test_filtering_properties.py``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import pickle
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Length
from django.test.utils import CaptureQueriesContext

from clearance import ACTOR, ANYONE, CTX, Action, authorize, authorize_many, authorized, where
from clearance.rules import Expr, Predicate, Rule
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


_names = itertools.count()


def declare(*policies: Rule) -> Action:
    """An action on Document with ``policies`` (use with fresh_registry)."""
    action = Action(f"testapp.expressions{next(_names)}", model=Document, permission=ANYONE)
    for i, rule in enumerate(policies):
        action.policy(f"p{i}", rule, reason=f"policy {i}")
    return action


def agreed(actor: Any, action: Action, **extra: Any) -> set[int]:
    """The documents allowed, after checking that the three ways of asking agree."""
    docs = list(Document.objects.order_by("pk"))
    fresh = User.objects.get(pk=actor.pk) if actor.pk else AnonymousUser()
    one_by_one = {d.pk for d in docs if authorize(fresh, action, d, **extra).allowed}
    filtered = set(
        authorized(fresh, action, Document.objects.all(), **extra).values_list("pk", flat=True)
    )
    many = {
        d.resource.pk  # type: ignore[union-attr]
        for d in authorize_many(fresh, action, docs, **extra)
        if d.allowed
    }
    assert filtered == one_by_one == many
    return one_by_one


# -- arithmetic on placeholders ----------------------------------------------------------------


def test_expression_text_is_readable_and_stable() -> None:
    assert str(CTX.now - dt.timedelta(days=30)) == "CTX.now - timedelta(days=30)"
    assert str(ACTOR.limit * 2) == "ACTOR.limit * 2"
    assert str(2 * (ACTOR.limit + 1)) == "2 * (ACTOR.limit + 1)"
    assert str(CTX.a - (CTX.b - 1)) == "CTX.a - (CTX.b - 1)"
    assert str((CTX.a - CTX.b) - 1) == "CTX.a - CTX.b - 1"
    assert str(-CTX.level) == "-CTX.level"
    assert str(CTX.level / Decimal("2.5")) == "CTX.level / Decimal('2.5')"
    rule = where(submitted_at__gte=CTX.now - dt.timedelta(days=30, hours=1))
    assert str(rule) == "where(submitted_at__gte=CTX.now - timedelta(days=30, seconds=3600))"
    rule = where(submitted_at__gte=CTX.now - dt.timedelta(seconds=1, milliseconds=5))
    assert str(rule) == (
        "where(submitted_at__gte=CTX.now - timedelta(seconds=1, microseconds=5000))"
    )
    # Expressions survive pickling (rules travel to the audit and the snapshot tools).
    expr = pickle.loads(pickle.dumps(ACTOR.limit * 2 + 1))
    assert isinstance(expr, Expr) and str(expr) == "ACTOR.limit * 2 + 1"


def test_a_date_window_from_now(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    recent = make_doc(submitted_at=NOW - dt.timedelta(days=3))
    edge = make_doc(submitted_at=NOW - dt.timedelta(days=30))
    make_doc(submitted_at=NOW - dt.timedelta(days=31))
    never = make_doc(submitted_at=None)
    action = declare(where(submitted_at__gte=CTX.now - dt.timedelta(days=30)))
    assert agreed(alice, action, now=NOW) == {recent.pk, edge.pk}
    # The negation keeps what was never submitted: the rule does not hold for it.
    assert never.pk in agreed(
        alice, declare(~where(submitted_at__gte=CTX.now - dt.timedelta(days=30))), now=NOW
    )


def test_actor_attribute_times_a_constant(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    small, limit, large = (make_doc(amount=Decimal(a)) for a in ("10", "50", "50.01"))
    action = declare(where(amount__lte=ACTOR.limit * 2))
    alice.limit = Decimal("25")  # type: ignore[attr-defined]
    docs = list(Document.objects.order_by("pk"))
    assert [authorize(alice, action, d).allowed for d in docs] == [True, True, False]
    assert set(authorized(alice, action, Document.objects.all()).values_list("pk", flat=True)) == {
        small.pk,
        limit.pk,
    }
    assert large.pk not in {d.resource.pk for d in authorize_many(alice, action, docs) if d.allowed}  # type: ignore[union-attr]


def test_reversed_operands_and_unary_minus(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    docs = [make_doc(priority=p) for p in (-2, -1, 0, 1, 2, None)]
    assert agreed(alice, declare(where(priority__lt=-CTX.level)), level=1) == {docs[0].pk}
    assert agreed(alice, declare(where(priority__gt=3 - CTX.level)), level=2) == {docs[4].pk}
    assert agreed(alice, declare(where(priority=10 / CTX.level)), level=5) == {docs[4].pk}


def test_a_none_operand_matches_nothing_and_its_negation_everything(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    docs = [make_doc(priority=p) for p in (0, 1, None)]
    assert agreed(alice, declare(where(priority__gte=CTX.level + 1)), level=None) == set()
    assert agreed(alice, declare(~where(priority__gte=CTX.level + 1)), level=None) == {
        d.pk for d in docs
    }
    # The anonymous actor has no limit: nothing.
    assert agreed(AnonymousUser(), declare(where(priority__lte=ACTOR.pk * 2))) == set()


def test_nested_arithmetic_reads_every_placeholder_inside(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    low, high = make_doc(priority=3), make_doc(priority=9)
    # (3 + 1) * 2 = 8: the placeholder sits two levels down.
    assert agreed(alice, declare(where(priority__gte=(CTX.level + 1) * 2)), level=3) == {high.pk}
    assert agreed(
        alice, declare(where(priority__lt=2 * (CTX.step + CTX.level))), level=1, step=1
    ) == {low.pk}
    # An expression that reads the object, however deep, has no SQL form.
    deep = where(priority__lt=(CTX.obj.amount + 1) * 2)
    assert deep.object_keys == ("priority__lt",) and not deep.filterable


def test_a_placeholder_that_is_zero_or_empty_is_compared_as_it_is(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # 0, "" and False are values like any other: only None matches nothing.
    zero, one = make_doc(priority=0, title=""), make_doc(priority=1, title="x")
    assert agreed(alice, declare(where(priority=CTX.level)), level=0) == {zero.pk}
    assert agreed(alice, declare(where(priority__lte=CTX.level)), level=0) == {zero.pk}
    assert agreed(alice, declare(where(title=CTX.title)), title="") == {zero.pk}
    assert agreed(alice, declare(~where(priority=CTX.level)), level=0) == {one.pk}


def test_a_text_range_through_a_relation_compares_the_related_field(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # By code point, as everywhere: "Zebra" < "apple" < "m".
    low, high = make_doc(title="Zebra"), make_doc(title="zoo")
    under_low, under_high = make_doc(parent=low, title="zz"), make_doc(parent=high, title="A")
    assert agreed(alice, declare(where(parent__title__lt="m"))) == {under_low.pk}
    assert agreed(alice, declare(where(parent__title__gte="m"))) == {under_high.pk}
    # Two relations away.
    deep_low, deep_high = make_doc(parent=under_low), make_doc(parent=under_high)
    assert agreed(alice, declare(where(parent__parent__title__lt="m"))) == {deep_low.pk}
    assert agreed(alice, declare(where(parent__parent__title__gte="m"))) == {deep_high.pk}


def test_comparisons_through_a_relation_at_their_edges(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # Decided in Python on the related row, as the database decides it in the filter.
    parent = make_doc(priority=5, amount=Decimal("10.00"), title="Quarterly Report")
    child = make_doc(parent=parent)
    assert agreed(alice, declare(where(parent__priority__lt=5))) == set()
    assert agreed(alice, declare(where(parent__priority__lte=5))) == {child.pk}
    assert agreed(alice, declare(where(parent__amount=CTX.x)), x=Decimal("10")) == {child.pk}
    # iexact is the whole text, whatever its case; not a text it ends with.
    assert agreed(alice, declare(where(parent__title__iexact="quarterly report"))) == {child.pk}
    assert agreed(alice, declare(where(parent__title__iexact="report"))) == set()
    assert agreed(alice, declare(where(title__iexact="report"))) == set()


def test_a_lookup_only_the_database_decides_through_a_relation_with_a_missing_value(
    fresh_registry: Any, alice: User, make_doc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    make_doc(parent=make_doc(title="memo"))
    action = declare(where(parent__title__regex=CTX.pattern))
    assert agreed(alice, action, pattern="^me") != set()
    # No value, no row: the filter says so itself, without failing (and logging) on the way.
    assert agreed(alice, action, pattern=None) == set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_fractional_bound_on_an_integer_column(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    one, two = make_doc(priority=1), make_doc(priority=2)
    # 3 / 2 is 1.5: no priority equals it, 2 is above it, 1 below.
    assert agreed(alice, declare(where(priority=CTX.level / 2)), level=3) == set()
    assert agreed(alice, declare(~where(priority=CTX.level / 2)), level=3) == {one.pk, two.pk}
    assert agreed(alice, declare(where(priority__gte=CTX.level / 2)), level=3) == {two.pk}
    assert agreed(alice, declare(where(priority__gt=CTX.level / 2)), level=3) == {two.pk}
    assert agreed(alice, declare(where(priority__lt=CTX.level / 2)), level=3) == {one.pk}
    assert agreed(alice, declare(where(priority__lte=CTX.level / 2)), level=3) == {one.pk}
    assert agreed(alice, declare(where(priority__in=[CTX.level / 2, 2])), level=3) == {two.pk}
    assert agreed(
        alice, declare(where(priority__range=(CTX.level / 2, CTX.level - Decimal("0.5")))), level=3
    ) == {two.pk}


def test_a_decimal_bound_beyond_the_range_of_a_float_on_an_integer_column(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # Decimal("1e400") has no float, but it is a finite number all the same: every priority is
    # below it. A signalling NaN is no number: nothing matches, and the decision says so
    # without an error.
    one = make_doc(priority=1)
    huge = Decimal("1e400")
    assert agreed(alice, declare(where(priority__lt=CTX.level)), level=huge) == {one.pk}
    assert agreed(alice, declare(where(priority__gt=CTX.level)), level=-huge) == {one.pk}
    assert agreed(alice, declare(where(priority__gte=CTX.level)), level=huge) == set()
    snan = authorize(alice, declare(where(priority__lt=CTX.level)), one, level=Decimal("sNaN"))
    assert (snan.allowed, snan.error) == (False, None)


def test_an_impossible_operation_denies(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    doc = make_doc(priority=1)
    action = declare(where(priority__gte=CTX.level / 0))
    decision = authorize(alice, action, doc, level=1)
    assert not decision.allowed


# -- comparisons with another field: F() ---------------------------------------------------------


def test_a_none_in_a_boolean_field_read_by_f_is_a_null(fresh_registry: Any, alice: User) -> None:
    # A project whose `archived` was set to None in memory (a form not cleaned yet): F() reads
    # a NULL, which never matches, and the negation holds; no error, on either side.
    from clearance import ANYONE, Action
    from tests.testapp.models import Project, Task

    same = Action("testapp.task_like_project", model=Task, permission=ANYONE)
    same.policy("same", where(done=F("project__archived")), reason="Done as archived.")
    other = Action("testapp.task_unlike_project", model=Task, permission=ANYONE)
    other.policy("other", ~where(done=F("project__archived")), reason="Not as archived.")
    task = Task(title="t", done=False, project=Project(name="p", archived=None))
    assert [(d.allowed, d.error) for d in (authorize(alice, a, task) for a in (same, other))] == [
        (False, None),
        (True, None),
    ]


def test_compare_with_a_field_of_a_relation(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    budget = make_doc(amount=Decimal("100"))
    within = make_doc(amount=Decimal("100"), parent=budget)
    over = make_doc(amount=Decimal("100.01"), parent=budget)
    orphan = make_doc(amount=Decimal("1"), parent=None)
    action = declare(where(amount__lte=F("parent__amount")))
    assert str(action.rules[0].rule) == 'where(amount__lte=F("parent__amount"))'
    assert agreed(alice, action) == {within.pk}
    # ~ keeps the rows where the comparison does not hold: NULL parent included.
    assert agreed(alice, declare(~where(amount__lte=F("parent__amount")))) == {
        budget.pk,
        over.pk,
        orphan.pk,
    }


def test_arithmetic_on_fields(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    budget = make_doc(amount=Decimal("50"))
    twice = make_doc(amount=Decimal("100"), parent=budget)
    more = make_doc(amount=Decimal("100.5"), parent=budget)
    assert agreed(alice, declare(where(amount__lte=F("parent__amount") * 2))) == {twice.pk}
    assert agreed(alice, declare(where(amount__gt=F("parent__amount") + 50))) == {more.pk}
    assert agreed(alice, declare(where(amount=2 * F("parent__amount")))) == {twice.pk}


def test_a_null_field_on_either_side_never_matches(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    parent = make_doc(priority=None)
    low = make_doc(priority=1, parent=make_doc(priority=2))
    unknown = make_doc(priority=None, parent=make_doc(priority=2))
    above_null = make_doc(priority=3, parent=parent)
    rule = where(priority__lt=F("parent__priority"))
    assert agreed(alice, declare(rule)) == {low.pk}
    everyone = set(Document.objects.values_list("pk", flat=True))
    assert agreed(alice, declare(~rule)) == everyone - {low.pk}
    assert unknown.pk in agreed(alice, declare(~rule))
    assert above_null.pk in agreed(alice, declare(~rule))
    # Two nullable columns of the same row.
    same = make_doc(priority=None, submitted_at=NOW)
    assert same.pk not in agreed(alice, declare(where(priority__lte=F("priority"))))
    assert same.pk in agreed(alice, declare(~where(priority__lte=F("priority"))))


def test_a_page_reads_a_path_of_two_relations_once_for_every_object(
    fresh_registry: Any, alice: User, make_doc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clearance")
    action = declare(where(parent__parent__state="published"))
    grand = [make_doc(state="published"), make_doc(state="draft")]
    page = [make_doc(parent=make_doc(parent=grand[i % 2])) for i in range(6)]
    page = list(Document.objects.filter(pk__in=[d.pk for d in page]).order_by("pk"))
    with CaptureQueriesContext(connection) as queries:
        decisions = authorize_many(alice, action, page)
    assert [d.allowed for d in decisions] == [True, False] * 3
    # The parents, then the grandparents: two queries for the page, not two per document.
    assert len(queries) == 2
    assert not [r for r in caplog.records if "prefetch" in r.getMessage()]


def test_dates_with_a_timedelta(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    first = make_doc(submitted_at=NOW)
    late = make_doc(submitted_at=NOW + dt.timedelta(days=31), parent=first)
    soon = make_doc(submitted_at=NOW + dt.timedelta(days=30), parent=first)
    rule = where(submitted_at__gt=F("parent__submitted_at") + dt.timedelta(days=30))
    assert agreed(alice, declare(rule)) == {late.pk}
    assert soon.pk in agreed(alice, declare(~rule))


def test_compare_relations_by_key(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    parent = make_doc(owner=alice)
    same = make_doc(owner=alice, parent=parent)
    make_doc(owner=bob, parent=parent)
    make_doc(owner=None, parent=make_doc(owner=None))
    assert agreed(alice, declare(where(owner=F("parent__owner")))) == {same.pk}


def test_python_decides_without_a_query_for_own_columns(
    fresh_registry: Any, alice: User, make_doc: Any, django_assert_num_queries: Any
) -> None:
    doc = make_doc(amount=Decimal("5"), priority=5)
    action = declare(where(amount__lte=F("priority") * 2))
    fresh = User.objects.get(pk=alice.pk)
    with django_assert_num_queries(0):
        assert authorize(fresh, action, doc).allowed
    # Text equal to another text column: equality needs no collation, Python decides it.
    same = declare(where(title=F("state")))
    equal, unequal = make_doc(title="draft", state="draft"), make_doc(title="Draft", state="draft")
    with django_assert_num_queries(0):
        assert authorize(fresh, same, equal).allowed
        assert not authorize(fresh, same, unequal).allowed
    # authorize_many fetches the relations an F() path follows once for the whole list.
    docs = [make_doc(amount=Decimal("1"), parent=doc) for _ in range(5)]
    many = declare(where(amount__lte=F("parent__amount")))
    docs = list(Document.objects.filter(pk__in=[d.pk for d in docs]))
    with django_assert_num_queries(1):
        assert all(d.allowed for d in authorize_many(fresh, many, docs))


def test_a_lookup_only_the_database_decides_reads_the_context_and_is_one_query_per_page(
    fresh_registry: Any,
    alice: User,
    make_doc: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.CLEARANCE = {"AUDIT_SINKS": []}  # count the rule's queries alone
    action = declare(where(title__regex=CTX.pattern))
    docs = [make_doc(title=title) for title in ("q1 report", "q2 report", "memo", "q3 memo")]
    assert agreed(alice, action, pattern=r"^q[0-9] ") == {docs[0].pk, docs[1].pk, docs[3].pk}
    assert agreed(alice, action, pattern="report$") == {docs[0].pk, docs[1].pk}
    caplog.set_level(logging.DEBUG, logger="clearance")
    for page in (docs, docs[2:3]):
        with CaptureQueriesContext(connection) as queries:
            decisions = authorize_many(alice, action, page, pattern="memo")
        assert len(queries) == 1, [q["sql"] for q in queries.captured_queries]
        assert [d.allowed for d in decisions] == ["memo" in d.title for d in page]
    # A None value matches nothing, and the database is not asked.
    with CaptureQueriesContext(connection) as queries:
        decisions = authorize_many(alice, action, docs, pattern=None)
    assert len(queries) == 0 and not any(d.allowed for d in decisions)
    # The page is answered by the batch query itself, not by a fallback after a failure.
    assert not [r for r in caplog.records if "prefetch" in r.getMessage()]


@pytest.fixture
def prices(settings: Any) -> list[Any]:
    """Three ``writepaths.Price`` rows keyed by their second column (``code``), after
    ``label``; each label is another row's code, so reading the first column for the key
    picks the wrong row. Without audit sinks."""
    from tests.writepaths.models import Price

    settings.CLEARANCE = {"AUDIT_SINKS": []}
    return [
        Price.objects.create(code="a", label="b"),
        Price.objects.create(code="b", label="memo"),
        Price.objects.create(code="memo", label="a"),
    ]


def test_a_lookup_only_the_database_decides_on_a_model_keyed_by_a_later_column(
    fresh_registry: Any, alice: User, prices: list[Any]
) -> None:
    # The batch must match rows by their key, not by whatever column comes first.
    from clearance import ANYONE, Action
    from tests.writepaths.models import Price

    action = Action("writepaths.see_price", model=Price, permission=ANYONE)
    action.policy("pattern", where(label__regex=CTX.pattern), reason="Matching labels.")
    with CaptureQueriesContext(connection) as queries:
        decisions = authorize_many(alice, action, prices, pattern="^memo$")
    assert len(queries) == 1
    assert [d.allowed for d in decisions] == [False, True, False]


def test_a_to_many_rule_on_a_model_keyed_by_a_later_column(
    fresh_registry: Any, alice: User, bob: User, prices: list[Any]
) -> None:
    # The rows a to-many lookup matches are read by their key, on the page that asks them
    # all at once as for one object.
    from clearance import ANYONE, Action
    from tests.writepaths.models import Price

    mine = Action("writepaths.watch_price", model=Price, permission=ANYONE)
    mine.policy("watching", where(watchers=ACTOR), reason="Prices I watch.")
    named = Action("writepaths.watch_named_price", model=Price, permission=ANYONE)
    named.policy("named", where(watchers__username=CTX.name), reason="Prices they watch.")
    by_name = Action("writepaths.watch_price_by_name", model=Price, permission=ANYONE)
    by_name.policy("by_name", where(watchers__username=ACTOR.username), reason="By my name.")
    prices[1].watchers.add(alice)
    expected = [False, True, False]
    # First with an actor loaded afresh for each decision, so nothing is kept on it yet: the
    # shortcut for a rule that names the bare actor reads the rows itself.
    fresh = [authorize(User.objects.get(pk=alice.pk), mine, p).allowed for p in prices]
    assert fresh == expected
    assert [d.allowed for d in authorize_many(alice, mine, prices)] == expected
    assert [d.allowed for d in authorize_many(bob, named, prices, name="alice")] == expected
    assert [authorize(alice, mine, p).allowed for p in prices] == expected
    assert [authorize(bob, named, p, name="alice").allowed for p in prices] == expected
    assert [authorize(alice, by_name, p).allowed for p in prices] == expected


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (
            lambda: where(priority__lt=F("parent__priority") + CTX.level),
            "the placeholder CTX.level",
        ),
        (lambda: where(priority__lt=F("priority") * ACTOR.pk), "the placeholder ACTOR.pk"),
        (lambda: where(priority__lt=Value(CTX.level)), "the placeholder CTX.level"),
        (lambda: where(owner=Value(ACTOR)), "the placeholder ACTOR"),
        (lambda: where(priority__lt=Length("title") + CTX.level), "the placeholder CTX.level"),
        # A constant met first does not end the search: the placeholder beside it is found.
        (lambda: where(priority__lt=Value(CTX.level) + Value(1)), "the placeholder CTX.level"),
        (lambda: where(owner=Value(User(pk=1, username="alice"))), "the row <User: alice>"),
    ],
)
def test_a_placeholder_or_a_row_inside_a_database_expression_is_refused_when_declared(
    make: Any, named: str
) -> None:
    # The database would receive the placeholder (or the row) itself: every decision would
    # fail. Refused at once, saying what it met and what to write instead.
    with pytest.raises(TypeError, match=rf": {named} cannot be used inside a database expression"):
        make()


def test_a_placeholder_expression_cannot_hold_a_database_expression() -> None:
    with pytest.raises(TypeError, match=r"not the database expression F\(priority\)"):
        CTX.level + F("priority")
    with pytest.raises(TypeError, match="not the database expression"):
        ACTOR.limit * Value(2)


def test_database_expressions_of_constants_are_still_accepted() -> None:
    assert str(where(priority__lt=F("parent__priority") + Value(2))) == (
        'where(priority__lt=F("parent__priority") + 2)'
    )
    assert str(where(priority__lt=CTX.level + 1)) == "where(priority__lt=CTX.level + 1)"


# -- reuse through a relation: Rule.through() ------------------------------------------------------


def test_a_rule_used_through_a_relation(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    can_read = where(owner=ACTOR) | where(state="published", priority__gte=CTX.level + 1)
    on_child = can_read.through("parent")
    assert str(on_child) == (
        "where(parent__owner=ACTOR) | where(parent__state='published', "
        "parent__priority__gte=CTX.level + 1)"
    )
    mine = make_doc(owner=alice)
    public = make_doc(owner=bob, state="published", priority=2)
    hidden = make_doc(owner=bob, state="published", priority=0)
    under_mine, under_public = make_doc(parent=mine), make_doc(parent=public)
    make_doc(parent=hidden)
    make_doc(parent=None, owner=alice)
    assert agreed(alice, declare(on_child), level=1) == {under_mine.pk, under_public.pk}
    # The negation: everything else, documents without a parent included.
    everyone = set(Document.objects.values_list("pk", flat=True))
    assert agreed(alice, declare(~on_child), level=1) == everyone - {under_mine.pk, under_public.pk}
    # F() paths are re-rooted too; through() composes.
    rule = where(amount__lte=F("parent__amount")).through("parent")
    assert str(rule) == 'where(parent__amount__lte=F("parent__parent__amount"))'
    assert str(where(state="x").through("parent").through("parent")) == (
        "where(parent__parent__state='x')"
    )


def test_field_expressions_are_shown_as_written() -> None:
    def shown(value: Any) -> str:
        return str(where(amount__lte=value)).removeprefix("where(amount__lte=")[:-1]

    assert shown(F("parent__amount") + 3) == 'F("parent__amount") + 3'
    assert shown(F("amount") - F("priority") - 1) == 'F("amount") - F("priority") - 1'
    assert shown(F("amount") - (F("priority") - 1)) == 'F("amount") - (F("priority") - 1)'
    assert shown((F("amount") + 1) * 2) == '(F("amount") + 1) * 2'
    assert shown(F("amount") * (F("priority") + Value(1))) == 'F("amount") * (F("priority") + 1)'
    assert shown(F("amount") / (F("priority") / 2)) == 'F("amount") / (F("priority") / 2)'
    # What has no written form of its own is shown as Django shows it.
    assert shown(F("amount") + Length("title")) == 'F("amount") + Length(F(title))'


def test_field_arithmetic_is_re_rooted_through_a_relation(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    rule = where(amount__lte=F("parent__amount") * 2).through("parent")
    assert str(rule) == 'where(parent__amount__lte=F("parent__parent__amount") * 2)'
    top = make_doc(amount=10)
    within, beyond = make_doc(amount=15, parent=top), make_doc(amount=25, parent=top)
    under_within = make_doc(parent=within)
    # Its parent holds 25, more than twice its grandparent's 10: not allowed.
    make_doc(parent=beyond)
    assert agreed(alice, declare(rule)) == {under_within.pk}


def test_predicates_follow_a_relation_only_when_they_declare_how(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    from clearance import predicate

    def owned(ctx: Any) -> bool:
        return bool(ctx.obj.owner_id == ctx.actor.pk)

    with pytest.raises(TypeError, match="predicate 'owned' reads the object"):
        predicate(owned).through("parent")
    follows = predicate(owned, reach=True).through("parent")
    assert str(follows) == 'owned().through("parent")'
    assert follows.fn is owned  # the snapshot and the checks read the declared code
    mine = make_doc(owner=alice)
    child, orphan = make_doc(parent=mine, owner=bob), make_doc(parent=None, owner=alice)
    action = declare(follows)
    assert authorize(alice, action, child).allowed
    assert not authorize(alice, action, orphan).allowed  # no parent: it does not hold
    assert not authorize(alice, action, mine).allowed
    # A function of (obj, path) says how to reach the object.
    seen: list[str] = []

    def reach(obj: Any, path: str) -> Any:
        seen.append(path)
        return obj.parent

    custom = predicate(owned, reach=reach).through("parent")
    assert authorize(alice, declare(custom), child).allowed and seen == ["parent"]
    # One that does not read the object is the same rule anywhere.
    constant = predicate(lambda ctx: True, uses_object=False, name="always")
    assert constant.through("parent") is constant


def test_a_predicate_follows_a_path_of_several_relations(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    from clearance import predicate

    def owned(ctx: Any) -> bool:
        return bool(ctx.obj.owner_id == ctx.actor.pk)

    mine = make_doc(owner=alice)
    grandchild = make_doc(owner=bob, parent=make_doc(owner=bob, parent=mine))
    other = make_doc(owner=alice, parent=make_doc(owner=alice, parent=make_doc(owner=bob)))
    at_once = predicate(owned, reach=True).through("parent__parent")
    in_steps = predicate(owned, reach=True).through("parent").through("parent")
    for rule in (at_once, in_steps):
        assert str(rule) == 'owned().through("parent__parent")'
        assert isinstance(rule, Predicate) and rule.reach is True  # as declared
        action = declare(rule)
        assert authorize(alice, action, grandchild).allowed
        assert not authorize(alice, action, other).allowed
        assert not authorize(alice, action, mine).allowed  # no grandparent


def test_a_predicate_through_a_relation_is_not_filterable_and_says_which(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from clearance import NotFilterable, predicate

    def owned(ctx: Any) -> bool:
        return bool(ctx.obj.owner_id == ctx.actor.pk)

    rule = predicate(owned, reach=True, name="parent_is_mine").through("parent")
    assert not rule.filterable
    action = declare(rule)
    child = make_doc(parent=make_doc(owner=alice))
    make_doc(parent=make_doc())
    with pytest.raises(NotFilterable, match="predicate 'parent_is_mine' reads the object"):
        authorized(alice, action, Document.objects.all())
    allowed = authorized(alice, action, Document.objects.all(), evaluate_in_python=True)
    assert list(allowed) == [child]


def test_rules_that_cannot_be_re_rooted_say_why() -> None:
    from django.db.models import Exists, OuterRef

    # The message names the lookup at fault, with its value as written.
    with pytest.raises(
        TypeError,
        match=r"^where\(owner=CTX\.obj\.owner\) reads the decision's object through CTX\.obj",
    ):
        where(owner=CTX.obj.owner).through("parent")
    with pytest.raises(TypeError, match=r"^where\(pk=\.\.\.\): a subquery's outer references"):
        where(pk=Exists(Document.objects.filter(parent=OuterRef("pk")))).through("parent")
    with pytest.raises(
        TypeError, match=r"^where\(amount__lte=OuterRef\(amount\)\) cannot be re-rooted"
    ):
        where(amount__lte=F("amount") + OuterRef("amount")).through("parent")
    with pytest.raises(TypeError, match="relation path"):
        where(state="x").through("")
    with pytest.raises(TypeError, match="relation path"):
        where(state="x").through(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="relation path"):
        where(state="x").through("parent____owner")


def test_field_arithmetic_with_a_function_is_asked_of_the_database(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from django.db.models.functions import Length

    top = make_doc(priority=5)
    below = make_doc(priority=6, parent=top, title="ab")
    make_doc(priority=8, parent=top, title="ab")
    make_doc(priority=1, title="abc")  # no parent: NULL never matches
    rule = where(priority__lt=F("parent__priority") + Length("title"))
    assert agreed(alice, declare(rule)) == {below.pk}


def test_a_lookup_through_a_relation_the_database_decides_keeps_its_nulls_under_a_negation(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    # parent__amount__lt=F("priority") / 2: a division, so the database decides; for a row
    # whose priority is NULL the comparison is unknown: it does not hold, and its negation
    # does, in the list as in the check (NOT of an unknown comparison would drop the row).
    top = make_doc(amount=Decimal("3"))
    small = make_doc(parent=top, priority=10)
    unknown = make_doc(parent=top, priority=None)
    large = make_doc(parent=top, priority=2)
    orphan = make_doc(priority=10)
    rule = where(parent__amount__lt=F("priority") / 2)
    assert agreed(alice, declare(rule)) == {small.pk}
    assert agreed(alice, declare(~rule)) == {top.pk, unknown.pk, large.pk, orphan.pk}


def test_a_function_of_a_field_is_asked_of_the_database(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from django.db.models.functions import Lower

    same = make_doc(title="draft", state="DRAFT")
    make_doc(title="Draft", state="draft")
    assert agreed(alice, declare(where(title=Lower("state")))) == {same.pk}


def test_a_field_across_a_to_many_relation_is_asked_of_the_database(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    low = make_doc(priority=1)
    high = make_doc(priority=9)
    make_doc(priority=5, parent=low)
    make_doc(priority=5, parent=high)
    make_doc(priority=0)  # no children: nothing to compare with
    assert agreed(alice, declare(where(priority__lt=F("children__priority")))) == {low.pk}


def test_f_of_pk_on_a_loaded_relation_is_decided_without_a_query(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    older = make_doc()
    newer = make_doc(parent=older)
    action = declare(where(pk__gt=F("parent__pk")))
    doc = Document.objects.select_related("parent").get(pk=newer.pk)
    with CaptureQueriesContext(connection) as queries:
        assert authorize(alice, action, doc).allowed
    assert len(queries) == 0
    assert agreed(alice, action) == {newer.pk}


def test_a_page_compared_with_a_relation_of_its_parents_loads_the_parents_once(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any, caplog: Any
) -> None:
    # F("parent__owner") reads the parent's owner_id: the parents are loaded for the whole
    # page in one query, the owners are not loaded at all.
    same = [make_doc(owner=alice, parent=make_doc(owner=alice)) for _ in range(3)]
    make_doc(owner=bob, parent=make_doc(owner=alice), amount=Decimal("500"))
    docs = list(Document.objects.filter(parent__isnull=False).order_by("pk"))
    for rule in (where(owner=F("parent__owner")), where(amount__lte=F("parent__amount"))):
        with (
            caplog.at_level(logging.DEBUG, logger="clearance"),
            CaptureQueriesContext(connection) as queries,
        ):
            decisions = authorize_many(alice, declare(rule), docs)
        assert not [r for r in caplog.records if "prefetch" in r.getMessage()]
        assert len(queries) == 1
        assert [d.resource.pk for d in decisions if d.allowed] == [d.pk for d in same]  # type: ignore[union-attr]
        # Loaded again: the next rule finds no parent cached.
        docs = list(Document.objects.filter(parent__isnull=False).order_by("pk"))


def test_placeholders_copy_and_are_not_mistaken_for_markup() -> None:
    import copy

    rule = copy.deepcopy(where(owner=ACTOR, priority__gte=CTX.level + 1))
    assert str(rule) == "where(owner=ACTOR, priority__gte=CTX.level + 1)"
    # Django's templates and format_html() look for __html__: a placeholder has none.
    assert not hasattr(ACTOR, "__html__")
    with pytest.raises(AttributeError, match=r"^__html__$"):
        ACTOR.__html__  # noqa: B018


def test_a_page_decided_by_a_rule_tied_to_the_actor_costs_one_query(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    for _ in range(3):
        make_doc()  # in alice's tenant
    action = declare(where(tenant__memberships__user=ACTOR))
    actor = User.objects.get(pk=alice.pk)  # nothing cached on it yet
    page = list(Document.objects.order_by("pk"))
    with CaptureQueriesContext(connection) as queries:
        decisions = authorize_many(actor, action, page)
    assert [d.allowed for d in decisions] == [True, True, True]
    assert len(queries) == 1


def test_a_negative_constant_is_parenthesised_only_under_a_negation() -> None:
    assert str(CTX.a + -1) == "CTX.a + -1"
    assert str(CTX.a * -2.5) == "CTX.a * -2.5"
    # Expressions are rebuilt from their parts (pickling does): -(-1) is not --1.
    assert str(Expr("neg", -1)) == "-(-1)"
    assert str(Expr("neg", 0)) == "-0"
    assert str(Expr("neg", 0.5)) == "-0.5"


def test_placeholder_names_may_begin_or_end_with_underscores() -> None:
    assert str(getattr(CTX, "__draft")) == "CTX.__draft"
    assert str(CTX.total__) == "CTX.total__"
    assert str(ACTOR.profile.limit_) == "ACTOR.profile.limit_"
