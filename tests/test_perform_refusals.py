"""perform() refuses what it cannot do safely: bodies that return awaitables, lost SQLite races."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections

from clearance import Decision, Denied, aperform, perform, performs
from clearance.perform import BUSY_CODE
from clearance.testing import DecisionLog
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(clearance_decisions: DecisionLog) -> DecisionLog:
    return clearance_decisions


def state(doc: Document) -> str:
    return Document.objects.get(pk=doc.pk).state


async def approve_later(doc: Document) -> None:
    doc.state = "approved"
    await doc.asave()


# -- a body whose result is awaitable -------------------------------------------------------------


class AsyncBody:
    """An object whose __call__ is a coroutine function."""

    async def __call__(self, doc: Document) -> None:
        await approve_later(doc)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "body",
    [AsyncBody(), lambda doc: approve_later(doc)],
    ids=["async-call", "lambda-returning-a-coroutine"],
)
async def test_aperform_refuses_a_body_that_returns_an_awaitable(
    alice: User, bob: User, make_doc: Any, body: Any, decisions: DecisionLog
) -> None:
    from asgiref.sync import sync_to_async

    try:
        doc = await sync_to_async(make_doc)(owner=bob)
        with pytest.raises(TypeError, match=r"awaits|awaitable"):
            await aperform(alice, "testapp.approve", doc, body)
        assert await sync_to_async(state)(doc) == "submitted"
        assert not any(d.performed for d in decisions if d.action == "testapp.approve")
    finally:
        await sync_to_async(connections.close_all)()


def test_performs_refuses_a_function_that_returns_a_coroutine(
    alice: User, bob: User, make_doc: Any, decisions: DecisionLog
) -> None:
    @performs("testapp.approve")
    def approve(actor: User, doc: Document) -> Any:
        doc.state = "approved"
        doc.save()  # written inside the transaction, then rolled back with the refusal
        return approve_later(doc)

    doc = make_doc(owner=bob)
    with pytest.raises(TypeError, match="awaitable"):
        approve(alice, doc)
    assert state(doc) == "submitted"
    final = [d for d in decisions if d.action == "testapp.approve"][-1]
    assert final.allowed and final.performed is False


# -- SQLite: the perform() that loses the race is refused cleanly ---------------------------------


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's single writer")
@pytest.mark.django_db(transaction=True)
def test_perform_that_loses_a_sqlite_race_is_a_recorded_denial(
    alice: User, bob: User, make_user: Any, tenant: Any, make_doc: Any, decisions: DecisionLog
) -> None:
    carol = make_user("carol", tenants=(tenant,))
    doc = make_doc(owner=bob, amount=Decimal("100"))
    mine, theirs = Document.objects.get(pk=doc.pk), Document.objects.get(pk=doc.pk)
    inside = threading.Event()
    release = threading.Event()
    results: dict[str, Any] = {}

    def winner() -> None:
        try:
            with perform(alice, "testapp.approve", mine) as locked:
                locked.state = "approved"
                locked.save()
                inside.set()
                release.wait(timeout=20)
            results["winner"] = "approved"
        except Exception as exc:  # reported by the assertion below
            results["winner"] = repr(exc)
            inside.set()
        finally:
            connections.close_all()

    def loser() -> None:
        try:
            with perform(carol, "testapp.approve", theirs):
                results["loser"] = "ran"
        except Denied as denied:
            results["loser"] = denied.decision
        except Exception as exc:
            results["loser"] = repr(exc)
        finally:
            release.set()
            connections.close_all()

    first = threading.Thread(target=winner)
    first.start()
    assert inside.wait(timeout=20)
    second = threading.Thread(target=loser)
    second.start()
    second.join(timeout=30)
    first.join(timeout=30)

    assert results["winner"] == "approved"
    refused = results["loser"]
    assert isinstance(refused, Decision), refused
    assert refused.code == BUSY_CODE and refused.rule == "busy"
    assert not refused.allowed and refused.performed is False
    assert "Try again" in refused.reason
    assert any(d.code == BUSY_CODE for d in decisions)
    assert state(doc) == "approved"


def test_a_body_that_finds_the_database_locked_is_a_complete_busy_denial(
    alice: User, bob: User, make_doc: Any, decisions: DecisionLog
) -> None:
    # A file database answers "database is locked" (the in-memory test database says "database
    # table is locked"); either way the caller gets a recorded, retryable denial.
    from django.db import OperationalError
    from django.utils import timezone

    from clearance.actions import registry

    doc = make_doc(owner=bob)
    before = timezone.now()
    with pytest.raises(Denied) as caught, perform(alice, "testapp.approve", doc) as locked:
        locked.state = "approved"
        locked.save()
        raise OperationalError("database is locked")
    refused = caught.value.decision
    assert refused.allowed is False and refused.performed is False
    assert (refused.code, refused.rule, refused.layer) == (BUSY_CODE, "busy", None)
    assert refused.action == "testapp.approve"
    assert (refused.actor.label, refused.actor.pk) == ("alice", alice.pk)
    assert refused.resource is not None
    assert (refused.resource.model, refused.resource.pk) == ("testapp.Document", doc.pk)
    assert before <= refused.at <= timezone.now()
    assert refused.fingerprint == registry.get("testapp.approve").fingerprint()
    assert refused.error == "OperationalError: database is locked"
    assert decisions[-1] == refused
    assert state(doc) == "submitted"


def test_a_body_that_fails_on_the_database_otherwise_raises_its_own_error(
    alice: User, bob: User, make_doc: Any, decisions: DecisionLog
) -> None:
    from django.db import OperationalError

    doc = make_doc(owner=bob)
    with (
        pytest.raises(OperationalError, match="no such column"),
        perform(alice, "testapp.approve", doc),
    ):
        raise OperationalError("no such column: nope")
    assert not any(d.code == BUSY_CODE for d in decisions)
    assert state(doc) == "submitted"
