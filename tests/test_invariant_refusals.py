"""What a refused write says: its message, rows, trace, actor, request, time and fingerprint."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import connection, connections
from django.db.models import F
from django.test import RequestFactory, override_settings
from django.utils import timezone

from clearance import (
    ACTOR,
    CTX,
    BulkInvariantViolation,
    GuardedQuerySet,
    InvariantViolation,
    model_invariant,
    predicate,
    where,
)
from clearance.invariants import acting, as_stored, check_instance, verify_rows
from clearance.request_context import current_request
from clearance.signals import decision_made
from clearance.testing import DecisionLog
from tests.testapp.models import Document, Membership, Tenant
from tests.writepaths.models import Account, Price, Project, Seat

pytestmark = pytest.mark.django_db


def guarded() -> GuardedQuerySet[Document]:
    return GuardedQuerySet(model=Document)


@pytest.fixture
def exploding(fresh_registry: Any) -> Any:
    @predicate
    def explodes(ctx: Any) -> bool:
        raise RuntimeError("boom")

    return model_invariant(Document, "explodes", explodes, reason="Never shown.")


def docs_with_ids(tenant: Tenant, ids: range, amount: str = "1") -> None:
    Document.objects.bulk_create(
        Document(id=i, tenant=tenant, amount=Decimal(amount), title=f"d{i}") for i in ids
    )


# -- the message of a bulk refusal ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "listed", "more"),
    [
        (range(95, 105), range(95, 105), ""),
        (range(95, 106), range(95, 105), " and 1 more"),
        (range(95, 107), range(95, 105), " and 2 more"),
    ],
)
def test_a_bulk_refusal_names_the_first_ten_rows_in_key_order_and_counts_the_rest(
    positive: Any, tenant: Tenant, ids: range, listed: range, more: str
) -> None:
    docs_with_ids(tenant, ids)
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(amount=0)
    decision = caught.value.decision
    shown = ", ".join(str(i) for i in listed)
    assert decision.reason == f"Amounts stay positive. ({len(ids)} rows: {shown}{more})"
    # Keys in numeric order (99 before 100), not in text order.
    assert caught.value.violations == {"positive_amount": list(ids)}
    assert caught.value.pks == tuple(ids)
    # Many rows: the decision is about none of them in particular.
    assert decision.resource is not None and decision.resource.pk is None
    assert decision.allowed is False


def test_rows_a_bulk_insert_could_not_identify_come_first_as_none(
    positive: Any, tenant: Tenant
) -> None:
    objs = [
        Document(id=1000, tenant=tenant, amount=Decimal("-1")),
        Document(tenant=tenant, amount=Decimal("-2")),
        Document(id=999, tenant=tenant, amount=Decimal("-3")),
    ]
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_create(objs, ignore_conflicts=True)
    assert caught.value.violations == {"positive_amount": [None, 999, 1000]}
    assert caught.value.decision.reason == "Amounts stay positive. (3 rows: None, 999, 1000)"
    assert not Document.objects.exists()


def test_a_bulk_refusal_whose_rule_raised_says_so(fresh_registry: Any, tenant: Tenant) -> None:
    model_invariant(Document, "titled_for_the_caller", where(title=CTX.missing), reason="No.")
    docs_with_ids(tenant, range(1, 3))
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(title="x")
    decision = caught.value.decision
    assert decision.error is not None and decision.error.startswith("LookupError: CTX.missing")
    assert decision.reason == (
        "could not be decided: rule titled_for_the_caller raised LookupError (2 rows: 1, 2)"
    )


def test_the_trace_of_a_bulk_refusal_takes_no_time_it_did_not_measure(
    positive: Any, tenant: Tenant
) -> None:
    model_invariant(Document, "not_archived", ~where(state="archived"), reason="Kept.")
    docs_with_ids(tenant, range(1, 3))
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(amount=F("amount") - 1)
    trace = caught.value.decision.trace
    assert [(e.rule, e.outcome) for e in trace] == [
        ("positive_amount", False),
        ("not_archived", True),
    ]
    assert [e.duration for e in trace] == [0.0, 0.0]


def test_a_bulk_insert_refused_row_by_row_traces_the_broken_invariants(
    positive: Any, tenant: Tenant
) -> None:
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_create(
            [Document(tenant=tenant, amount=Decimal("-1"))], ignore_conflicts=True
        )
    [entry] = caught.value.decision.trace
    assert (entry.rule, entry.outcome, entry.reason, entry.expression, entry.duration) == (
        "positive_amount",
        False,
        "",
        "",
        0.0,
    )


# -- one instance ---------------------------------------------------------------------------------


def test_check_instance_decides_the_save_invariants_by_default(
    positive: Any, make_doc: Any
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-1")
    with pytest.raises(InvariantViolation) as caught:
        check_instance(doc)
    assert caught.value.decision.rule == "positive_amount"


def test_a_refusal_says_when_and_under_which_rule_set(
    positive: Any, make_doc: Any, clearance_decisions: DecisionLog
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-1")
    before = timezone.now()
    with pytest.raises(InvariantViolation) as caught:
        doc.save()
    decision = caught.value.decision
    assert decision.at is not None and before <= decision.at <= timezone.now()
    assert decision.resource is not None and decision.resource.model == "testapp.Document"
    assert isinstance(decision.fingerprint, str) and len(decision.fingerprint) == 16
    assert clearance_decisions.denied == [decision]


def test_a_rule_that_raises_refuses_the_instance_and_says_it_could_not_decide(
    positive: Any, make_doc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    doc = make_doc(amount=Decimal("5"))

    @predicate
    def explodes(ctx: Any) -> bool:
        raise RuntimeError("boom")

    model_invariant(Document, "explodes", explodes, reason="Never shown.")
    with (
        caplog.at_level(logging.ERROR, logger="clearance"),
        pytest.raises(InvariantViolation) as caught,
    ):
        check_instance(doc)
    decision = caught.value.decision
    assert decision.rule == "explodes"
    assert decision.error == "RuntimeError: boom"
    assert decision.reason == "could not be decided: rule explodes raised RuntimeError"
    held, failed = decision.trace
    assert (held.rule, held.outcome, held.reason, held.error) == (
        "positive_amount",
        True,
        "Amounts stay positive.",
        None,
    )
    assert (failed.rule, failed.outcome, failed.reason, failed.error) == (
        "explodes",
        False,
        "could not be decided: rule explodes raised RuntimeError",
        "RuntimeError: boom",
    )
    # Durations are measured, and small.
    assert all(0.0 <= entry.duration < 5.0 for entry in decision.trace)
    [record] = [r for r in caplog.records if r.name == "clearance"]
    assert record.getMessage() == "Model invariant invariant.explodes raised; refusing the write"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_an_invariant_whose_filter_cannot_be_built_refuses_a_bulk_write_and_says_so(
    positive: Any, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    # CTX.limit has no value in a write: the rows cannot be asked about, so none is written.
    model_invariant(Document, "under_limit", where(amount__lte=CTX.limit), reason="Capped.")
    docs_with_ids(tenant, range(1, 3))
    with (
        caplog.at_level(logging.ERROR, logger="clearance"),
        pytest.raises(BulkInvariantViolation) as caught,
    ):
        guarded().update(amount=2)
    # The refusal names the invariant that could not be decided, not the first one declared.
    assert caught.value.decision.rule == "under_limit"
    assert caught.value.violations == {"under_limit": [1, 2]}
    assert caught.value.decision.error is not None and "CTX.limit" in caught.value.decision.error
    [record] = [r for r in caplog.records if r.name == "clearance"]
    assert record.getMessage() == "A model invariant of testapp.Document raised; refusing the write"
    assert record.exc_info is not None and isinstance(record.exc_info[1], LookupError)
    assert set(Document.objects.values_list("amount", flat=True)) != {Decimal("2")}
    # With RAISE_RULE_ERRORS (while developing), the rule's own error comes out, and nothing
    # is written either.
    with (
        override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True}),
        pytest.raises(LookupError, match=r"CTX\.limit has no value"),
    ):
        guarded().update(amount=2)
    assert set(Document.objects.values_list("amount", flat=True)) != {Decimal("2")}


# -- the request and the actor --------------------------------------------------------------------


@pytest.fixture
def served(alice: Any) -> Iterator[Any]:
    """A request being served for alice (as the middleware sets it)."""
    request = RequestFactory().post("/documents/")
    request.user = alice
    token = current_request.set(request)
    try:
        yield request
    finally:
        current_request.reset(token)


def test_a_save_refused_while_serving_a_request_names_its_user_and_request(
    positive: Any, make_doc: Any, served: Any
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-1")
    seen: list[Any] = []

    def receiver(sender: Any, decision: Any, request: Any, **kwargs: Any) -> None:
        seen.append(request)

    decision_made.connect(receiver)
    try:
        with pytest.raises(InvariantViolation) as caught:
            doc.save()
    finally:
        decision_made.disconnect(receiver)
    assert caught.value.decision.actor.label == "alice"
    assert seen == [served]


def test_a_request_without_a_user_leaves_the_refusal_unattributed(
    positive: Any, make_doc: Any
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-1")
    token = current_request.set(RequestFactory().post("/hook/"))  # no auth middleware
    try:
        with pytest.raises(InvariantViolation) as caught:
            doc.save()
    finally:
        current_request.reset(token)
    assert caught.value.decision.actor.label == "unattributed"


# -- the rule set's fingerprint -------------------------------------------------------------------


def test_the_fingerprint_changes_with_the_rule_set_and_the_model(
    fresh_registry: Any, make_doc: Any
) -> None:
    def refusal(obj: Any) -> str:
        with pytest.raises(InvariantViolation) as caught:
            obj.save()
        return caught.value.decision.fingerprint

    never_closed = ~where(state="closed")
    model_invariant(Account, "never_closed", never_closed)
    model_invariant(Project, "never_closed", never_closed)
    account = Account.objects.create()
    project = Project.objects.create()
    account.state = project.state = "closed"
    first = refusal(account)
    assert refusal(account) == first
    # The same rule on another model is another rule set.
    assert refusal(project) != first
    model_invariant(Account, "never_negative", where(balance__gte=0))
    assert refusal(account) != first


def test_the_fingerprint_of_a_rule_set_is_stable(fresh_registry: Any) -> None:
    # Audit records keep it: the same declarations give the same value, release after release.
    model_invariant(Account, "never_closed", ~where(state="closed"), on=("save", "delete"))
    account = Account.objects.create()
    account.state = "closed"
    with pytest.raises(InvariantViolation) as caught:
        account.save()
    assert caught.value.decision.fingerprint == "0ee4a0f7d81c0739"


# -- the re-check of one row after its write ------------------------------------------------------


def test_a_creation_refused_after_its_write_names_no_row_and_traces_the_error(
    positive: Any, exploding: Any, tenant: Tenant
) -> None:
    with pytest.raises(InvariantViolation) as caught:
        Document.objects.create(tenant=tenant, amount=Decimal("5"))
    decision = caught.value.decision
    assert decision.resource is not None and decision.resource.pk is None
    assert decision.error == "RuntimeError: boom"
    assert [(e.rule, e.outcome, e.error) for e in decision.trace] == [
        ("positive_amount", True, None),
        ("explodes", False, "RuntimeError: boom"),
    ]
    # Decided together on the written row: no time is told per rule.
    assert [e.duration for e in decision.trace] == [0.0, 0.0]
    assert not Document.objects.exists()


def test_a_refused_delete_names_its_row(fresh_registry: Any, make_doc: Any) -> None:
    doc = make_doc(state="archived")
    model_invariant(Document, "archived_kept", ~where(state="archived"), on=("delete",))
    with pytest.raises(InvariantViolation) as caught:
        doc.delete()
    assert caught.value.decision.resource is not None
    assert caught.value.decision.resource.pk == doc.pk


def test_verify_rows_decides_the_save_invariants_by_default(positive: Any, make_doc: Any) -> None:
    doc = make_doc(amount=Decimal("5"))
    Document.objects.filter(pk=doc.pk).update(amount=0)
    with pytest.raises(BulkInvariantViolation) as caught:
        verify_rows(Document, [doc.pk])
    assert caught.value.pks == (doc.pk,)


# -- lookups only the database can decide ---------------------------------------------------------


@pytest.fixture
def this_century(positive: Any) -> Any:
    """submitted_at__year is a transform: Python cannot decide it, the database can."""
    return model_invariant(
        Document,
        "this_century",
        where(submitted_at__year__gte=2000),
        reason="Submitted this century.",
    )


def test_a_bulk_insert_decides_a_database_lookup_on_the_values_inserted(
    this_century: Any, tenant: Tenant
) -> None:
    when = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    objs = [Document(tenant=tenant, amount=Decimal("1"), submitted_at=when)]
    guarded().bulk_create(objs, ignore_conflicts=True)
    assert Document.objects.filter(submitted_at=when).count() == 1
    old = [Document(tenant=tenant, amount=Decimal("1"), submitted_at=when.replace(year=1999))]
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().bulk_create(old, ignore_conflicts=True)
    assert caught.value.decision.rule == "this_century"
    assert caught.value.decision.error is None


def test_a_new_row_saved_alone_decides_a_database_lookup_on_its_values(
    this_century: Any, tenant: Tenant
) -> None:
    # A new row has no database yet when it is checked (before its INSERT): the question goes
    # to the one it will be written to, and the row that keeps the invariant is written.
    when = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    Document.objects.create(tenant=tenant, amount=Decimal("1"), submitted_at=when)
    assert Document.objects.filter(submitted_at=when).count() == 1
    # A value not converted yet (text from a form) is asked as the column's type.
    Document.objects.create(tenant=tenant, amount=Decimal("1"), submitted_at="2024-06-01T00:00Z")
    with pytest.raises(InvariantViolation) as caught:
        Document.objects.create(
            tenant=tenant, amount=Decimal("1"), submitted_at=when.replace(year=1999)
        )
    assert caught.value.decision.rule == "this_century"
    assert caught.value.decision.error is None
    # No value: NULL's year is no year; refused as well, still without an error.
    with pytest.raises(InvariantViolation) as caught:
        Document.objects.create(tenant=tenant, amount=Decimal("1"), submitted_at=None)
    assert caught.value.decision.error is None
    assert Document.objects.count() == 2


# -- the context of the check ---------------------------------------------------------------------


def test_a_bulk_update_decides_invariants_that_read_the_time(
    fresh_registry: Any, tenant: Tenant
) -> None:
    model_invariant(
        Document,
        "not_submitted_in_the_future",
        where(submitted_at__isnull=True) | where(submitted_at__lte=CTX.now),
    )
    docs_with_ids(tenant, range(1, 3))
    past = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    assert guarded().update(submitted_at=past) == 2
    with pytest.raises(BulkInvariantViolation):
        guarded().update(submitted_at=timezone.now() + dt.timedelta(days=1))
    assert set(Document.objects.values_list("submitted_at", flat=True)) == {past}


@pytest.fixture
def not_the_actors(positive: Any) -> Any:
    # With nobody acting, nothing is the actor's: the rule holds for every row.
    return model_invariant(
        Document, "not_the_actors", ~where(owner=ACTOR), reason="Not your own document."
    )


def test_a_rule_that_holds_for_every_row_refuses_none(not_the_actors: Any, tenant: Tenant) -> None:
    docs_with_ids(tenant, range(1, 3))
    assert guarded().update(amount=F("amount") + 1) == 2
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(amount=0)
    assert caught.value.violations == {"positive_amount": [1, 2]}


def test_a_rule_that_fails_every_row_refuses_them_all(fresh_registry: Any, tenant: Tenant) -> None:
    model_invariant(Document, "the_actors", where(owner=ACTOR), reason="Only your own.")
    docs_with_ids(tenant, range(1, 3))
    # No row matched: nothing to refuse.
    assert guarded().filter(title="none").update(amount=2) == 0
    with pytest.raises(BulkInvariantViolation) as caught:
        guarded().update(amount=2)
    assert caught.value.violations == {"the_actors": [1, 2]}


# -- another database -----------------------------------------------------------------------------


class DocumentsElsewhere:
    """Writes of documents go to the "other" database."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "other" if model is Document else None

    db_for_read = db_for_write


@pytest.mark.django_db(databases=["default", "other"])
def test_rows_are_verified_in_the_database_they_were_written_to(positive: Any) -> None:
    tenant = Tenant.objects.using("other").create(name="Elsewhere")
    doc = Document.objects.using("other").create(tenant=tenant, amount=Decimal("5"))
    with pytest.raises(BulkInvariantViolation) as caught:
        GuardedQuerySet(model=Document, using="other").update(amount=0)
    assert caught.value.pks == (doc.pk,)
    assert Document.objects.using("other").get().amount == Decimal("5")


@pytest.mark.django_db(databases=["default", "other"])
def test_rows_are_verified_where_the_router_writes_them(positive: Any, settings: Any) -> None:
    tenant = Tenant.objects.using("other").create(name="Elsewhere")
    doc = Document.objects.using("other").create(tenant=tenant, amount=Decimal("5"))
    Document.objects.using("other").update(amount=0)
    settings.DATABASE_ROUTERS = [f"{__name__}.DocumentsElsewhere"]
    with pytest.raises(BulkInvariantViolation) as caught:
        verify_rows(Document, [doc.pk])
    assert caught.value.pks == (doc.pk,)


# -- decimals as the database stores them ---------------------------------------------------------


@pytest.mark.parametrize("amount", ["5", "5.0", "5.00", "1E+3"])
def test_an_instance_with_nothing_to_round_is_judged_as_itself(make_doc: Any, amount: str) -> None:
    doc = make_doc(amount=Decimal("1"))
    doc.amount = Decimal(amount)
    assert as_stored(doc) is doc


def test_a_half_cent_is_judged_as_the_database_rounds_it(make_doc: Any) -> None:
    doc = make_doc(amount=Decimal("1"))
    doc.amount = Decimal("0.005")
    # PostgreSQL rounds half away from zero, the other backends half to even.
    expected = Decimal("0.01") if connection.vendor == "postgresql" else Decimal("0.00")
    assert as_stored(doc).amount == expected
    doc.save()
    doc.refresh_from_db()
    assert doc.amount == expected


def test_a_new_instance_is_judged_as_it_will_be_stored(positive: Any, tenant: Tenant) -> None:
    with pytest.raises(InvariantViolation):
        Document.objects.create(tenant=tenant, amount=Decimal("0.004"))
    assert as_stored(Document(amount=Decimal("0.004"))).amount == Decimal("0.00")


def test_a_delete_is_judged_on_the_instance_as_it_is_in_memory(
    fresh_registry: Any, make_doc: Any
) -> None:
    doc = make_doc(amount=Decimal("0"))
    model_invariant(Document, "only_empty_deleted", where(amount=0), on=("delete",))
    doc.amount = Decimal("0.004")
    with pytest.raises(InvariantViolation):
        check_instance(doc, "delete")


def test_a_row_refused_by_a_constraint_the_rules_no_longer_ask_for_says_the_database_refused(
    fresh_registry: Any,
) -> None:
    # The CHECK constraint "seated" is stricter than the invariant as declared now.
    model_invariant(
        Seat, "seated", where(org__isnull=False) | where(id__isnull=True), reason="Seated."
    )
    with pytest.raises(BulkInvariantViolation) as caught:
        Seat.objects.bulk_create([Seat(org=None)])
    decision = caught.value.decision
    assert decision.rule == "seated"
    assert decision.reason == "Seated. (refused by the database)"
    assert caught.value.violations == {"seated": []}
    assert not Seat.objects.exists()


def test_an_invariant_on_the_primary_key_is_decided_in_python(
    fresh_registry: Any, make_doc: Any
) -> None:
    first, second = make_doc(), make_doc()
    model_invariant(Document, "first_frozen", ~where(pk=first.pk), reason="The first is frozen.")
    check_instance(second)
    with pytest.raises(InvariantViolation) as caught:
        check_instance(first)
    assert caught.value.decision.reason == "The first is frozen."
    assert caught.value.decision.error is None


def test_a_bulk_refusal_lists_text_keys_in_order(fresh_registry: Any) -> None:
    # Sessions are keyed by text.
    model_invariant(Session, "unexpired", where(expire_date__gt=CTX.now), reason="Unexpired.")
    later = timezone.now() + dt.timedelta(days=1)
    keys = ["carol", "alice", "erin", "bob", "dave"]
    Session.objects.bulk_create(
        Session(session_key=k, session_data="", expire_date=later) for k in keys
    )
    with pytest.raises(BulkInvariantViolation) as caught:
        GuardedQuerySet(model=Session).update(expire_date=timezone.now() - dt.timedelta(days=1))
    assert caught.value.violations == {"unexpired": sorted(keys)}
    assert caught.value.decision.reason == "Unexpired. (5 rows: alice, bob, carol, dave, erin)"


def test_a_guard_reads_the_actors_memberships_as_they_are_now(
    fresh_registry: Any, make_doc: Any, alice: Any, other_tenant: Tenant
) -> None:
    doc = make_doc(tenant=other_tenant)
    model_invariant(
        Document, "members_write", where(tenant__memberships__user=ACTOR), reason="Members only."
    )
    with acting(alice):
        with pytest.raises(InvariantViolation):
            check_instance(doc)
        Membership.objects.create(user=alice, tenant=other_tenant)
        # Not what alice's earlier check saw: she is a member now.
        check_instance(doc)


# -- a primary key that is not the first column, and two decimal columns --------------------------


@pytest.fixture
def priced(fresh_registry: Any) -> Any:
    return model_invariant(Price, "priced", where(amount__gt=0), reason="Prices are positive.")


def test_rows_keyed_by_a_later_column_are_verified_and_named_by_their_key(
    priced: Any,
) -> None:
    Price.objects.bulk_create(
        Price(code=code, label=f"label of {code}", amount=Decimal("1")) for code in ("b", "a")
    )
    with pytest.raises(BulkInvariantViolation) as caught:
        Price.objects.update(amount=0)
    assert caught.value.violations == {"priced": ["a", "b"]}
    assert set(Price.objects.values_list("amount", flat=True)) == {Decimal("1")}


def test_each_decimal_column_is_judged_as_stored(priced: Any) -> None:
    with pytest.raises(InvariantViolation):
        Price.objects.create(code="c", discount=None, amount=Decimal("0.004"))
    assert not Price.objects.exists()


class ShardedDocuments:
    """Documents titled "elsewhere" are written to the "other" database."""

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        instance = hints.get("instance")
        if model is Document and getattr(instance, "title", None) == "elsewhere":
            return "other"
        return None


def half_cent_in(alias: str) -> Decimal:
    """How the database ``alias`` stores Decimal("0.005") in two decimal places."""
    return Decimal("0.01") if connections[alias].vendor == "postgresql" else Decimal("0.00")


@pytest.mark.django_db(databases=["default", "other"])
def test_a_new_instance_is_rounded_as_the_database_it_goes_to_rounds(settings: Any) -> None:
    settings.DATABASE_ROUTERS = [f"{__name__}.ShardedDocuments"]
    here = Document(title="here", amount=Decimal("0.005"))
    elsewhere = Document(title="elsewhere", amount=Decimal("0.005"))
    assert as_stored(here).amount == half_cent_in("default")
    assert as_stored(elsewhere).amount == half_cent_in("other")
