"""The audit trail records attempts, not probes, and cannot be lost or rewritten.

* Probes (``probe=True``: decisions that only decide what to show) are marked as such and not
  recorded by default; ``RECORD_PROBES`` samples them.
* Sinks run first, each in isolation; ``decision_made`` receivers run after them, robustly.
* Every ORM path that would change or delete a record is refused; ``prune`` is the one way
  to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.test import override_settings

from clearance import authorize, authorize_many, enforce, explain
from clearance.audit.models import AppendOnlyError, AuditRecord
from clearance.decisions import Decision, PolicyDenied
from clearance.signals import decision_made
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

SEEN: list[str] = []


class ListSink:
    """Notes each decision it is given."""

    def record(self, decision: Decision, request: Any) -> None:
        SEEN.append(f"sink:{decision.code}")


class BrokenSink:
    """A sink whose storage is down."""

    def record(self, decision: Decision, request: Any) -> None:
        SEEN.append("broken")
        raise ConnectionError("audit store unreachable")


@pytest.fixture(autouse=True)
def _seen() -> Any:
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def baseline(db: None) -> int:
    """The last audit row before the test (on PostgreSQL rows of other tests stay)."""
    return int(AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0)


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """alice owns it: four eyes refuses her approval."""
    return make_doc(owner=alice, title="own")


@pytest.fixture
def approvable(make_doc: Callable[..., Document], bob: User) -> Document:
    return make_doc(owner=bob, title="bob's")


# --------------------------------------------------------------------------------------------
# Probes and attempts
# --------------------------------------------------------------------------------------------


def test_a_probe_is_marked_and_not_recorded_by_default(
    alice: User, denied_doc: Document, baseline: int
) -> None:
    probe = authorize(alice, "testapp.approve", denied_doc, probe=True)
    assert not probe
    assert (probe.probe, probe.kind, probe.code) == (True, "probe", "policy.four_eyes")
    assert probe.as_dict()["probe"] is True
    assert not AuditRecord.objects.filter(pk__gt=baseline).exists()

    attempt = authorize(alice, "testapp.approve", denied_doc)
    assert (attempt.probe, attempt.kind) == (False, "attempt")
    record = AuditRecord.objects.get(pk__gt=baseline)
    assert (record.probe, record.kind, record.code) == (False, "attempt", "policy.four_eyes")


def test_explain_and_authorize_many_for_display_are_probes(
    alice: User, denied_doc: Document, approvable: Document, baseline: int
) -> None:
    explained = explain(alice, "testapp.approve", denied_doc)
    assert explained.probe and explained.explained
    shown = authorize_many(alice, "testapp.approve", [denied_doc, approvable], probe=True)
    assert [d.probe for d in shown] == [True, True]
    assert [bool(d) for d in shown] == [False, True]
    assert not AuditRecord.objects.filter(pk__gt=baseline).exists()
    # Without the flag, a page of decisions is a page of attempts.
    authorize_many(alice, "testapp.approve", [denied_doc, approvable])
    assert AuditRecord.objects.filter(pk__gt=baseline).count() == 1


def test_record_probes_records_them_marked_as_probes(
    alice: User, denied_doc: Document, approvable: Document, baseline: int
) -> None:
    with override_settings(CLEARANCE={"RECORD_PROBES": True}):
        authorize(alice, "testapp.approve", denied_doc, probe=True)
        authorize(alice, "testapp.approve", approvable, probe=True)  # allowed: not recorded
    rows = AuditRecord.objects.filter(pk__gt=baseline)
    assert [(r.allowed, r.kind) for r in rows] == [(False, "probe")]
    assert rows.get().to_decision().probe is True
    assert list(AuditRecord.objects.filter(pk__gt=baseline).attempts()) == []
    assert AuditRecord.objects.filter(pk__gt=baseline).probes().count() == 1


def test_a_probe_rate_outside_zero_to_one_is_refused() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from clearance.conf import clearance_settings

    with override_settings(CLEARANCE={"RECORD_PROBES": 2}), pytest.raises(ImproperlyConfigured):
        clearance_settings.RECORD_PROBES  # noqa: B018


def test_probes_still_reach_decision_made(alice: User, denied_doc: Document) -> None:
    """Receivers (rule coverage, a project's own metrics) hear of every decision."""
    heard: list[Decision] = []

    def receiver(sender: Any, decision: Decision, **kwargs: Any) -> None:
        heard.append(decision)

    decision_made.connect(receiver)
    try:
        probe = authorize(alice, "testapp.approve", denied_doc, probe=True)
    finally:
        decision_made.disconnect(receiver)
    assert heard == [probe]


def test_a_probe_is_not_an_attempt_for_enforce(alice: User, denied_doc: Document) -> None:
    with pytest.raises(TypeError):
        enforce(alice, "testapp.approve", denied_doc, probe=True)


def test_the_testing_helpers_and_the_template_tag_probe(
    alice: User, denied_doc: Document, approvable: Document, baseline: int
) -> None:
    from django.template import Context, Template

    from clearance.testing import assert_allowed, assert_denied, assert_matrix

    assert_denied(alice, "testapp.approve", denied_doc, rule="four_eyes")
    assert_allowed(alice, "testapp.approve", approvable)
    assert_matrix({(alice, "testapp.approve", denied_doc): "policy.four_eyes"})
    with pytest.raises(AssertionError):  # the failure's explanation is a probe too
        assert_allowed(alice, "testapp.approve", denied_doc)
    page = Template(
        '{% load clearance %}{% authorize "testapp.approve" doc as d %}{{ d.code }}'
    ).render(Context({"user": alice, "doc": denied_doc}))
    assert page == "policy.four_eyes"
    assert not AuditRecord.objects.filter(pk__gt=baseline).exists()


def test_a_buffered_row_holds_what_from_decision_describes(
    alice: User, denied_doc: Document, approvable: Document, baseline: int
) -> None:
    """The sink builds rows straight from decisions; they are the model's own rows."""
    from django.test import RequestFactory

    from clearance.audit import recording
    from clearance.audit.requests import request_metadata

    request = RequestFactory().post("/x", HTTP_X_REQUEST_ID="r-1", REMOTE_ADDR="192.0.2.1")
    settings = {"RECORD_ALLOWED": True, "RECORD_PROBES": True}
    with override_settings(CLEARANCE=settings), recording():
        decisions = [
            authorize(alice, "testapp.approve", denied_doc, request=request),
            authorize(alice, "testapp.approve", approvable, request=request),
            explain(alice, "testapp.approve", denied_doc),
        ]
    stored = list(AuditRecord.objects.filter(pk__gt=baseline).order_by("id"))
    names = [f.attname for f in AuditRecord._meta.concrete_fields if not f.primary_key]
    assert len(stored) == 3
    for record, decision, req in zip(stored, decisions, [request, request, None], strict=True):
        expected = AuditRecord.from_decision(decision, request_metadata(req))
        assert {n: getattr(record, n) for n in names} == {n: getattr(expected, n) for n in names}


def test_a_buffer_longer_than_one_statement_takes_is_split(
    alice: User, denied_doc: Document, baseline: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clearance.audit import recording, sinks

    monkeypatch.setattr(sinks, "_max_rows", lambda conn, columns: 2)
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 100}), recording() as scope:
        for _ in range(5):
            authorize(alice, "testapp.approve", denied_doc)
        assert scope.pending == 5
    assert AuditRecord.objects.filter(pk__gt=baseline).count() == 5


def test_the_logging_sink_logs_a_scopes_records_when_it_ends(
    alice: User, denied_doc: Document, caplog: pytest.LogCaptureFixture
) -> None:
    from clearance.audit import recording

    def audit_lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "clearance.audit"]

    with caplog.at_level(logging.INFO, logger="clearance.audit"):
        with recording():
            first = authorize(alice, "testapp.approve", denied_doc)
            second = authorize(alice, "testapp.approve", denied_doc)
            assert audit_lines() == []
        assert [r.getMessage() for r in audit_lines()] == [str(first), str(second)]
        assert [getattr(r, "at") for r in audit_lines()] == [  # noqa: B009
            first.at.isoformat(),
            second.at.isoformat(),
        ]
        with override_settings(CLEARANCE={"AUDIT_WRITE_THROUGH": True}), recording():
            authorize(alice, "testapp.approve", denied_doc)
            assert len(audit_lines()) == 3  # a denied attempt, logged at once


# --------------------------------------------------------------------------------------------
# Sinks first, each isolated; receivers after, robustly
# --------------------------------------------------------------------------------------------


def test_a_raising_receiver_keeps_the_record_and_the_decision_is_returned(
    alice: User, denied_doc: Document, baseline: int, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("metrics backend down")

    decision_made.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="clearance"):
            decision = authorize(alice, "testapp.approve", denied_doc)
            with pytest.raises(PolicyDenied):  # the denial, not the receiver's error
                enforce(alice, "testapp.approve", denied_doc)
    finally:
        decision_made.disconnect(broken)
    assert decision.code == "policy.four_eyes"
    assert AuditRecord.objects.filter(pk__gt=baseline).count() == 2
    logged = [r for r in caplog.records if r.name == "clearance" and "receiver" in r.message]
    assert len(logged) == 2
    assert all(r.exc_info and "metrics backend down" in str(r.exc_info[1]) for r in logged)


def test_a_raising_sink_stops_neither_the_other_sinks_nor_the_receivers(
    alice: User, denied_doc: Document
) -> None:
    def receiver(sender: Any, decision: Decision, **kwargs: Any) -> None:
        SEEN.append(f"receiver:{decision.code}")

    sinks = ["tests.test_audit_integrity.BrokenSink", "tests.test_audit_integrity.ListSink"]
    decision_made.connect(receiver)
    try:
        with override_settings(CLEARANCE={"AUDIT_SINKS": sinks}):
            decision = authorize(alice, "testapp.approve", denied_doc)
    finally:
        decision_made.disconnect(receiver)
    assert decision.code == "policy.four_eyes"
    # Every sink ran, in order, before any receiver.
    assert SEEN == ["broken", "sink:policy.four_eyes", "receiver:policy.four_eyes"]


# --------------------------------------------------------------------------------------------
# Append-only: every rewrite path is refused
# --------------------------------------------------------------------------------------------


@pytest.fixture
def record(alice: User, denied_doc: Document, baseline: int) -> AuditRecord:
    authorize(alice, "testapp.approve", denied_doc)
    return AuditRecord.objects.get(pk__gt=baseline)


def _unchanged(record: AuditRecord) -> None:
    stored = AuditRecord.objects.get(pk=record.pk)
    assert (stored.allowed, stored.reason) == (False, "Nobody approves their own document.")


REWRITES: dict[str, Callable[[AuditRecord], Any]] = {
    "_base_manager.update": lambda r: AuditRecord._base_manager.filter(pk=r.pk).update(
        allowed=True
    ),
    "_base_manager.delete": lambda r: AuditRecord._base_manager.filter(pk=r.pk).delete(),
    "_default_manager.update": lambda r: AuditRecord._default_manager.filter(pk=r.pk).update(
        allowed=True
    ),
    "_default_manager.delete": lambda r: AuditRecord._default_manager.filter(pk=r.pk).delete(),
    "objects.update": lambda r: AuditRecord.objects.filter(pk=r.pk).update(allowed=True),
    "objects._update": lambda r: AuditRecord.objects.filter(pk=r.pk)._update({"allowed": True}),
    "objects._raw_delete": lambda r: AuditRecord.objects.filter(pk=r.pk)._raw_delete(
        AuditRecord.objects.db
    ),
    "_base_manager._raw_delete": lambda r: AuditRecord._base_manager.filter(pk=r.pk)._raw_delete(
        AuditRecord._base_manager.db
    ),
    "bulk_update": lambda r: AuditRecord.objects.bulk_update([_changed(r)], ["allowed", "reason"]),
    "_base_manager.bulk_update": lambda r: AuditRecord._base_manager.bulk_update(
        [_changed(r)], ["allowed", "reason"]
    ),
    "bulk_create(update_conflicts)": lambda r: AuditRecord.objects.bulk_create(
        [_impostor(r)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["allowed", "reason"],
    ),
    "_base_manager.bulk_create(update_conflicts)": lambda r: AuditRecord._base_manager.bulk_create(
        [_impostor(r)],
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=["allowed", "reason"],
    ),
    "update_or_create": lambda r: AuditRecord._base_manager.update_or_create(
        pk=r.pk, defaults={"allowed": True}
    ),
    "save": lambda r: _changed(r).save(),
    "save(force_update)": lambda r: _changed(r).save(force_update=True),
    "save_base(force_update)": lambda r: _changed(r).save_base(force_update=True),
    "delete": lambda r: r.delete(),
}


def _changed(record: AuditRecord) -> AuditRecord:
    record.allowed = True
    record.reason = "rewritten"
    return record


def _impostor(record: AuditRecord) -> AuditRecord:
    impostor = AuditRecord.from_decision(record.to_decision().replace(allowed=True))
    impostor.pk = record.pk
    impostor.reason = "rewritten"
    return impostor


@pytest.mark.parametrize("path", sorted(REWRITES))
def test_every_rewrite_path_is_refused(path: str, record: AuditRecord) -> None:
    with pytest.raises(AppendOnlyError), transaction.atomic():
        REWRITES[path](record)
    _unchanged(record)


def test_async_rewrites_are_refused_too(record: AuditRecord) -> None:
    from asgiref.sync import async_to_sync

    async def rewrite() -> None:
        await AuditRecord._base_manager.filter(pk=record.pk).aupdate(allowed=True)

    async def delete() -> None:
        await AuditRecord._base_manager.filter(pk=record.pk).adelete()

    for attempt in (rewrite, delete):
        with pytest.raises(AppendOnlyError):
            async_to_sync(attempt)()
    _unchanged(record)


def test_ignore_conflicts_adds_nothing_and_rewrites_nothing(record: AuditRecord) -> None:
    AuditRecord.objects.bulk_create([_impostor(record)], ignore_conflicts=True)
    _unchanged(record)
