"""perform() reads the right row, once compiled, and shows what its re-check decided.

perform() compiles its two single-row statements (the lock and the re-read) once per shape and
runs them again with another primary key. These tests hold that reuse to its promise: the row
read is always the one asked for, on the object's own database, for every kind of model, and
the re-check after the body leaves a full trace.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.db.models.sql.compiler import (
    SQLAggregateCompiler,
    SQLCompiler,
    SQLDeleteCompiler,
    SQLInsertCompiler,
    SQLUpdateCompiler,
)
from django.test.utils import CaptureQueriesContext

from clearance import (
    ACTOR,
    ANYONE,
    Action,
    Decision,
    InvariantViolation,
    Layer,
    SystemActor,
    model_invariant,
    perform,
    predicate,
    where,
)
from tests.testapp.models import Document, Membership, Note, Tenant
from tests.writepaths.models import Place, Shop

pytestmark = pytest.mark.django_db

WRITES = (SQLAggregateCompiler, SQLDeleteCompiler, SQLInsertCompiler, SQLUpdateCompiler)
JOB = SystemActor("rows", permissions={"testapp.approve_document"})


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> dict[Any, Any]:
    """perform()'s cache of compiled statements, empty for this test."""
    empty: dict[Any, Any] = {}
    monkeypatch.setattr(sys.modules["clearance.perform"], "_statements", empty)
    return empty


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The models of the SELECT statements Django compiles while the test runs."""
    seen: list[Any] = []
    original = SQLCompiler.as_sql

    def as_sql(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(self, WRITES):
            seen.append(self.query.model)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", as_sql)
    return seen


def approve(doc: Document) -> None:
    doc.state = "approved"
    doc.save()


# -- compiled once, run again with another key -----------------------------------------------------


def test_a_second_call_of_the_same_shape_compiles_no_statement(
    statements: dict[Any, Any], compiled: list[Any], alice: User, bob: User, make_doc: Any
) -> None:
    first, second = make_doc(owner=bob), make_doc(owner=bob)
    with perform(alice, "testapp.approve", first) as locked:
        approve(locked)
    assert Document in compiled  # the first call compiles the lock and the re-read
    compiled.clear()
    with perform(alice, "testapp.approve", second) as locked:
        assert locked.pk == second.pk
        approve(locked)
    assert Document not in compiled, "the second call compiled its statements again"
    assert Document.objects.get(pk=second.pk).state == "approved"


def test_the_re_read_of_one_model_never_serves_another(
    fresh_registry: Any, statements: dict[Any, Any], alice: User, bob: User, make_doc: Any
) -> None:
    # The re-read's statement is kept by model: a Note's re-read must read the Note table, or
    # a Note the body broke would look deleted and skip the re-check.
    Action("testapp.edit_note", model=Note, permission=ANYONE).invariant(
        "short", ~where(text="too long"), reason="Notes stay short."
    )
    with perform(alice, "testapp.approve", make_doc(owner=bob)) as locked:
        approve(locked)
    note = Note.objects.create(text="fine")
    Document.objects.filter(pk=note.pk).delete()  # no document shares the note's key
    with (
        pytest.raises(InvariantViolation) as refused,
        perform(JOB, "testapp.edit_note", note) as locked_note,
    ):
        locked_note.text = "too long"
        locked_note.save()
    assert refused.value.decision.rule == "short"
    assert Note.objects.get(pk=note.pk).text == "fine"


def test_the_lock_answers_the_to_many_rule_after_a_predicate(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    # A rule mixing a predicate and a to-many lookup: the lookup is still answered inside the
    # statement that locks the row, not by a query of its own.
    @predicate
    def anything(ctx: Any) -> bool:
        return True

    Action("testapp.mixed", model=Document, permission=ANYONE).policy(
        "member", anything & where(tenant__memberships__user=ACTOR), reason="Members only."
    )
    doc = make_doc(owner=bob)
    connection = connections["default"]
    with CaptureQueriesContext(connection) as queries, perform(alice, "testapp.mixed", doc):
        pass
    membership = [q["sql"] for q in queries.captured_queries if "testapp_membership" in q["sql"]]
    assert len(membership) == 1 and "testapp_document" in membership[0], membership


def test_a_row_gone_before_the_lock_raises_the_models_own_error(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    Document.objects.filter(pk=doc.pk).delete()
    with (
        pytest.raises(Document.DoesNotExist, match=r"^Document matching query does not exist\.$"),
        perform(alice, "testapp.approve", doc),
    ):
        pass


def test_the_cache_of_statements_keeps_to_its_bound(
    fresh_registry: Any,
    statements: dict[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    alice: User,
    bob: User,
    make_doc: Any,
) -> None:
    # One statement per shape: a process that performs many actions on many models keeps at
    # most the bound, then starts again.
    monkeypatch.setattr(sys.modules["clearance.perform"], "_MAX_STATEMENTS", 2)
    for name in ("one", "two", "three"):
        Action(f"testapp.{name}", model=Document, permission=ANYONE)
        with perform(alice, f"testapp.{name}", make_doc(owner=bob)):
            pass
        assert 1 <= len(statements) <= 2, list(statements)


# -- a child model (multi-table inheritance) ---------------------------------------------------


@pytest.fixture
def rename_shop(fresh_registry: Any) -> Action:
    rename = Action("writepaths.rename_shop", model=Shop, permission=ANYONE)
    rename.policy("open", where(open=True), reason="Only open shops are renamed.")
    # Checked only by perform()'s re-check (no save guard sees an action's invariant).
    rename.invariant("stays_open", where(open=True), reason="Renaming does not close a shop.")
    model_invariant(Shop, "named", ~where(name=""), reason="A shop has a name.")
    return rename


def test_a_child_model_is_locked_decided_and_re_checked_on_its_parents_columns(
    rename_shop: Action, statements: dict[Any, Any]
) -> None:
    shop = Shop.objects.create(name="corner")
    for name in ("deli", "bakery"):  # twice: the second call runs what the first one kept
        with perform(JOB, "writepaths.rename_shop", shop) as locked:
            assert isinstance(locked, Shop) and locked.pk == shop.pk and locked.open
            locked.name = name
            locked.save()
        assert Place.objects.get(pk=shop.pk).name == name
    with (
        pytest.raises(InvariantViolation) as refused,
        perform(JOB, "writepaths.rename_shop", shop) as locked,
    ):
        locked.name = ""
        locked.save()
    assert refused.value.decision.rule == "named"
    assert Place.objects.get(pk=shop.pk).name == "bakery"


def test_a_child_row_gone_before_the_lock_raises_the_models_own_error(rename_shop: Action) -> None:
    # A child model takes the ORM's way to its row: a row gone is the same error there.
    shop = Shop.objects.create(name="corner")
    Place.objects.filter(pk=shop.pk).delete()
    with (
        pytest.raises(Shop.DoesNotExist, match=r"^Shop matching query does not exist\.$"),
        perform(JOB, "writepaths.rename_shop", shop),
    ):
        pass


# -- another database --------------------------------------------------------------------------


@pytest.mark.django_db(databases=["default", "other"])
def test_perform_reads_and_locks_the_row_in_the_objects_own_database(
    rename_shop: Action, statements: dict[Any, Any], alice: User, bob: User
) -> None:
    # The same primary keys in two databases, with different contents: perform() must read,
    # decide on and re-check the object's own row, never the default database's.
    here = Tenant.objects.create(name="Acme")
    there = Tenant.objects.using("other").create(pk=here.pk, name="Acme")
    User.objects.using("other").create(pk=alice.pk, username="alice")
    User.objects.using("other").create(pk=bob.pk, username="bob")
    Membership.objects.using("other").create(user_id=alice.pk, tenant=there)
    local = Document.objects.create(tenant=here, owner=bob, state="draft", amount=Decimal("1"))
    remote = Document.objects.using("other").create(
        pk=local.pk, tenant=there, owner_id=bob.pk, state="submitted", amount=Decimal("50000")
    )
    with pytest.raises(InvariantViolation) as refused, perform(alice, "testapp.approve", remote):
        pass  # the remote row's amount is over the limit: the local one is not
    assert refused.value.decision.rule == "within_limit"
    remote.amount = Decimal("100")
    remote.save()
    with perform(alice, "testapp.approve", remote) as locked:
        assert locked._state.db == "other" and locked.amount == Decimal("100")
        approve(locked)
    assert Document.objects.using("other").get(pk=remote.pk).state == "approved"
    assert Document.objects.get(pk=local.pk).state == "draft"

    # A child model takes the ORM's way (no compiled statement): the same holds there.
    Shop.objects.create(pk=7, name="here")
    shop = Shop.objects.using("other").create(pk=7, name="there", open=True)
    with perform(JOB, "writepaths.rename_shop", shop) as locked:
        assert locked._state.db == "other" and locked.name == "there"
    with (
        pytest.raises(InvariantViolation) as refused,
        perform(JOB, "writepaths.rename_shop", shop) as locked,
    ):
        locked.open = False  # breaks the action's invariant in "other" only
        locked.save()
    assert refused.value.decision.rule == "stays_open"
    assert Shop.objects.using("other").get(pk=7).open
    assert Shop.objects.get(pk=7).name == "here"


# -- the re-check's trace ----------------------------------------------------------------------


def test_the_re_check_leaves_a_full_trace_entry_per_invariant(
    alice: User, bob: User, make_doc: Any, clearance_decisions: list[Decision]
) -> None:
    with perform(alice, "testapp.approve", make_doc(owner=bob)) as locked:
        approve(locked)
    final = clearance_decisions[-1]
    before, after = final.trace[-2], final.trace[-1]
    assert before.rule == after.rule == "within_limit"
    assert after.layer is Layer.INVARIANT and after.outcome is True and after.error is None
    assert after.reason == "Documents above 10,000 can never be approved."
    assert after.expression == before.expression and after.expression
    assert 0 <= after.duration < 1.0


def test_a_re_check_that_raises_leaves_its_error_in_the_trace(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    @predicate
    def broken(ctx: Any) -> bool:
        if ctx.obj.state == "approved":
            raise RuntimeError("boom")
        return True

    fresh_registry.get("testapp.approve").invariant("after_the_body", broken, reason="Balanced.")
    with (
        pytest.raises(InvariantViolation) as caught,
        perform(alice, "testapp.approve", make_doc(owner=bob)) as locked,
    ):
        approve(locked)
    last = caught.value.decision.trace[-1]
    assert last.layer is Layer.INVARIANT and last.rule == "after_the_body"
    assert last.outcome is False and last.error == "RuntimeError: boom"
    assert last.reason == "could not be decided: rule after_the_body raised RuntimeError"
    assert 0 <= last.duration < 1.0


# -- PostgreSQL: the parent's row is locked too ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_perform_on_a_child_model_locks_the_parents_row(rename_shop: Action) -> None:
    # A child's columns live in two tables. Locking only the child's row would let another
    # transaction change the parent's columns (the shop's name) under the body's feet.
    import threading

    from django.db import OperationalError, connection

    shop = Shop.objects.create(name="corner")
    outcome: list[str] = []

    def rename_elsewhere() -> None:
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '300ms'")
                cursor.execute(
                    f"UPDATE {Place._meta.db_table} SET name = 'elsewhere' WHERE id = %s",
                    [shop.pk],
                )
            outcome.append("updated")
        except OperationalError as exc:
            outcome.append(f"blocked: {type(exc).__name__}")
        finally:
            other.close()

    with perform(JOB, "writepaths.rename_shop", shop) as locked:
        thread = threading.Thread(target=rename_elsewhere)
        thread.start()
        thread.join(timeout=30)
        locked.name = "deli"
        locked.save()
    assert outcome == ["blocked: OperationalError"], outcome
    assert connection.vendor == "postgresql"
    assert Place.objects.get(pk=shop.pk).name == "deli"
