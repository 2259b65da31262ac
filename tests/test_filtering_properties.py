"""``authorized()`` agrees with per-object ``authorize()`` for every rule tree and every data set.

Hypothesis draws a rule tree from a grammar (local fields, nullable fields, text lookups and
text ranges over generated Unicode text, foreign keys compared with ``ACTOR``, forward chains,
nullable chains of foreign keys compared with ``None`` and ``isnull`` both ways, to-many
relations through memberships and watchers, ``CTX`` values that may be None, ``CTX.obj``,
predicates that do not read the object, arithmetic on placeholders (``CTX.when - CTX.window``,
fractional bounds on an integer column), comparisons with other fields through ``F()`` (nullable
on either side, through nullable foreign keys, with arithmetic), rules re-rooted with
``through("parent")``, several lookups in one ``where``, and ``&``/``|``/``~`` nested to depth
4), and a data set (several tenants, users in several tenants with several
roles, some never signed in, documents with null owners, null tenants, null priorities,
watchers, and parents that may be null at every hop of ``parent__parent__owner__last_login``).
For each actor (members, strangers, anonymous) the set of documents ``authorized()`` returns
must be exactly the set ``authorize()`` allows one by one, in at most one query, with no row
twice, calling each predicate at most once; and ``authorize_many`` must give the same
decisions. A rule that reads ``CTX.obj`` must make ``authorized()`` raise ``NotFilterable``, and
``evaluate_in_python=True`` must agree. Runs on SQLite, on PostgreSQL (``C`` locale) and on
PostgreSQL with an ICU ``en-US`` collation; ``CLEARANCE_FILTER_EXAMPLES`` sets the number of
examples (150 by default).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from clearance import (
    ACTOR,
    ANYONE,
    CTX,
    Action,
    NotFilterable,
    authorize,
    authorize_many,
    authorized,
    predicate,
)
from clearance.actions import registry
from clearance.rules import Predicate, Rule, unfilterable_reason, where
from tests.testapp.models import Document, Membership, Tenant

STATES = ["draft", "submitted", "archived"]
ROLES = ["member", "admin"]
# Case folding beyond ASCII differs between Python and the databases ("ß".upper() is "SS").
TITLES = ["", "a", "A", "ab", "aB", "b", "alice", "bob", "x_y", "x%", "ß", "SS", "é", "É"]
TEXT_VALUES = ["", "a", "A", "b", "B", "ab", "x_", "%", "alice", "ss", "ß", "É", "é"]
TEXT_LOOKUPS = ["exact", "iexact", "contains", "icontains", "startswith", "istartswith", "endswith"]
#: Lookups whose answer depends on the database's collation or case mapping.
UNICODE_LOOKUPS = [
    *("lt", "lte", "gt", "gte"),
    *("exact", "contains", "startswith", "endswith"),
    *("iexact", "icontains", "istartswith", "iendswith"),
]
#: Characters where collations and case mappings disagree: cases, accents, ß and ẞ, Greek with
#: ypogegrammeni, final sigma, dotted and dotless i, the Kelvin sign, long s, micro, a ligature,
#: a titlecase digraph, a combining ypogegrammeni, Deseret, punctuation that ICU sorts apart.
TRICKY = list(
    "aAbBmMzZ09 _%-.éÉeEßẞsS\u1f80\u1f88\u1fb3\u1fbc\u03c3\u03c2\u03a3iI\u0130\u0131"
    "\u212akK\u017f\u00b5\u03bc\ufb00\u01c5\u0345\U00010428\U00010400"
)
unicode_text = st.text(
    alphabet=st.sampled_from(TRICKY)
    | st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    max_size=4,
)
USERNAMES = ["alice", "bob", "carol", "dave"]
TENANT_NAMES = ["Acme", "acme", "Globex"]

SMALL_INTS = [-1, 0, 1, 2]
BASE = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
#: Days after BASE a document is submitted (or a decision's CTX.when falls).
DAYS = [0, 1, 2, 30, 31, 60]
AMOUNTS = [Decimal("-1"), Decimal("0"), Decimal("0.5"), Decimal("1"), Decimal("2.5")]


# -- the grammar: leaves are dicts of lookups (merged into one where) or constant predicates --


def _each(key: str, values: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from([{key: value} for value in values])


def _reads_obj(kind: st.SearchStrategy[dict[str, Any]]) -> bool:
    return "CTX.obj" in repr(kind)


def _text(lookup: str) -> st.SearchStrategy[dict[str, Any]]:
    return unicode_text.map(lambda value: {f"title__{lookup}": value})


#: Each kind of lookup, with the values it is drawn with. A leaf picks a kind uniformly, then a
#: value: every kind is as likely as every other, whatever its number of values.
LOOKUP_KINDS: list[st.SearchStrategy[dict[str, Any]]] = [
    # plain and nullable local fields
    _each("state", STATES),
    _each("state__in", [[], ["draft"], ["draft", "archived"]]),
    *(_each(f"title__{lookup}", TEXT_VALUES) for lookup in TEXT_LOOKUPS),
    _each("title", [ACTOR.username]),
    *(_each(f"amount__{op}", AMOUNTS) for op in ("gt", "gte", "lt", "lte", "exact")),
    _each("amount__range", [(AMOUNTS[1], AMOUNTS[3]), (AMOUNTS[0], AMOUNTS[0])]),
    _each("priority", [None, *SMALL_INTS]),
    *(_each(f"priority__{op}", SMALL_INTS) for op in ("gt", "gte", "lt", "lte")),
    _each("priority__in", [[], [None], [None, 1], [0, 2]]),
    _each("priority__isnull", [True, False]),
    _each("priority", [CTX.level]),
    _each("priority__gte", [CTX.level]),
    # asked of the database (a transform, a lookup Python does not know), also through a join
    _each("title__regex", ["^a", "b$"]),
    _each("owner__username__regex", ["^a", "o"]),
    # nullable foreign keys: the actor, the context, None, a chain through the relation
    _each("owner", [ACTOR]),
    _each("owner", [CTX.user]),
    _each("owner", [None]),
    _each("owner__isnull", [True, False]),
    _each("owner__username", [*USERNAMES, "ALICE"]),
    _each("owner__username__iexact", ["ALICE", "bob"]),
    _each("owner__pk", [ACTOR.pk]),
    _each("tenant", [CTX.tenant]),
    _each("tenant", [None]),
    _each("tenant__name", TENANT_NAMES),
    _each("tenant__name__iexact", TENANT_NAMES),
    _each("tenant__in", [[CTX.tenant]]),
    _each("owner__in", [[ACTOR, CTX.user]]),
    # to-many: the document's tenant's memberships, tied to the actor (cached per actor), with
    # several lookups that must hold for the same membership row
    st.just({"tenant__memberships__user": ACTOR}),
    st.sampled_from(
        [{"tenant__memberships__user": ACTOR, "tenant__memberships__role": r} for r in ROLES]
    ),
    # not tied to the actor: a role from the context (may be None)
    st.just({"tenant__memberships__role": CTX.role}),
    # the document's own many-to-many
    _each("watchers", [ACTOR, None]),
    _each("watchers__in", [[ACTOR, CTX.user]]),
    _each("watchers__username", USERNAMES),
    # to-many behind a nullable foreign key: the owner's memberships
    st.just({"owner__tenant_memberships__tenant": CTX.tenant}),
    st.just({"owner__tenant_memberships__tenant__memberships__user": ACTOR}),
    # text ranges and case-insensitive lookups over generated Unicode text
    *(_text(lookup) for lookup in UNICODE_LOOKUPS),
    st.tuples(unicode_text, unicode_text).map(lambda pair: {"title__range": pair}),
    st.tuples(st.sampled_from(["lt", "gte", "iexact"]), unicode_text).map(
        lambda lv: {f"owner__username__{lv[0]}": lv[1]}
    ),
    # nullable chains, NULL at every hop: parent -> parent -> owner -> last_login
    _each("owner__last_login", [None]),
    _each("owner__last_login__isnull", [True, False]),
    _each("parent", [None]),
    _each("parent__isnull", [True, False]),
    _each("parent__owner", [None, ACTOR]),
    _each("parent__owner__isnull", [True, False]),
    _each("parent__owner__last_login", [None]),
    _each("parent__owner__last_login__isnull", [True, False]),
    _each("parent__owner__username", USERNAMES),
    _each("parent__priority", [None, *SMALL_INTS]),
    _each("parent__priority__gte", SMALL_INTS),
    _each("parent__tenant", [None, CTX.tenant]),
    _each("parent__tenant__name__iexact", TENANT_NAMES),
    _each("parent__title__lt", ["M", "a", "\u1f88"]),
    _each("parent__parent__owner", [None, ACTOR]),
    _each("parent__parent__owner__last_login__isnull", [True, False]),
    _each("parent__parent__owner__last_login", [None]),
    # the object read through the context: no SQL form (NotFilterable, or checked in Python)
    _each("title", [CTX.obj.owner.username]),
    _each("priority", [CTX.obj.parent.priority]),
    _each("owner", [CTX.obj.parent.owner]),
]

#: Arithmetic on placeholders (None when an operand is None; fractional bounds on an integer
#: column), comparisons with other fields (F(), through nullable foreign keys, with arithmetic),
#: none of which reads CTX.obj: they may be re-rooted through ``parent``.
EXPRESSION_KINDS: list[st.SearchStrategy[dict[str, Any]]] = [
    _each("priority__gte", [CTX.level + 1, 1 - CTX.level, -CTX.level]),
    *(_each(f"priority__{op}", [CTX.level / 2, CTX.level * 2]) for op in ("gt", "lt", "exact")),
    _each("priority__lte", [CTX.level / 2 - 1]),
    _each("priority__in", [[CTX.level / 2, CTX.level - 1]]),
    _each("priority__range", [(CTX.level / 2, CTX.level + 1)]),
    _each("amount__lte", [CTX.level * Decimal("0.5"), CTX.level / 3, 2 - CTX.level]),
    _each("owner__pk__lt", [ACTOR.pk + 1]),
    st.just({"tenant__memberships__user__pk": ACTOR.pk * 1}),
    st.just({"tenant__memberships__user": ACTOR, "tenant__memberships__pk__gt": CTX.level - 1}),
    _each("submitted_at__gte", [CTX.when - dt.timedelta(days=30), CTX.when + CTX.window]),
    _each("submitted_at__lt", [CTX.when - CTX.window]),
    _each("parent__submitted_at__lte", [CTX.when - dt.timedelta(days=1)]),
    *(_each(f"priority__{op}", [F("parent__priority")]) for op in ("exact", "lt", "gte")),
    _each("priority__gt", [F("parent__priority") + 1, F("parent__parent__priority") - 1]),
    _each("priority__lte", [F("priority"), F("priority") * 2]),
    _each("amount__lte", [F("parent__amount") * 2, F("priority")]),
    _each("amount", [F("parent__amount"), F("parent__amount") + Decimal("0.5")]),
    _each("amount__gt", [F("priority") - 1]),
    _each("owner", [F("parent__owner")]),
    _each("tenant", [F("parent__parent__tenant")]),
    _each("parent__priority__gt", [F("priority")]),
    _each("submitted_at__gt", [F("parent__submitted_at") + dt.timedelta(days=1)]),
    _each("submitted_at__lte", [F("parent__submitted_at")]),
    _each("title", [F("parent__title")]),
]

#: The kinds a re-rooted rule is drawn from: everything but CTX.obj (which through() refuses).
REROOTABLE_KINDS = [
    *(kind for kind in LOOKUP_KINDS if not _reads_obj(kind)),
    *EXPRESSION_KINDS,
]
LOOKUP_KINDS += EXPRESSION_KINDS

lookups = st.sampled_from(LOOKUP_KINDS).flatmap(lambda kind: kind)
rerootable_lookups = st.sampled_from(REROOTABLE_KINDS).flatmap(lambda kind: kind)

#: One ``where()`` with one or two lookups (two: both must hold, on the same row for to-many).
where_leaves = st.lists(lookups, min_size=1, max_size=2).map(
    lambda parts: {k: v for part in parts for k, v in part.items()}
)
rerootable_leaves = st.lists(rerootable_lookups, min_size=1, max_size=2).map(
    lambda parts: {k: v for part in parts for k, v in part.items()}
)


class Const:
    """A predicate that does not read the object, with a call counter."""

    def __init__(self, value: bool) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, ctx: Any) -> bool:
        self.calls += 1
        return self.value


def build(spec: Any) -> Rule:
    kind = spec[0]
    if kind == "where":
        return where(**spec[1])
    if kind == "const":
        return predicate(Const(spec[1]), uses_object=False, name=f"always_{spec[1]}")  # type: ignore[no-any-return]
    if kind == "not":
        return ~build(spec[1])
    if kind == "through":
        return build(spec[1]).through("parent")
    left, right = build(spec[1]), build(spec[2])
    return left & right if kind == "and" else left | right


_where_specs = where_leaves.map(lambda d: ("where", d))
# where() leaves four times as often as constant predicates
leaf_specs = st.one_of(
    _where_specs,
    _where_specs,
    _where_specs,
    _where_specs,
    st.booleans().map(lambda b: ("const", b)),
)


def _trees(max_depth: int, leaves: st.SearchStrategy[Any] = leaf_specs) -> st.SearchStrategy[Any]:
    """Rule trees nested at most ``max_depth`` deep, leaning towards composite trees."""
    trees: st.SearchStrategy[Any] = leaves
    for _ in range(max_depth):
        children = trees
        trees = st.one_of(
            leaves,
            children.map(lambda c: ("not", c)),
            st.tuples(st.just("and"), children, children),
            st.tuples(st.just("or"), children, children),
        )
    return trees


#: A rule declared for a document's parent, used on the document: ``rule.through("parent")``.
_rerootable_specs = rerootable_leaves.map(lambda d: ("where", d))
through_specs = _trees(
    2, st.one_of(_rerootable_specs, _rerootable_specs, st.booleans().map(lambda b: ("const", b)))
).map(lambda tree: ("through", tree))

rule_specs = _trees(4, st.one_of(leaf_specs, leaf_specs, leaf_specs, through_specs))


# -- the data ---------------------------------------------------------------------------------

documents = st.fixed_dictionaries(
    {
        "tenant": st.none() | st.integers(0, 2),
        "owner": st.none() | st.integers(0, 3),
        "title": st.sampled_from(TITLES) | unicode_text,
        "state": st.sampled_from(STATES),
        "amount": st.sampled_from(AMOUNTS),
        "priority": st.sampled_from([None, *SMALL_INTS]),
        "watchers": st.lists(st.integers(0, 3), max_size=2, unique=True),
        # an earlier document (a later index means none)
        "parent": st.none() | st.integers(0, 13),
        "submitted": st.none() | st.sampled_from(DAYS),
    }
)

worlds = st.fixed_dictionaries(
    {
        # per user: the (tenant, role) memberships; a user may hold two roles in one tenant
        "memberships": st.lists(
            st.lists(st.tuples(st.integers(0, 2), st.sampled_from(ROLES)), max_size=3),
            min_size=4,
            max_size=4,
        ),
        "documents": st.lists(documents, min_size=6, max_size=14),
        # per user: whether they ever signed in (last_login set) or never (NULL)
        "logins": st.lists(st.booleans(), min_size=4, max_size=4),
        "ctx_tenant": st.none() | st.integers(0, 2),
        "ctx_level": st.sampled_from([None, *SMALL_INTS]),
        "ctx_role": st.none() | st.sampled_from(ROLES),
        "ctx_user": st.none() | st.integers(0, 3),
        "ctx_when": st.none() | st.sampled_from(DAYS),
        "ctx_window": st.none() | st.sampled_from([0, 1, 30]),
    }
)

_counter = itertools.count()


class FilteringAgreesWithAuthorize(TestCase):
    """The law of issue 3: ``authorized()`` is per-object ``authorize()``, in one query."""

    @settings(
        max_examples=int(os.environ.get("CLEARANCE_FILTER_EXAMPLES", "150")),
        deadline=None,
        # differing_executors: mutation testing (make mutate) runs the suite more than once in
        # one process, each time with a new TestCase instance; the test keeps no state on it.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.differing_executors,
        ],
    )
    @given(specs=st.lists(rule_specs, min_size=4, max_size=8), world=worlds)
    # A rule that raises must fail the test, not deny quietly; audit is not under test here.
    @override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True, "AUDIT_SINKS": []})
    def test_authorized_equals_per_object_authorize(
        self, specs: list[Any], world: dict[str, Any]
    ) -> None:
        users, extra = _make_world(world)
        actors = [*users, AnonymousUser()]
        state = registry.snapshot()
        try:
            # Each tree alone as a policy, and the first two as a policy and an invariant.
            for i, spec in enumerate(specs):
                action = Action(f"testapp.prop{next(_counter)}", model=Document, permission=ANYONE)
                action.policy("policy", build(spec), reason="generated")
                if i == 0 and len(specs) > 1:
                    action.invariant("invariant", build(specs[1]), reason="generated")
                note(f"rules of {action.name}: {[str(r.rule) for r in action.rules]}")
                self._check(action, actors, extra)
        finally:
            registry.restore(state)

    def _check(self, action: Action, actors: list[Any], extra: dict[str, Any]) -> None:
        consts = [
            leaf.fn
            for named in action.rules
            for leaf in named.rule.leaves()
            if isinstance(leaf, Predicate) and isinstance(leaf.fn, Const)
        ]
        # A rule that reads CTX.obj has no SQL form: refused for everyone, checked in Python
        # when asked.
        in_python = any(unfilterable_reason(named.rule) for named in action.rules)
        for actor in actors:
            fresh = _reload(actor)
            for const in consts:
                const.calls = 0
            if in_python:
                with pytest.raises(NotFilterable):
                    authorized(fresh, action, Document.objects.all(), **extra)
                rows = list(
                    authorized(
                        fresh, action, Document.objects.all(), evaluate_in_python=True, **extra
                    ).values_list("pk", flat=True)
                )
            else:
                with CaptureQueriesContext(connection) as queries:
                    rows = list(
                        authorized(fresh, action, Document.objects.all(), **extra).values_list(
                            "pk", flat=True
                        )
                    )
                # One query, whatever the rules; none at all when a rule folds to "nothing".
                assert len(queries) <= 1, [q["sql"] for q in queries.captured_queries]
                assert all(c.calls <= 1 for c in consts), "a predicate ran twice in one call"
            got = set(rows)
            assert len(rows) == len(got), f"duplicate rows for {actor}: {sorted(rows)}"
            docs = list(Document.objects.order_by("pk"))
            # One fresh actor object for the loop, as one request would have.
            same = _reload(actor)
            one_by_one = {doc.pk for doc in docs if authorize(same, action, doc, **extra).allowed}
            assert got == one_by_one, f"actor {actor}: authorized {got} != authorize {one_by_one}"
            batch = authorize_many(_reload(actor), action, docs, **extra)
            assert {d.resource.pk for d in batch if d.allowed} == one_by_one  # type: ignore[union-attr]


def _make_world(world: dict[str, Any]) -> tuple[list[User], dict[str, Any]]:
    tenants = [Tenant.objects.create(name=name) for name in TENANT_NAMES]
    users = [User.objects.create_user(username=name) for name in USERNAMES]
    for user, signed_in in zip(users, world["logins"], strict=True):
        user.last_login = user.date_joined if signed_in else None
        user.save(update_fields=["last_login"])
    created: list[Document] = []
    for user, memberships in zip(users, world["memberships"], strict=True):
        for t, role in memberships:
            Membership.objects.create(user=user, tenant=tenants[t], role=role)
    for spec in world["documents"]:
        doc = Document.objects.create(
            tenant=None if spec["tenant"] is None else tenants[spec["tenant"]],
            owner=None if spec["owner"] is None else users[spec["owner"]],
            title=spec["title"],
            state=spec["state"],
            amount=spec["amount"],
            priority=spec["priority"],
            submitted_at=None
            if spec["submitted"] is None
            else BASE + dt.timedelta(days=spec["submitted"]),
            parent=created[spec["parent"]]
            if spec["parent"] is not None and spec["parent"] < len(created)
            else None,
        )
        doc.watchers.set([users[i] for i in spec["watchers"]])
        created.append(doc)
    extra = {
        "tenant": None if world["ctx_tenant"] is None else tenants[world["ctx_tenant"]],
        "level": world["ctx_level"],
        "role": world["ctx_role"],
        "user": None if world["ctx_user"] is None else users[world["ctx_user"]],
        "when": None if world["ctx_when"] is None else BASE + dt.timedelta(days=world["ctx_when"]),
        "window": None if world["ctx_window"] is None else dt.timedelta(days=world["ctx_window"]),
    }
    return users, extra


def _reload(actor: Any) -> Any:
    """A fresh actor object, as the next request would load it (no cached results)."""
    if isinstance(actor, User):
        return User.objects.get(pk=actor.pk)
    return AnonymousUser()
