"""GuardedQuerySet: bulk writes keep the model invariants, or change nothing."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearance import (
    BulkInvariantViolation,
    GuardedQuerySet,
    InvariantViolation,
    model_invariant,
    predicate,
    where,
)
from tests.testapp.models import Document, Tenant

pytestmark = pytest.mark.django_db


def guarded() -> GuardedQuerySet[Document]:
    """Document rows through a guarded queryset (as ``objects = GuardedQuerySet.as_manager()``)."""
    return GuardedQuerySet(model=Document)


def amounts() -> list[Decimal]:
    return list(Document.objects.order_by("pk").values_list("amount", flat=True))


@pytest.fixture
def docs(make_doc: Any) -> list[Document]:
    return [make_doc(amount=Decimal(a), title=f"d{a}") for a in ("1", "5", "9")]


# -- update -------------------------------------------------------------------------------------


def test_update_that_breaks_an_invariant_raises_and_changes_nothing(
    positive: Any, docs: list[Document]
) -> None:
    before = amounts()
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(amount=F("amount") - 5)
    error = caught.value
    assert isinstance(error, InvariantViolation)
    assert error.decision.rule == "positive_amount"
    assert set(error.pks) == {docs[0].pk, docs[1].pk}
    assert error.violations == {"positive_amount": sorted([docs[0].pk, docs[1].pk])}
    assert "2 rows" in error.decision.reason
    # Rolled back to its own savepoint: the caller's transaction goes on.
    assert amounts() == before


def test_update_that_keeps_the_invariants_succeeds(positive: Any, docs: list[Document]) -> None:
    assert guarded().filter(amount__gte=5).update(amount=F("amount") + 1) == 2
    assert amounts() == [Decimal("1"), Decimal("6"), Decimal("10")]


def test_update_without_invariants_is_a_plain_update(fresh_registry: Any, make_doc: Any) -> None:
    make_doc(amount=Decimal("1"))
    with CaptureQueriesContext(connection) as queries:
        assert guarded().update(amount=-1) == 1
    assert len(queries) == 1


def test_where_invariants_are_verified_with_one_query_per_chunk(
    fresh_registry: Any, make_doc: Any
) -> None:
    model_invariant(Document, "positive_amount", where(amount__gt=0))
    model_invariant(Document, "not_archived", ~where(state="archived"))

    def count_queries(n: int) -> int:
        Document.objects.all().delete()
        for _ in range(n):
            make_doc(amount=Decimal("1"))
        with CaptureQueriesContext(connection) as queries:
            guarded().update(amount=2)
        return len(queries)

    assert count_queries(2) == count_queries(40)


def test_rows_are_verified_in_chunks(positive: Any, make_doc: Any) -> None:
    for i in range(7):
        make_doc(amount=Decimal(i + 1))
    queryset = guarded()
    queryset.guard_chunk_size = 2
    with pytest.raises(BulkInvariantViolation) as caught:
        queryset.update(amount=F("amount") - 6)
    assert caught.value.decision.rule == "positive_amount"
    assert len(caught.value.pks) == 6  # every offending row, across four chunks
    assert amounts() == [Decimal(i + 1) for i in range(7)]


def test_python_invariant_is_checked_row_by_row(fresh_registry: Any, docs: list[Document]) -> None:
    @predicate
    def short_title(ctx: Any) -> bool:
        return len(ctx.obj.title) <= 3

    model_invariant(Document, "short_title", short_title | where(state="long"))
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().filter(pk=docs[1].pk).update(title="too long")
    assert caught.value.decision.rule == "short_title"
    assert caught.value.pks == (docs[1].pk,)
    assert caught.value.decision.resource is not None
    assert caught.value.decision.resource.pk == docs[1].pk
    guarded().filter(pk=docs[1].pk).update(title="too long", state="long")
    assert Document.objects.get(pk=docs[1].pk).title == "too long"


def test_an_update_of_a_distinct_or_combined_queryset_writes_and_verifies_its_rows(
    positive: Any, docs: list[Document]
) -> None:
    # PostgreSQL cannot lock the rows of a DISTINCT or UNION query: they are locked by key.
    joined = guarded().filter(tenant__documents__amount__gt=0).distinct()
    assert joined.update(amount=F("amount") + 1) == 3
    both = guarded().filter(pk=docs[0].pk).union(guarded().filter(pk=docs[2].pk))
    with pytest.raises(BulkInvariantViolation) as refused:
        both.update(amount=F("amount") - 5)
    assert refused.value.pks == (docs[0].pk,)
    assert both.update(amount=F("amount") + 1) == 2
    assert amounts() == [Decimal("3"), Decimal("6"), Decimal("11")]


def test_an_update_of_a_queryset_with_extra_columns_writes_its_own_rows(
    positive: Any, docs: list[Document]
) -> None:
    # A legacy extra() column comes before the model's own in the rows Django reads.
    extra = guarded().extra(select={"one": "1"})
    assert extra.filter(amount__gt=2).update(amount=F("amount") + 1) == 2
    with pytest.raises(BulkInvariantViolation) as refused:
        extra.filter(amount__gt=2).update(amount=0)
    assert refused.value.pks == (docs[1].pk, docs[2].pk)
    assert amounts() == [Decimal("1"), Decimal("6"), Decimal("10")]
    # The same under DISTINCT, whose rows are locked by key: the keys are read, not the column.
    assert extra.filter(amount__gt=2).distinct().update(amount=F("amount") + 1) == 2
    assert amounts() == [Decimal("1"), Decimal("7"), Decimal("11")]


def test_update_nested_in_a_caller_transaction(positive: Any, docs: list[Document]) -> None:
    with transaction.atomic():
        guarded().filter(pk=docs[2].pk).update(amount=100)
        with pytest.raises(BulkInvariantViolation) as refused:
            guarded().update(amount=0)
        assert refused.value.decision.rule == "positive_amount"
        # Only the refused write was undone.
        assert amounts() == [Decimal("1"), Decimal("5"), Decimal("100")]


# -- delete -------------------------------------------------------------------------------------


@pytest.fixture
def archived_kept(fresh_registry: Any) -> Any:
    return model_invariant(Document, "archived_kept", ~where(state="archived"), on=("delete",))


def test_delete_that_breaks_an_invariant_raises_and_deletes_nothing(
    archived_kept: Any, make_doc: Any
) -> None:
    draft = make_doc(state="draft")
    archived = make_doc(state="archived")
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().delete()
    assert caught.value.decision.rule == "archived_kept"
    assert caught.value.pks == (archived.pk,)
    assert caught.value.decision.action == "testapp.Document.delete"
    assert set(Document.objects.values_list("pk", flat=True)) == {draft.pk, archived.pk}


def test_delete_that_keeps_the_invariants_succeeds(archived_kept: Any, make_doc: Any) -> None:
    make_doc(state="draft")
    archived = make_doc(state="archived")
    _deleted, per_model = guarded().exclude(state="archived").delete()
    assert per_model["testapp.Document"] == 1
    assert list(Document.objects.values_list("pk", flat=True)) == [archived.pk]


# -- bulk_create --------------------------------------------------------------------------------


def test_bulk_create_that_breaks_an_invariant_raises_and_creates_nothing(
    positive: Any, tenant: Tenant
) -> None:
    rows = [Document(tenant=tenant, amount=Decimal(a)) for a in ("3", "-1", "4")]
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_create(rows)
    assert caught.value.decision.rule == "positive_amount"
    assert len(caught.value.pks) == 1
    assert not Document.objects.exists()


def test_bulk_create_that_keeps_the_invariants_succeeds(positive: Any, tenant: Tenant) -> None:
    created = guarded().bulk_create(
        [Document(tenant=tenant, amount=Decimal(a)) for a in ("3", "4")]
    )
    assert len(created) == 2
    assert amounts() == [Decimal("3"), Decimal("4")]


def test_bulk_create_ignoring_conflicts_checks_the_objects(positive: Any, tenant: Tenant) -> None:
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().bulk_create([Document(tenant=tenant, amount=0)], ignore_conflicts=True)
    assert refused.value.decision.rule == "positive_amount"
    assert not Document.objects.exists()


def test_bulk_create_ignoring_conflicts_names_only_the_invariant_the_objects_break(
    positive: Any, tenant: Tenant
) -> None:
    model_invariant(Document, "titled", where(title__gt=""), reason="Documents have a title.")
    good = Document(tenant=tenant, amount=5, title="a")
    bad = Document(tenant=tenant, amount=0, title="b")
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().bulk_create([good, bad], ignore_conflicts=True)
    # The database did not say which rows it wrote: the objects are listed without a key.
    assert refused.value.violations == {"positive_amount": [None]}
    decision = refused.value.decision
    assert (decision.rule, decision.action) == ("positive_amount", "testapp.Document.save")
    assert [(t.rule, t.outcome) for t in decision.trace] == [("positive_amount", False)]
    assert not Document.objects.exists()


def test_bulk_create_is_guarded_by_an_invariant_that_binds_saves_only(
    fresh_registry: Any, tenant: Tenant
) -> None:
    model_invariant(
        Document,
        "positive_on_save",
        where(amount__gt=0),
        reason="Saved amounts stay positive.",
        on=("save",),
    )
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_create([Document(tenant=tenant, amount=Decimal("-1"))])
    assert caught.value.decision.rule == "positive_on_save"
    assert not Document.objects.exists()


# -- bulk_update --------------------------------------------------------------------------------


def test_bulk_update_that_breaks_an_invariant_raises_and_changes_nothing(
    positive: Any, docs: list[Document]
) -> None:
    docs[0].amount = Decimal("50")
    docs[2].amount = Decimal("-50")
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_update(docs, ["amount"])
    assert caught.value.decision.rule == "positive_amount"
    assert caught.value.pks == (docs[2].pk,)
    assert amounts() == [Decimal("1"), Decimal("5"), Decimal("9")]


def test_bulk_update_that_keeps_the_invariants_succeeds(
    positive: Any, docs: list[Document]
) -> None:
    for doc in docs:
        doc.amount += 1
    assert guarded().bulk_update(docs, ["amount"]) == 3
    assert amounts() == [Decimal("2"), Decimal("6"), Decimal("10")]


@pytest.fixture
def parent_live(fresh_registry: Any) -> Any:
    """A model invariant a predicate decides by reading the parent row in Python: no relation
    tells that a child reads its parent."""

    @predicate
    def live(ctx: Any) -> bool:
        return ctx.obj.parent is None or ctx.obj.parent.state != "archived"

    return model_invariant(
        Document, "parent_not_archived", live, reason="A document's parent is live."
    )


def test_bulk_update_in_batches_is_verified_once_every_batch_is_written(
    parent_live: Any, make_doc: Any
) -> None:
    parent = make_doc(state="draft")
    child = make_doc(state="draft", parent=parent)
    child.state = "submitted"
    parent.state = "archived"
    # The child's batch is written first, and holds until the parent's batch archives it.
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_update([child, parent], ["state"], batch_size=1)
    assert caught.value.decision.rule == "parent_not_archived"
    assert caught.value.pks == (child.pk,)
    assert list(Document.objects.order_by("pk").values_list("state", flat=True)) == [
        "draft",
        "draft",
    ]


# -- async ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_async_bulk_writes_are_guarded_too(positive: Any, tenant: Tenant) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        await sync_to_async(Document.objects.create)(tenant=tenant, amount=Decimal("2"))
        with pytest.raises(BulkInvariantViolation) as refused:
            await guarded().aupdate(amount=0)
        assert refused.value.decision.rule == "positive_amount"
        assert await guarded().aupdate(amount=3) == 1
        assert [d.amount async for d in Document.objects.all()] == [Decimal("3")]
    finally:
        await sync_to_async(connections.close_all)()


# -- the law ------------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    start=st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=8),
    delta=st.integers(min_value=-25, max_value=5),
    threshold=st.integers(min_value=0, max_value=25),
)
def test_a_guarded_update_applies_fully_or_not_at_all(
    positive: Any, tenant: Tenant, start: list[int], delta: int, threshold: int
) -> None:
    """For any rows and any update: either every row keeps the invariant, or nothing changed."""
    with transaction.atomic():
        Document.objects.bulk_create([Document(tenant=tenant, amount=Decimal(a)) for a in start])
        expected_ok = all(a + delta > 0 for a in start if a >= threshold)
        try:
            guarded().filter(amount__gte=threshold).update(amount=F("amount") + delta)
        except BulkInvariantViolation as error:
            assert not expected_ok
            offenders = Document.objects.filter(pk__in=error.pks)
            assert all(a + delta <= 0 for a in offenders.values_list("amount", flat=True))
            assert sorted(amounts()) == sorted(Decimal(a) for a in start)
        else:
            assert expected_ok
            assert sorted(amounts()) == sorted(
                Decimal(a + delta if a >= threshold else a) for a in start
            )
        transaction.set_rollback(True)


# -- chunks and batches -------------------------------------------------------------------------


def document_queries(queries: CaptureQueriesContext, verb: str) -> list[str]:
    table = Document._meta.db_table
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(verb) and table in q["sql"]
    ]


def test_an_update_in_several_chunks_counts_every_row(positive: Any, make_doc: Any) -> None:
    for i in range(5):
        make_doc(amount=Decimal(i + 1))
    queryset = guarded()
    queryset.guard_chunk_size = 2
    with CaptureQueriesContext(connection) as queries:
        assert queryset.update(amount=F("amount") + 1) == 5
    assert len(document_queries(queries, "UPDATE")) == 3
    # The rows are read once to lock them, then verified in three chunks.
    assert len(document_queries(queries, "SELECT")) == 1 + 3
    assert amounts() == [Decimal(i + 2) for i in range(5)]


def test_a_bulk_update_verifies_the_rows_again_in_chunks(positive: Any, make_doc: Any) -> None:
    rows = [make_doc(amount=Decimal(i + 1)) for i in range(5)]
    for row in rows:
        row.amount += 1
    queryset = guarded()
    queryset.guard_chunk_size = 2
    with CaptureQueriesContext(connection) as queries:
        assert queryset.bulk_update(rows, ["amount"]) == 5
    # One UPDATE through a queryset of Django's own (its rows locked, then verified in one
    # chunk: the default size), then every row again, in chunks of 2, once the write is done.
    assert len(document_queries(queries, "UPDATE")) == 1
    selects = document_queries(queries, "SELECT")
    assert len(selects) == 1 + 1 + 3, selects
    chunks = [re.search(r" IN \(([^)]*)\)", sql) for sql in selects[2:]]
    assert [len(m.group(1).split(",")) if m else 0 for m in chunks] == [2, 2, 1]
    assert amounts() == [Decimal(i + 2) for i in range(5)]


def test_a_delete_verifies_the_rows_in_chunks(archived_kept: Any, make_doc: Any) -> None:
    for _ in range(5):
        make_doc(state="draft")
    queryset = guarded()
    queryset.guard_chunk_size = 2
    with CaptureQueriesContext(connection) as queries:
        queryset.delete()
    verifications = [sql for sql in document_queries(queries, "SELECT") if "archived" in sql]
    assert len(verifications) == 3
    assert not Document.objects.exists()


def test_bulk_create_verifies_the_rows_in_chunks_and_inserts_in_batches(
    positive: Any, tenant: Tenant
) -> None:
    queryset = guarded()
    queryset.guard_chunk_size = 2
    rows = [Document(tenant=tenant, amount=Decimal(a)) for a in ("1", "2", "3")]
    with CaptureQueriesContext(connection) as queries:
        assert len(queryset.bulk_create(rows, batch_size=1)) == 3
    assert len(document_queries(queries, "INSERT")) == 3
    assert len(document_queries(queries, "SELECT")) == 2
    assert amounts() == [Decimal("1"), Decimal("2"), Decimal("3")]


def test_bulk_update_writes_in_the_batches_asked_for(positive: Any, docs: list[Document]) -> None:
    for doc in docs:
        doc.amount += 1
    with CaptureQueriesContext(connection) as queries:
        assert guarded().bulk_update(docs, ["amount"], batch_size=1) == 3
    assert len(document_queries(queries, "UPDATE")) == 3
    assert amounts() == [Decimal("2"), Decimal("6"), Decimal("10")]


# -- another database ---------------------------------------------------------------------------


def amounts_in(db: str) -> list[Decimal]:
    return list(Document.objects.using(db).order_by("pk").values_list("amount", flat=True))


@pytest.fixture
def elsewhere(positive: Any, make_doc: Any) -> list[Document]:
    # The same primary keys in both databases, and only the second one's rows are written.
    here = [make_doc(amount=Decimal("50")) for _ in range(3)]
    there = Tenant.objects.using("other").create(pk=here[0].tenant_id, name="Acme")
    return [
        Document.objects.using("other").create(pk=doc.pk, tenant=there, amount=Decimal(a))
        for doc, a in zip(here, ("1", "5", "9"), strict=True)
    ]


@pytest.mark.django_db(databases=["default", "other"])
def test_an_update_on_another_database_is_verified_and_undone_there(
    elsewhere: list[Document],
) -> None:
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().using("other").update(amount=F("amount") - 5)
    assert refused.value.pks == (elsewhere[0].pk, elsewhere[1].pk)
    assert amounts_in("other") == [Decimal("1"), Decimal("5"), Decimal("9")]
    assert guarded().using("other").filter(amount__gt=1).update(amount=F("amount") + 1) == 2
    assert amounts_in("other") == [Decimal("1"), Decimal("6"), Decimal("10")]
    assert amounts_in("default") == [Decimal("50")] * 3


@pytest.mark.django_db(databases=["default", "other"])
def test_a_delete_on_another_database_is_verified_there(
    archived_kept: Any, elsewhere: list[Document]
) -> None:
    Document.objects.using("other").filter(pk=elsewhere[1].pk).update(state="archived")
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().using("other").delete()
    assert refused.value.pks == (elsewhere[1].pk,)
    assert len(amounts_in("other")) == 3
    guarded().using("other").exclude(state="archived").delete()
    assert amounts_in("other") == [Decimal("5")]
    assert len(amounts_in("default")) == 3


@pytest.mark.django_db(databases=["default", "other"])
def test_bulk_create_on_another_database_is_verified_and_undone_there(
    elsewhere: list[Document],
) -> None:
    there = elsewhere[0].tenant
    rows = [Document(tenant=there, amount=Decimal(a)) for a in ("3", "-1")]
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().using("other").bulk_create(rows)
    assert refused.value.decision.rule == "positive_amount"
    assert len(amounts_in("other")) == 3
    assert len(amounts_in("default")) == 3


@pytest.mark.django_db(databases=["default", "other"])
def test_bulk_update_on_another_database_is_verified_and_undone_there(
    elsewhere: list[Document],
) -> None:
    elsewhere[0].amount = Decimal("70")
    elsewhere[2].amount = Decimal("-1")
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().using("other").bulk_update(elsewhere, ["amount"])
    assert refused.value.pks == (elsewhere[2].pk,)
    # The caller's transaction on that database goes on.
    assert amounts_in("other") == [Decimal("1"), Decimal("5"), Decimal("9")]


@pytest.mark.django_db(databases=["default", "other"])
def test_a_distinct_update_on_another_database_locks_and_writes_its_rows_there(
    positive: Any,
) -> None:
    # The rows of a DISTINCT query are locked by key: the keys are looked up where they are.
    there = Tenant.objects.using("other").create(name="Acme")
    for amount in ("1", "5"):
        Document.objects.using("other").create(tenant=there, amount=Decimal(amount))
    distinct = guarded().using("other").filter(tenant__documents__amount__gt=0).distinct()
    assert distinct.update(amount=F("amount") + 1) == 2
    with pytest.raises(BulkInvariantViolation) as refused:
        distinct.update(amount=F("amount") - 3)
    assert len(refused.value.pks) == 1
    assert amounts_in("other") == [Decimal("2"), Decimal("6")]


@pytest.mark.django_db(databases=["default", "other"])
def test_bulk_update_in_batches_on_another_database_is_verified_there_once_all_are_written(
    parent_live: Any,
) -> None:
    # As test_bulk_update_in_batches_is_verified_once_every_batch_is_written, with the rows in
    # "other" only: the last verification (no batch's own catches it) reads them there.
    there = Tenant.objects.using("other").create(name="Acme")
    parent = Document.objects.using("other").create(tenant=there, state="draft")
    child = Document.objects.using("other").create(tenant=there, state="draft", parent=parent)
    child.state, parent.state = "submitted", "archived"
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().using("other").bulk_update([child, parent], ["state"], batch_size=1)
    assert caught.value.pks == (child.pk,)
    states = Document.objects.using("other").order_by("pk").values_list("state", flat=True)
    assert list(states) == ["draft", "draft"]


@pytest.mark.django_db(databases=["default", "other"])
def test_a_delete_on_another_database_refused_by_a_cascade_leaves_the_transaction_usable(
    archived_kept: Any, elsewhere: list[Document]
) -> None:
    model_invariant(Tenant, "named_kept", ~where(name="kept"), on=("delete",))
    Document.objects.using("other").filter(pk=elsewhere[1].pk).update(state="archived")
    tenants = GuardedQuerySet(model=Tenant).using("other")
    with pytest.raises(InvariantViolation) as refused:
        tenants.delete()  # the tenant may go, its archived document may not
    assert refused.value.decision.rule == "archived_kept"
    assert Tenant.objects.using("other").count() == 1
    assert len(amounts_in("other")) == 3


# -- which rows a refusal names -----------------------------------------------------------------


def test_bulk_create_ignoring_conflicts_names_the_objects_given_keys(
    positive: Any, tenant: Tenant
) -> None:
    good = Document(pk=41, tenant=tenant, amount=5)
    bad = Document(pk=42, tenant=tenant, amount=0)
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().bulk_create([good, bad], ignore_conflicts=True)
    assert refused.value.violations == {"positive_amount": [42]}
    assert not Document.objects.exists()


def test_bulk_create_on_a_database_that_returns_no_keys_checks_the_objects(
    positive: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on MySQL: the inserted rows come back without their primary keys.
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    rows = [Document(tenant=tenant, amount=Decimal(a)) for a in ("3", "0")]
    with pytest.raises(BulkInvariantViolation) as refused:
        guarded().bulk_create(rows)
    assert refused.value.violations == {"positive_amount": [None]}
    assert not Document.objects.exists()
    created = guarded().bulk_create([Document(tenant=tenant, amount=Decimal("3"))])
    assert created[0].pk is None
    assert amounts() == [Decimal("3")]
