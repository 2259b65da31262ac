"""Text comparisons give the same answer in SQL and in Python, whatever the database's collation.

Runs in every database pass: SQLite, PostgreSQL with the ``C`` locale and PostgreSQL with an ICU
``en-US`` collation (``tests.settings_postgres_icu``), where ``"apple" < "M"`` is true in SQL and
false in Python. Text ranges compare by code point on both sides; case-insensitive lookups fold
case as the database does, character by character.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.db.models import F
from django.test import override_settings

from clearance import ANYONE, Action, authorize, authorized, explain, where
from clearance.rules import Context, Rule, fold_case
from tests.testapp.models import Document

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::clearance.testing.NonBoolPredicateWarning"),
]

TITLES = [
    "apple",
    "banana",
    "Zebra",
    "M",
    "Mango",
    "m",
    "éclair",
    "Ärger",
    "zulu",
    "_x",
    "10",
    "9",
    "a b",
    "ab",
    "Ab",
    "\u1f80",
    "ß",
]

#: Greek letters with ypogegrammeni (their Python upper() is two characters, PostgreSQL's
#: libc UPPER() maps each to one), and other characters whose case mapping is special.
SPECIAL = [
    *(chr(c) for c in range(0x1F80, 0x1FB0)),
    "\u1fb3",
    "\u1fc3",
    "\u1ff3",
    "\u1fbc",
    "\u1fcc",
    "\u1ffc",
    "ß",
    "ẞ",
    "ŉ",
    "ǰ",
    "ΐ",
    "ﬀ",
    "İ",
    "\u0131",
    "\u212a",
    "\u017f",
    "µ",
    "ς",
    "\u03c3",
    "Σ",
    "ǅ",
    "\u0345",
    "\U00010428",
    "\U0001e922",
]

quiet = override_settings(CLEARANCE={"AUDIT_SINKS": []})


def agree(rule: Rule, name: str) -> set[str]:
    """The titles ``rule`` allows, asserting that the filter and the per-object check agree."""
    action = Action(name, model=Document, permission=ANYONE)
    action.policy("p", rule, reason="r")
    actor = User.objects.get(username="reader")
    with quiet:
        in_sql = set(
            authorized(actor, action, Document.objects.all()).values_list("title", flat=True)
        )
        in_python = {doc.title for doc in Document.objects.all() if authorize(actor, action, doc)}
    assert in_sql == in_python, f"{rule}: SQL {sorted(in_sql)} != Python {sorted(in_python)}"
    return in_python


@pytest.fixture
def titled(fresh_registry: Any) -> list[str]:
    User.objects.create_user("reader")
    for title in TITLES:
        Document.objects.create(title=title)
    return TITLES


@pytest.mark.parametrize(
    ("lookup", "value"),
    [
        ("lt", "M"),
        ("lte", "M"),
        ("gt", "M"),
        ("gte", "m"),
        ("lt", "b"),
        ("gt", "Ab"),
        ("lt", "a b"),
        ("range", ("B", "b")),
        ("range", ("9", "a")),
    ],
)
def test_text_ranges_compare_by_code_point_in_the_filter_and_the_check(
    titled: list[str], lookup: str, value: Any
) -> None:
    def holds(title: str) -> bool:
        if lookup == "range":
            return bool(value[0] <= title <= value[1])
        ops = {"lt": title < value, "lte": title <= value, "gt": title > value}
        return bool(ops.get(lookup, title >= value))

    expected = {t for t in titled if holds(t)}
    assert agree(where(**{f"title__{lookup}": value}), "testapp.range") == expected
    negated = agree(~where(**{f"title__{lookup}": value}), "testapp.not_range")
    assert negated == set(titled) - expected


def test_text_ranges_through_a_foreign_key_compare_by_code_point(fresh_registry: Any) -> None:
    User.objects.create_user("reader")
    for name in ("apple", "Bob", "zed", "éva"):
        Document.objects.create(title=name, owner=User.objects.create_user(name))
    Document.objects.create(title="nobody")
    assert agree(where(owner__username__lt="M"), "testapp.fk_range") == {"Bob"}
    assert agree(~where(owner__username__lt="M"), "testapp.fk_not_range") == {
        "apple",
        "zed",
        "éva",
        "nobody",
    }


@pytest.mark.parametrize("lookup", ["gt", "gte", "lt", "lte"])
def test_text_compared_with_another_text_field_follows_the_databases_order(
    titled: list[str], lookup: str
) -> None:
    # where(title__gt=F("state")) compares two columns: the database decides it (the check
    # asks it too), in the collation's order. Under ICU "apple" > "M" is false, by code point
    # it is true: a check that compared in Python would keep a row the list leaves out.
    Document.objects.update(state="M")
    kept = agree(where(**{f"title__{lookup}": F("state")}), f"testapp.field_{lookup}")
    assert agree(~where(**{f"title__{lookup}": F("state")}), f"testapp.not_field_{lookup}") == (
        set(titled) - kept
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'apple' < 'M'")
        (apple_first,) = cursor.fetchone()
    apple_below = bool(apple_first)  # "apple" < "M" in the database's order
    assert ("apple" in kept) == (apple_below if lookup in ("lt", "lte") else not apple_below)


@pytest.mark.parametrize("lookup", ["iexact", "icontains", "istartswith", "iendswith"])
def test_case_insensitive_lookups_agree_on_special_characters(
    fresh_registry: Any, lookup: str
) -> None:
    User.objects.create_user("reader")
    for char in SPECIAL:
        Document.objects.create(title=char)
        Document.objects.create(title=f"x{char}y")
    values = sorted({v for c in SPECIAL for v in (c, c.upper(), c.lower(), c.title())})
    for i, value in enumerate(values):
        agree(where(**{f"title__{lookup}": value}), f"testapp.ci{i}")


def test_the_python_fold_is_the_databases_on_every_code_point() -> None:
    """Every code point (but NUL and surrogates) folds in Python as the database folds it."""
    vendor = connection.vendor
    points = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            for start in range(0, len(points), 50_000):
                chunk = "".join(points[start : start + 50_000])
                cursor.execute("SELECT UPPER(%s)", [chunk])
                (upper,) = cursor.fetchone()
                assert fold_case(chunk, connection.alias) == upper
    elif vendor == "sqlite":
        # SQLite's LIKE folds ASCII letters only: the fold of every other character is itself.
        cased = [p for p in points if p.upper() != p or p.lower() != p]
        with connection.cursor() as cursor:
            for char in cased:
                other = char.upper() if char.upper() != char else char.lower()
                cursor.execute("SELECT %s LIKE %s", [char, other])
                (like,) = cursor.fetchone()
                alike = fold_case(char, connection.alias) == fold_case(other, connection.alias)
                assert bool(like) == alike, (hex(ord(char)), other)
    else:  # pragma: no cover
        pytest.skip(f"no reference for {vendor}")


def test_the_icu_pass_runs_on_an_icu_en_us_database() -> None:
    from django.conf import settings

    if not getattr(settings, "CLEARANCE_TEST_ICU_TEMPLATE", None):
        pytest.skip("runs under tests.settings_postgres_icu")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT datlocprovider, daticulocale FROM pg_database WHERE datname = "
            "current_database()"
        )
        assert cursor.fetchone() == ("i", "en-US")
        cursor.execute("SELECT 'apple' < 'M'")
        assert cursor.fetchone() == (True,)  # what the code point order says otherwise


def test_text_ranges_and_warm_case_folding_cost_no_query_per_decision(titled: list[str]) -> None:
    from django.test.utils import CaptureQueriesContext

    action = Action("testapp.cheap", model=Document, permission=ANYONE)
    action.policy("range", where(title__lt="M"), reason="r")
    action.policy("folded", ~where(title__iexact="\u1f88"), reason="r")
    actor = User.objects.get(username="reader")
    docs = list(Document.objects.all())
    with quiet:
        explain(actor, action, docs[0])  # the first case-insensitive check asks the database
        with CaptureQueriesContext(connection) as queries:
            for doc in docs:
                authorize(actor, action, doc)
    assert len(queries) == 0, [q["sql"] for q in queries.captured_queries]


@pytest.mark.django_db(databases=["default", "other"])
@pytest.mark.parametrize("lookup", ["iexact", "icontains", "istartswith"])
def test_a_row_is_compared_as_the_database_it_comes_from_folds_case(lookup: str) -> None:
    # SQLite folds ASCII letters only, PostgreSQL every letter: a row read from "other"
    # (SQLite, beside a PostgreSQL default in the PostgreSQL passes) is decided as "other"
    # decides it, whatever the default database does.
    rule = where(**{f"title__{lookup}": "élan"})
    for alias in ("default", "other"):
        Document.objects.using(alias).create(title="Élan")
        row = Document.objects.using(alias).get()
        stored = Document.objects.using(alias).filter(**{f"title__{lookup}": "élan"}).exists()
        assert rule.evaluate(Context(None, None, row, now=None, extra={})) is stored, alias
    vendors = {connections[a].vendor for a in ("default", "other")}
    if vendors == {"sqlite", "postgresql"}:  # the case that tells the databases apart
        assert Document.objects.using("default").filter(title__iexact="élan").exists()
        assert not Document.objects.using("other").filter(title__iexact="élan").exists()
