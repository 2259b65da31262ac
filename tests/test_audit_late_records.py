"""Records built when their buffer is written hold the decision as it was made.

A buffered record keeps the decision (whose fields are built when first read) and a snapshot
of the request; its row and its log line are built when the buffer is written: at the end of
the scope, at the batch size, at the end of a job's unit of work. Whatever changes between the
decision and that moment (the user is renamed, the object deleted or saved for the first time,
the request's path, address, id or caller rewritten) must not reach the record. Nothing of the
record is built on the call when no receiver listens; a receiver still sees the whole decision
on the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Max
from django.test import RequestFactory, override_settings

from clearance import authorize
from clearance.audit import recording
from clearance.audit.models import AuditRecord
from clearance.audit.recording import flush_pending, pending
from clearance.audit.requests import CALLER_ATTRIBUTE, request_metadata
from clearance.audit.sinks import log_fields
from clearance.decisions import Decision, ResourceRef
from clearance.signals import decision_made
from tests.testapp.models import Document, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def baseline(db: None) -> int:
    flush_pending()
    return int(AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0)


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """alice owns it: four eyes refuses her approval."""
    return make_doc(owner=alice, title="own")


@pytest.fixture
def audit_lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[Any]]]:
    with caplog.at_level(logging.INFO, logger="clearance.audit"):
        yield lambda: [r for r in caplog.records if r.name == "clearance.audit"]


def _built(decision: Decision) -> bool:
    """Whether the decision's deferred fields were built (read) already."""
    return object.__getattribute__(decision, "_src") is None


def _request() -> Any:
    request = RequestFactory().post("/approve/7/", REMOTE_ADDR="192.0.2.1")
    request.clearance_request_id = "req-1"
    setattr(request, CALLER_ATTRIBUTE, "token:gateway")
    return request


def _rewrite(request: Any) -> None:
    """What a view or a later middleware could do to the request after the decision."""
    request.path = "/somewhere/else/"
    request.method = "GET"
    request.META["REMOTE_ADDR"] = "203.0.113.9"
    request.clearance_request_id = "req-forged"
    setattr(request, CALLER_ATTRIBUTE, "token:other")


AS_DECIDED = ("req-1", "POST", "/approve/7/", "192.0.2.1", "token:gateway")


@pytest.mark.parametrize("scoped", [True, False], ids=["in-a-scope", "job-without-scope"])
def test_a_record_written_later_holds_the_actor_the_object_and_the_request_as_decided(
    scoped: bool,
    alice: User,
    denied_doc: Document,
    baseline: int,
    audit_lines: Callable[[], list[Any]],
) -> None:
    request = _request()
    actor_pk, doc_pk = alice.pk, denied_doc.pk
    with recording() if scoped else nullcontext():
        decision = authorize(alice, "testapp.approve", denied_doc, request=request)
        assert decision.allowed is False
        alice.username = "mallory"  # renamed
        alice.pk = None  # as delete() leaves the instance
        denied_doc.pk = None
        _rewrite(request)
        if not scoped:
            assert pending.count == 1  # the row waits in the process's buffer
    flush_pending()  # a job's unit of work ends

    record = AuditRecord.objects.get(pk__gt=baseline)
    assert (record.actor_label, record.actor_pk) == ("alice", str(actor_pk))
    assert (record.resource_model, record.resource_pk) == ("testapp.Document", str(doc_pk))
    meta = (record.request_id, record.method, record.path, record.remote_addr, record.caller)
    assert meta == AS_DECIDED
    assert record.code == "policy.four_eyes"
    # The decision itself says the same, whenever it is read.
    assert (decision.actor.label, decision.actor.pk) == ("alice", actor_pk)
    assert decision.resource == ResourceRef("testapp.Document", doc_pk)

    [line] = audit_lines()
    assert line.actor == {"label": "alice", "pk": actor_pk, "kind": "user"}
    assert line.resource == {"model": "testapp.Document", "pk": doc_pk}
    assert (line.request_id, line.method, line.path, line.remote_addr, line.caller) == AS_DECIDED


def test_a_refused_creation_stays_unsaved_in_its_record_when_the_object_is_saved_before_the_write(
    alice: User, tenant: Tenant, baseline: int
) -> None:
    doc = Document(tenant=tenant, owner=alice, state="submitted", amount=Decimal("10"))
    with recording():
        assert not authorize(alice, "testapp.approve", doc)  # four eyes: her own document
        doc.save()
        assert doc.pk is not None
    record = AuditRecord.objects.get(pk__gt=baseline)
    assert (record.resource_model, record.resource_pk) == ("testapp.Document", "")


def test_without_receivers_nothing_of_the_record_is_built_on_the_call(
    alice: User, denied_doc: Document, baseline: int
) -> None:
    with recording() as scope:
        decision = authorize(alice, "testapp.approve", denied_doc)
        assert scope.pending == 1
        assert not _built(decision)  # only kept: the row is built when the scope ends
    assert _built(decision)
    assert AuditRecord.objects.filter(pk__gt=baseline).count() == 1


def test_a_receiver_sees_the_whole_decision_on_the_call(
    alice: User, denied_doc: Document, baseline: int
) -> None:
    seen: list[tuple[str, str, str]] = []

    def receiver(sender: Any, decision: Decision, **kwargs: Any) -> None:
        seen.append((decision.actor.label, decision.code, decision.trace[-1].rule))

    decision_made.connect(receiver)
    try:
        with recording():
            authorize(alice, "testapp.approve", denied_doc)
            assert seen == [("alice", "policy.four_eyes", "four_eyes")]  # before the next line
            alice.username = "mallory"
    finally:
        decision_made.disconnect(receiver)
    assert AuditRecord.objects.get(pk__gt=baseline).actor_label == "alice"


@pytest.mark.parametrize(
    "settings_",
    [{}, {"AUDIT_WRITE_THROUGH": True}, {"AUDIT_BATCH_SIZE": 1}, {"RECORD_ALLOWED": True}],
    ids=["buffered", "write-through", "batch-of-one", "allowed-recorded"],
)
def test_rows_and_log_lines_are_field_for_field_those_of_the_decision(
    settings_: dict[str, Any],
    alice: User,
    bob: User,
    make_doc: Callable[..., Document],
    baseline: int,
    audit_lines: Callable[[], list[Any]],
) -> None:
    """Built on the call (written at once) or when the buffer is written, a row is
    ``AuditRecord.from_decision`` of its decision and a log line carries ``log_fields``."""
    request = _request()
    docs = [make_doc(owner=alice), make_doc(owner=bob), make_doc(owner=bob, amount=50_000)]
    with override_settings(CLEARANCE=settings_), recording():
        decisions = [authorize(alice, "testapp.approve", doc, request=request) for doc in docs]
        decisions.append(authorize(bob, "testapp.approve", docs[1]))  # no request
    recorded = [d for d in decisions if not d.allowed or settings_.get("RECORD_ALLOWED")]
    requests = [request if i < 3 else None for i, d in enumerate(decisions) if d in recorded]
    assert len(recorded) >= 3

    stored = list(AuditRecord.objects.filter(pk__gt=baseline).order_by("id"))
    names = [f.attname for f in AuditRecord._meta.concrete_fields if not f.primary_key]
    assert len(stored) == len(recorded)
    for row, decision, req in zip(stored, recorded, requests, strict=True):
        expected = AuditRecord.from_decision(decision, request_metadata(req))
        assert {n: getattr(row, n) for n in names} == {n: getattr(expected, n) for n in names}

    lines = audit_lines()
    assert [line.getMessage() for line in lines] == [str(d) for d in recorded]
    for line, decision, req in zip(lines, recorded, requests, strict=True):
        fields = log_fields(decision, req)
        assert {key: getattr(line, key) for key in fields} == fields
        assert line.levelno == (logging.INFO if decision.allowed else logging.WARNING)


class Unnameable:
    """An actor that passes gate 1 but raises when asked its name (a broken custom user)."""

    is_authenticated = True
    is_active = True
    pk = 4242

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True

    def get_username(self) -> str:
        raise RuntimeError("the directory is down")


@pytest.mark.parametrize("scoped", [True, False], ids=["in-a-scope", "job-without-scope"])
def test_an_actor_that_cannot_say_its_name_loses_no_record_of_its_buffer(
    scoped: bool,
    alice: User,
    denied_doc: Document,
    baseline: int,
    audit_lines: Callable[[], list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(CLEARANCE={"AUDIT_SINKS": ["clearance.audit.sinks.DatabaseSink"]}):
        with recording() if scoped else nullcontext():
            first = authorize(alice, "testapp.approve", denied_doc)
            broken = authorize(Unnameable(), "testapp.approve", denied_doc)  # never raises
            last = authorize(alice, "testapp.approve", denied_doc)
        flush_pending()
    assert not first and not broken and not last
    rows = AuditRecord.objects.filter(pk__gt=baseline).order_by("id")
    # The broken actor's denial is kept, under a label that says its name was not available.
    assert list(rows.values_list("actor_label", "actor_pk", "code")) == [
        ("alice", str(alice.pk), "policy.four_eyes"),
        ("<unnamed Unnameable>", "4242", "policy.tenant_member"),
        ("alice", str(alice.pk), "policy.four_eyes"),
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("could not say its name" in message for message in errors)
