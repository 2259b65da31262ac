"""perform(): atomic, row-locked, re-checked actions; @performs; aperform; system actors."""

from __future__ import annotations

import inspect
import sys
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from clearance import (
    ANYONE,
    Action,
    Decision,
    InvariantViolation,
    Layer,
    PermissionMissing,
    PolicyDenied,
    SystemActor,
    aperform,
    authorize,
    model_invariant,
    perform,
    performs,
    predicate,
    where,
)
from clearance.testing import DecisionLog
from tests.testapp.models import Document, Membership, Note, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(clearance_decisions: DecisionLog) -> DecisionLog:
    """Every decision sent to the audit signal while the test runs."""
    return clearance_decisions


def approve(doc: Document) -> None:
    doc.state = "approved"
    doc.save()


def state(doc: Document) -> str:
    return Document.objects.get(pk=doc.pk).state


# -- the happy path -----------------------------------------------------------------------------


def test_perform_runs_the_body_on_the_locked_row_and_records_it(
    alice: User, bob: User, make_doc: Any, decisions: list[Decision]
) -> None:
    doc = make_doc(owner=bob)
    with perform(alice, "testapp.approve", doc) as locked:
        assert locked.pk == doc.pk and locked is not doc
        approve(locked)
    assert state(doc) == "approved"
    final = decisions[-1]
    assert final.allowed and final.performed is True
    assert final.probe is False  # an attempt: recorded as one, whatever RECORD_PROBES says
    assert final.action == "testapp.approve" and final.actor.label == "alice"
    # The trace shows the gates before the body and the invariants re-checked after it.
    assert [t.rule for t in final.trace][-2:] == ["within_limit", "within_limit"]


def test_the_gates_ask_nothing_beyond_the_lock_query(alice: User, bob: User, make_doc: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    doc = make_doc(owner=bob)
    alice.has_perm("testapp.approve_document")  # Django's permission cache, as in a request
    with CaptureQueriesContext(connection) as queries, perform(alice, "testapp.approve", doc):
        pass
    statements = [q["sql"] for q in queries.captured_queries]
    membership = [sql for sql in statements if "testapp_membership" in sql]
    # The tenant membership is answered inside the statement that locks the row.
    assert len(membership) == 1 and "testapp_document" in membership[0]
    selects = [sql for sql in statements if sql.startswith("SELECT")]
    assert len(selects) == 2  # the lock, and the re-read for the invariant re-check


def test_each_call_reads_its_own_row_and_actor(
    alice: User, bob: User, make_user: Any, make_doc: Any, other_tenant: Tenant
) -> None:
    # The statements perform() runs are compiled once and reused: the answers must not be.
    outsider = make_user("outsider", tenants=(other_tenant,))
    first, second = make_doc(owner=bob), make_doc(owner=bob, amount=Decimal("20000"))
    third = make_doc(owner=bob, amount=Decimal("10000"))
    with perform(alice, "testapp.approve", first) as d:
        approve(d)
    with pytest.raises(PolicyDenied) as caught, perform(outsider, "testapp.approve", third):
        pass
    assert caught.value.decision.rule == "tenant_member"
    with pytest.raises(InvariantViolation) as refused, perform(alice, "testapp.approve", second):
        pass
    assert refused.value.decision.rule == "within_limit"
    with perform(alice, "testapp.approve", third) as d:
        assert d.pk == third.pk and d.amount == Decimal("10000")
        approve(d)
    assert [state(x) for x in (first, second, third)] == ["approved", "submitted", "approved"]


# -- denials before the body --------------------------------------------------------------------


def test_a_denial_means_the_body_never_runs(
    alice: User, make_doc: Any, decisions: list[Decision]
) -> None:
    doc = make_doc(owner=alice)
    ran = False
    with pytest.raises(PolicyDenied) as caught, perform(alice, "testapp.approve", doc):
        ran = True
    assert not ran
    assert caught.value.decision.rule == "four_eyes"
    assert caught.value.decision.performed is False
    assert caught.value.decision.probe is False
    assert decisions[-1] == caught.value.decision
    assert state(doc) == "submitted"


def test_gates_run_on_the_stored_row_not_the_callers_copy(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    Document.objects.filter(pk=doc.pk).update(state="approved")  # doc in memory is stale
    assert authorize(alice, "testapp.approve", doc).allowed  # the stale copy would pass
    with pytest.raises(PolicyDenied) as caught, perform(alice, "testapp.approve", doc):
        pytest.fail("the body must not run")
    assert caught.value.decision.rule == "submitted"


def test_perform_bypasses_the_per_actor_cache(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob)
    assert authorize(alice, "testapp.approve", doc).allowed  # caches alice's tenants
    Membership.objects.filter(user=alice).delete()
    assert authorize(alice, "testapp.approve", doc).allowed  # the cached answer
    with pytest.raises(PolicyDenied) as caught, perform(alice, "testapp.approve", doc):
        pytest.fail("the body must not run")
    assert caught.value.decision.rule == "tenant_member"


def test_action_invariant_denies_a_superuser(tenant: Tenant, bob: User, make_doc: Any) -> None:
    root = User.objects.create_superuser("root", "root@example.com", "x")
    Membership.objects.create(user=root, tenant=tenant)
    doc = make_doc(owner=bob, amount=Decimal("50000"))
    with (
        pytest.raises(InvariantViolation) as caught,
        perform(root, "testapp.approve", doc),
    ):
        pytest.fail("the body must not run")
    assert caught.value.decision.rule == "within_limit"


# -- re-checks after the body -------------------------------------------------------------------


def test_body_that_breaks_a_model_invariant_rolls_back(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any, decisions: list[Decision]
) -> None:
    model_invariant(Document, "positive_amount", where(amount__gt=0), reason="Stay positive.")
    doc = make_doc(owner=bob, amount=Decimal("100"))
    with pytest.raises(InvariantViolation) as caught, perform(alice, "testapp.approve", doc) as d:
        d.state = "approved"
        d.amount = Decimal("-1")
        d.save()
    assert caught.value.decision.rule == "positive_amount"
    assert caught.value.decision.action == "testapp.approve"  # attributed to the action
    assert caught.value.decision.actor.label == "alice"
    fresh = Document.objects.get(pk=doc.pk)
    assert (fresh.state, fresh.amount) == ("submitted", Decimal("100"))
    assert not any(d.performed for d in decisions)


def test_unguarded_write_in_the_body_is_caught_before_commit(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    model_invariant(Document, "positive_amount", where(amount__gt=0))
    doc = make_doc(owner=bob, amount=Decimal("100"))
    with pytest.raises(InvariantViolation) as caught, perform(alice, "testapp.approve", doc) as d:
        approve(d)
        Document.objects.filter(pk=d.pk).update(amount=0)  # a plain queryset: no guard
    assert caught.value.decision.rule == "positive_amount"
    assert caught.value.decision.layer is Layer.INVARIANT
    fresh = Document.objects.get(pk=doc.pk)
    assert (fresh.state, fresh.amount) == ("submitted", Decimal("100"))


def test_body_that_breaks_an_action_invariant_rolls_back(
    alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob, amount=Decimal("100"))
    with pytest.raises(InvariantViolation) as caught, perform(alice, "testapp.approve", doc) as d:
        d.state = "approved"
        d.amount = Decimal("20000")
        d.save()
    assert caught.value.decision.rule == "within_limit"
    assert caught.value.decision.performed is False
    assert Document.objects.get(pk=doc.pk).amount == Decimal("100")


def test_body_that_raises_rolls_back_and_is_recorded_as_not_performed(
    alice: User, bob: User, make_doc: Any, decisions: list[Decision]
) -> None:
    doc = make_doc(owner=bob)
    with pytest.raises(ZeroDivisionError), perform(alice, "testapp.approve", doc) as d:
        approve(d)
        _ = 1 / 0
    assert state(doc) == "submitted"
    assert decisions[-1].allowed and decisions[-1].performed is False


def test_perform_inside_a_caller_transaction_leaves_it_usable(
    alice: User, bob: User, make_doc: Any
) -> None:
    first, second = make_doc(owner=bob), make_doc(owner=alice)
    with transaction.atomic():
        with perform(alice, "testapp.approve", first) as d:
            approve(d)
        with pytest.raises(PolicyDenied) as refused, perform(alice, "testapp.approve", second):
            pass
        assert refused.value.decision.rule == "four_eyes"
        assert state(first) == "approved" and state(second) == "submitted"


def test_missing_row_raises_does_not_exist(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob)
    Document.objects.filter(pk=doc.pk).delete()
    with pytest.raises(Document.DoesNotExist), perform(alice, "testapp.approve", doc):
        pass


def test_wrong_arguments_are_precise(alice: User, make_doc: Any) -> None:
    note = Note.objects.create()
    with (
        pytest.raises(TypeError, match=r"acts on testapp\.Document"),
        perform(alice, "testapp.approve", note),
    ):
        pass
    with (
        pytest.raises(TypeError, match="actor is None"),
        perform(None, "testapp.approve", make_doc()),
    ):
        pass


# -- @performs and aperform ---------------------------------------------------------------------


def test_performs_decorates_a_service_function(alice: User, bob: User, make_doc: Any) -> None:
    @performs("testapp.approve")
    def approve_document(user: User, doc: Document, *, note: str = "") -> str:
        doc.title = note
        approve(doc)
        return f"{user} approved {doc.pk}"

    doc = make_doc(owner=bob)
    assert approve_document(alice, doc, note="ok", request=None) == f"alice approved {doc.pk}"
    assert state(doc) == "approved"
    with pytest.raises(PolicyDenied) as refused:
        approve_document(alice, doc)  # no longer submitted
    assert refused.value.decision.rule == "submitted"
    assert approve_document.action == "testapp.approve"  # type: ignore[attr-defined]


def test_performs_passes_the_request_on(
    alice: User, bob: User, make_doc: Any, decisions: list[Decision]
) -> None:
    from django.test import RequestFactory

    request = RequestFactory().post("/approve")

    @performs("testapp.approve")
    def approve_document(user: User, doc: Document, *, request: Any) -> Any:
        approve(doc)
        return request

    doc = make_doc(owner=bob)
    assert approve_document(alice, doc, request=request) is request
    assert decisions[-1].performed is True


def test_performs_refuses_a_coroutine_function() -> None:
    with pytest.raises(TypeError, match="cannot span awaits"):

        @performs("testapp.approve")
        async def approve_later(user: User, doc: Document) -> None:
            pass


@pytest.mark.django_db(transaction=True)
async def test_aperform_runs_the_body_in_one_transaction(
    alice: User, bob: User, make_doc: Any
) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        doc = await sync_to_async(make_doc)(owner=bob)
        result = await aperform(alice, "testapp.approve", doc, lambda d: approve(d) or d.pk)
        assert result == doc.pk
        assert (await Document.objects.aget(pk=doc.pk)).state == "approved"
        with pytest.raises(PolicyDenied) as refused:
            await aperform(alice, "testapp.approve", doc, approve)
        assert refused.value.decision.rule == "submitted"
    finally:
        await sync_to_async(connections.close_all)()


async def test_aperform_refuses_a_coroutine_body(alice: User, make_doc: Any) -> None:
    async def body(doc: Document) -> None:
        pass

    with pytest.raises(TypeError, match="cannot span awaits"):
        await aperform(alice, "testapp.approve", Document(), body)


class AsyncCallable:
    """A body whose ``__call__`` is a coroutine function (a class-based async handler)."""

    async def __call__(self, doc: Document) -> None:
        pass


async def test_aperform_refuses_an_object_with_an_async_call(alice: User, make_doc: Any) -> None:
    with pytest.raises(TypeError, match=r"^aperform\(\) runs the body inside a database"):
        await aperform(alice, "testapp.approve", Document(), AsyncCallable())


@pytest.mark.django_db(transaction=True)
async def test_aperform_refuses_a_body_that_returns_an_awaitable_and_rolls_back(
    alice: User, bob: User, make_doc: Any
) -> None:
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    returned: list[Any] = []

    def body(doc: Document) -> Any:
        approve(doc)
        returned.append(asyncio.sleep(0))  # a coroutine: it would run after the commit
        return returned[-1]

    try:
        doc = await sync_to_async(make_doc)(owner=bob)
        with pytest.raises(TypeError, match=r"^The body of aperform\(\) returned coroutine, "):
            await aperform(alice, "testapp.approve", doc, body)
        assert (await Document.objects.aget(pk=doc.pk)).state == "submitted"
        # The refused coroutine is closed, never to run (nor to warn that it never ran).
        assert inspect.getcoroutinestate(returned[0]) == inspect.CORO_CLOSED
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_aperform_hands_the_request_and_the_extras_to_the_rules(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections
    from django.test import RequestFactory

    seen: list[Any] = []

    @predicate
    def looks(ctx: Any) -> bool:
        seen.append((ctx.request, ctx.extra.get("channel")))
        return True

    action = Action("testapp.touch", model=Document, permission=ANYONE)
    action.policy("looks", looks, reason="Looks at its context.")
    request = RequestFactory().post("/documents/1/touch/")
    try:
        doc = await sync_to_async(make_doc)()
        result = await aperform(alice, action, doc, lambda d: d.pk, request=request, channel="api")
        assert result == doc.pk
        assert seen and all(s == (request, "api") for s in seen)
    finally:
        await sync_to_async(connections.close_all)()


# -- system actors ------------------------------------------------------------------------------


def test_system_actor_answers_gate_one_from_its_list(
    fresh_registry: Any, bob: User, make_doc: Any, decisions: list[Decision]
) -> None:
    archive = Action("testapp.archive", model=Document, permission="testapp.submit_document")
    archive.policy("approved", where(state="approved"), reason="Only approved documents.")
    archive.invariant("small", where(amount__lte=1000), reason="Small ones only.")
    job = SystemActor("nightly-archive", permissions=["testapp.submit_document"])
    doc = make_doc(owner=bob, state="approved")
    with perform(job, "testapp.archive", doc) as d:
        d.state = "archived"
        d.save()
    assert state(doc) == "archived"
    assert decisions[-1].actor.label == "job:nightly-archive"
    assert decisions[-1].actor.kind == "job" and decisions[-1].actor.pk is None
    # Policies still apply to jobs, and invariants always.
    with pytest.raises(PolicyDenied) as refused, perform(job, "testapp.archive", doc):
        pass
    assert refused.value.decision.rule == "approved"
    big = make_doc(state="approved", amount=Decimal("5000"))
    with pytest.raises(InvariantViolation) as refused, perform(job, "testapp.archive", big):
        pass
    assert refused.value.decision.rule == "small"


@pytest.mark.django_db(databases="__all__")
def test_the_audit_trail_names_the_job_and_the_outcome(
    fresh_registry: Any, bob: User, make_doc: Any
) -> None:
    from django.test import override_settings

    from clearance.audit.models import AuditRecord

    Action("testapp.touch", model=Document, permission="testapp.submit_document")
    job = SystemActor("nightly", permissions=["testapp.submit_document"])
    # The denial is kept although perform() rolls its transaction back: on SQLite that needs
    # the audit trail in a database of its own.
    with override_settings(CLEARANCE={"AUDIT_DATABASE": "audit", "RECORD_ALLOWED": True}):
        with (
            pytest.raises(PermissionMissing) as refused,
            perform(job, "testapp.approve", make_doc()),
        ):
            pass
        assert refused.value.decision.rule == "testapp.approve_document"
        with perform(job, "testapp.touch", make_doc(owner=bob)) as d:
            d.save()
    denied = AuditRecord.objects.using("audit").get(action="testapp.approve")
    assert (denied.actor_label, denied.actor_kind, denied.actor_pk) == ("job:nightly", "job", "")
    assert denied.performed is False and denied.code == "permission.testapp.approve_document"
    done = AuditRecord.objects.using("audit").get(action="testapp.touch")
    assert done.allowed and done.performed is True and done.actor_label == "job:nightly"


def test_system_actor_without_the_permission_is_denied(bob: User, make_doc: Any) -> None:
    job = SystemActor("importer", permissions=["testapp.submit_document"])
    doc = make_doc(owner=bob)
    with pytest.raises(PermissionMissing) as caught, perform(job, "testapp.approve", doc):
        pass
    assert caught.value.decision.rule == "testapp.approve_document"
    assert caught.value.decision.actor.label == "job:importer"


def test_system_actor_owns_nothing(make_doc: Any) -> None:
    # The approval policies tie to the actor (tenant membership): a job matches none of them.
    job = SystemActor("approver-bot", permissions=["testapp.approve_document"])
    decision = authorize(job, "testapp.approve", make_doc())
    assert not decision.allowed and decision.rule == "tenant_member"


def test_system_actor_has_no_hidden_powers() -> None:
    job = SystemActor("reports", permissions=["testapp.read_document"])
    assert job.is_authenticated and job.is_active and not job.is_superuser
    assert job.has_perm("testapp.read_document")
    assert not job.has_perm("testapp.read_document", obj=object())
    assert not job.has_perm("testapp.approve_document")
    assert job.has_module_perms("testapp") and not job.has_module_perms("auth")
    assert str(job) == "job:reports"


@pytest.mark.parametrize(
    ("name", "permissions", "error"),
    [
        ("", [], ValueError),
        ("two words", [], ValueError),
        ("ok", ["approve_document"], ValueError),
        ("ok", "testapp.approve_document", TypeError),
    ],
)
def test_system_actor_rejects_bad_declarations(name: str, permissions: Any, error: type) -> None:
    with pytest.raises(error):
        SystemActor(name, permissions=permissions)


def test_anyone_action_performed_by_a_job(fresh_registry: Any, make_doc: Any) -> None:
    Action("testapp.touch", model=Document, permission=ANYONE)
    doc = make_doc()
    with perform(SystemActor("toucher"), "testapp.touch", doc) as d:
        d.title = "touched"
        d.save()
    assert Document.objects.get(pk=doc.pk).title == "touched"


def test_creation_with_an_unsaved_object(fresh_registry: Any, tenant: Tenant) -> None:
    create = Action("testapp.create", model=Document, permission=ANYONE)
    create.invariant("small", where(amount__lte=10), reason="Small ones only.")
    job = SystemActor("creator")
    with perform(job, "testapp.create", Document(tenant=tenant, amount=5)) as new:
        new.save()
    assert Document.objects.count() == 1
    # The saved state breaks the action's invariant.
    with (
        pytest.raises(InvariantViolation) as refused,
        perform(job, "testapp.create", Document(tenant=tenant, amount=5)) as new,
    ):
        new.amount = Decimal("50")
        new.save()
    assert refused.value.decision.rule == "small"
    assert Document.objects.count() == 1


def test_perform_asks_the_database_to_lock_the_row(
    alice: User, bob: User, make_doc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite has no row locks, so Django drops FOR UPDATE there. Declare the feature for this
    # test, watch the statements perform() sends, and (on SQLite) take the clause off before
    # they run: the SELECT that re-reads the row must ask for the lock wherever locks exist.
    from django.db import connection

    emulated = not connection.features.has_select_for_update
    monkeypatch.setattr(connection.features, "has_select_for_update", True)
    monkeypatch.setattr(sys.modules["clearance.perform"], "_statements", {})
    sent: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append(sql)
        if emulated:
            sql = sql.replace(" FOR UPDATE", "")
        return execute(sql, params, many, context)

    doc = make_doc(owner=bob)
    with connection.execute_wrapper(watch), perform(alice, "testapp.approve", doc) as locked:
        approve(locked)
    table = Document._meta.db_table
    rereads = [sql for sql in sent if sql.startswith("SELECT") and f'FROM "{table}"' in sql]
    assert rereads, sent
    assert "FOR UPDATE" in rereads[0]
    assert state(doc) == "approved"


def test_a_recheck_whose_invariant_raises_says_it_could_not_be_decided(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    @predicate
    def broken(ctx: Any) -> bool:
        if ctx.obj.state == "approved":  # raises on the state the body leaves, not before
            raise RuntimeError("boom")
        return True

    doc = make_doc(owner=bob)
    fresh_registry.get("testapp.approve").invariant(
        "after_the_body", broken, reason="Approved documents balance."
    )
    with pytest.raises(InvariantViolation) as caught, perform(alice, "testapp.approve", doc) as d:
        approve(d)
    decision = caught.value.decision
    assert decision.rule == "after_the_body" and decision.error == "RuntimeError: boom"
    assert decision.reason == "could not be decided: rule after_the_body raised RuntimeError"
    assert state(doc) == "submitted"
