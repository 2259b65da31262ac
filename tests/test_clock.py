"""One clock per decision: ``now=`` is what ``ctx.now``, ``CTX.now``, the decision's timestamp
and its audit record read, on every path (``authorize``, ``explain``, ``authorize_many``,
``authorized``, ``enforce``, ``perform``); without it, all of them read the same present."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import Max
from django.test import override_settings

from clearance import (
    CTX,
    Action,
    authorize,
    authorize_many,
    authorized,
    enforce,
    explain,
    perform,
    predicate,
    where,
)
from clearance.audit import recording
from clearance.audit.models import AuditRecord
from tests.testapp.models import Document

PERM = "testapp.approve_document"
LAST_YEAR = dt.datetime(2025, 6, 1, 12, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def clock_action(fresh_registry: Any) -> tuple[Action, list[tuple[Any, Any]]]:
    """An action whose policy writes down the time it sees, both ways."""
    seen: list[tuple[Any, Any]] = []
    action = Action("testapp.clocked", model=Document, permission=PERM)

    @action.policy(reason="Reads the clock.", uses_object=False)
    def clock(ctx: Any) -> bool:
        seen.append((ctx.now, CTX.now.resolve(ctx)))
        return True

    action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    return action, seen


def test_now_is_seen_by_ctx_now_ctx_placeholder_and_the_decision(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    action, seen = clock_action
    doc = make_doc()
    for decide in (authorize, explain):
        decision = decide(alice, action, doc, now=LAST_YEAR)
        assert decision.allowed
        assert seen.pop() == (LAST_YEAR, LAST_YEAR)
        assert decision.at == LAST_YEAR
    (decision,) = authorize_many(alice, action, [doc], now=LAST_YEAR)
    assert seen.pop() == (LAST_YEAR, LAST_YEAR) and decision.at == LAST_YEAR
    assert enforce(alice, action, doc, now=LAST_YEAR).at == LAST_YEAR
    assert seen.pop() == (LAST_YEAR, LAST_YEAR)


def test_without_now_every_reader_sees_the_same_present(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    action, seen = clock_action
    before = dt.datetime.now(dt.timezone.utc)
    decision = authorize(alice, action, make_doc())
    after = dt.datetime.now(dt.timezone.utc)
    ((ctx_now, placeholder_now),) = seen
    assert ctx_now == placeholder_now == decision.at
    assert before <= decision.at <= after
    assert decision.at.tzinfo is not None


def test_the_audit_record_carries_the_decisions_time(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    action, _seen = clock_action
    baseline = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0
    draft = make_doc(state="draft")  # denied by "submitted": recorded
    with recording():  # written when the scope ends, as at the end of a request
        decision = authorize(alice, action, draft, now=LAST_YEAR)
        undated = authorize(alice, action, draft)
    rows = list(AuditRecord.objects.filter(pk__gt=baseline, action=action.name).order_by("id"))
    assert [row.at for row in rows] == [LAST_YEAR, undated.at]
    assert decision.at == LAST_YEAR


def test_a_time_placeholder_in_a_filter_reads_the_same_clock(
    fresh_registry: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    # authorized() binds CTX values before the query: now= is the filter's now too.
    action = Action("testapp.dated", model=Document, permission=PERM)
    action.policy(
        "this_year",
        predicate(lambda ctx: ctx.now.year == 2025, uses_object=False),
        reason="Only in 2025.",
    )
    doc = make_doc()
    assert list(authorized(alice, action, Document.objects.all(), now=LAST_YEAR)) == [doc]
    assert list(authorized(alice, action, Document.objects.all())) == []
    assert authorize(alice, action, doc, now=LAST_YEAR)
    assert not authorize(alice, action, doc)


def test_perform_runs_at_the_time_given(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    action, seen = clock_action
    with perform(alice, action, make_doc(), now=LAST_YEAR):
        pass
    assert set(seen) == {(LAST_YEAR, LAST_YEAR)}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2025-06-01", TypeError),
        (dt.date(2025, 6, 1), TypeError),
        (dt.datetime(2025, 6, 1, 12, 30), ValueError),  # naive, while USE_TZ is on
    ],
)
def test_a_now_that_is_not_an_aware_datetime_is_refused(
    clock_action: Any, alice: User, make_doc: Callable[..., Document], value: Any, error: Any
) -> None:
    action, _seen = clock_action
    doc = make_doc()
    with pytest.raises(error, match="now= must be"):
        authorize(alice, action, doc, now=value)
    with pytest.raises(error, match="now= must be"):
        authorized(alice, action, Document.objects.all(), now=value)


@override_settings(USE_TZ=False)
def test_without_time_zones_now_is_naive(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    action, seen = clock_action
    decision = authorize(alice, action, make_doc())
    assert decision.at.tzinfo is None and seen.pop()[0] == decision.at
    naive = dt.datetime(2025, 6, 1, 12, 30)
    assert authorize(alice, action, make_doc(), now=naive).at == naive


def test_explain_on_the_command_line_as_of_a_moment(
    clock_action: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    from django.core.management import CommandError, call_command
    from django.utils import timezone

    action, seen = clock_action
    doc = make_doc()
    out = io.StringIO()
    call_command(
        "clearance",
        "explain",
        "alice",
        action.name,
        str(doc.pk),
        "--as-of",
        "2025-06-01T12:30",
        stdout=out,
    )
    expected = timezone.make_aware(dt.datetime(2025, 6, 1, 12, 30))
    assert seen.pop() == (expected, expected)
    call_command(
        "clearance",
        "explain",
        "alice",
        action.name,
        str(doc.pk),
        "--as-of",
        "2025-06-01T12:30+02:00",
        stdout=out,
    )
    assert seen.pop()[0] == dt.datetime(2025, 6, 1, 10, 30, tzinfo=dt.timezone.utc)
    with pytest.raises(CommandError, match="--as-of 'yesterday'"):
        call_command(
            "clearance", "explain", "alice", action.name, str(doc.pk), "--as-of", "yesterday"
        )
    with pytest.raises(CommandError, match="--as-of"):
        call_command(
            "clearance", "explain", "alice", action.name, str(doc.pk), "--extra", "now=2025-01-01"
        )
