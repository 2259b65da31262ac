"""The audit row's trace column: built from cached pieces, exactly the JSON of the entries."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize("materialized", [False, True])
def test_the_trace_written_is_the_trace_as_json(materialized: bool) -> None:
    """The row's trace, built from cached pieces, is exactly ``json.dumps`` of the entries."""
    import datetime as dt

    from clearance.audit.sinks import trace_json
    from clearance.decisions import ActorRef, Decision, Layer

    raw = [
        (Layer.PERMISSION, "app.do", True, "", "has_perm('app.do')", 0.0000123, None),
        (Layer.POLICY, 'quote"d \\ rule', False, "Nur für \u00e9quipe\n", "x == 'y'", 1.5, None),
        (Layer.INVARIANT, "boom", False, "undecided", "f()", 0.0, 'KeyError: "k"\u2028'),
        (Layer.POLICY, 'quote"d \\ rule', True, "Nur für \u00e9quipe\n", "x == 'y'", 2e-9, None),
    ]
    decision = Decision(
        allowed=False,
        action="app.do",
        actor=ActorRef("alice", 1, "user"),
        resource=None,
        layer=Layer.POLICY,
        rule="r",
        reason="no",
        code="policy.r",
        at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        fingerprint="f",
        trace=raw,
    )
    if materialized:
        assert len(decision.trace) == 4
    for _ in range(2):  # the second time from the cache
        assert trace_json(decision) == json.dumps([t.as_dict() for t in decision.trace])


@pytest.mark.django_db
def test_the_trace_reads_back_as_the_entries(make_doc: object, alice: object) -> None:
    from django.db.models import Max

    from clearance import authorize
    from clearance.audit import recording
    from clearance.audit.models import AuditRecord

    before = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0
    doc = make_doc(owner=alice, title="mine")  # type: ignore[operator]
    with recording():
        decisions = [authorize(alice, "testapp.approve", doc) for _ in range(2)]
    rows = list(AuditRecord.objects.filter(pk__gt=before).order_by("id"))
    assert [r.trace for r in rows] == [[t.as_dict() for t in d.trace] for d in decisions]
    assert [r.to_decision().code for r in rows] == [d.code for d in decisions]
