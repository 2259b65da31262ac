"""The audit trail: signal, sinks, the AuditRecord table, sampling, batching, fail-closed mode."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.admin import site as admin_site
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import connections
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from clearance import Denied, Layer, PolicyDenied, authorize, enforce, explain
from clearance.audit import UNRECORDED_CODE, emit, recording
from clearance.audit.logging import JsonFormatter
from clearance.audit.models import AppendOnlyError, AuditRecord
from clearance.audit.retention import parse_age, prune
from clearance.audit.routers import AuditRouter
from clearance.audit.sampling import seed
from clearance.decisions import Decision
from clearance.signals import decision_made
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "clearance.middleware.ClearanceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

# --------------------------------------------------------------------------------------------
# Sinks used by the tests (configured by dotted path, as a project would)
# --------------------------------------------------------------------------------------------

RECEIVED: list[tuple[Decision, Any]] = []


def clearance_checks() -> list[Any]:
    """The clearance system checks alone (other apps' checks may probe every database)."""
    return list(run_checks(tags=["clearance"]))


class ListSink:
    """A custom sink: keeps what it is given."""

    def record(self, decision: Decision, request: Any) -> None:
        RECEIVED.append((decision, request))


class BrokenSink:
    """A sink whose storage is down."""

    def record(self, decision: Decision, request: Any) -> None:
        raise ConnectionError("audit store unreachable")


@pytest.fixture(autouse=True)
def _audit_baseline(db: None) -> None:
    """Remember the last audit row before the test.

    On PostgreSQL audit rows are committed by the dedicated connection, outside the test's
    transaction, so rows of earlier tests are still in the table: each test reads its own.
    """
    global BASELINE
    BASELINE = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


BASELINE = 0


def records() -> Any:
    """The audit records written during the current test."""
    return AuditRecord.objects.filter(pk__gt=BASELINE)


@pytest.fixture(autouse=True)
def _clear_received() -> Iterator[None]:
    RECEIVED.clear()
    yield
    RECEIVED.clear()


@pytest.fixture
def denied_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """A document alice may not approve: she owns it (four eyes)."""
    return make_doc(owner=alice, title="own")


@pytest.fixture
def approvable(make_doc: Callable[..., Document], bob: User) -> Document:
    """A document alice may approve."""
    return make_doc(owner=bob, title="bob's")


# --------------------------------------------------------------------------------------------
# Views for the request tests
# --------------------------------------------------------------------------------------------


def approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    """Approves without passing the request: the middleware supplies it."""
    doc = Document.objects.get(pk=pk)
    decision = authorize(request.user, "testapp.approve", doc)
    return HttpResponse("yes" if decision else "no")


def approve_twice_view(request: HttpRequest, pk: int) -> HttpResponse:
    doc = Document.objects.get(pk=pk)
    first = authorize(request.user, "testapp.approve", doc)
    second = authorize(request.user, "testapp.approve", doc)
    pending = records().count()
    return HttpResponse(f"{bool(first)} {bool(second)} {pending}")


async def async_approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    from asgiref.sync import sync_to_async

    from clearance import aauthorize

    doc = await Document.objects.aget(pk=pk)
    user = await request.auser()  # type: ignore[attr-defined]
    decision = await aauthorize(user, "testapp.approve", doc)
    pending = await sync_to_async(records().count)()
    return HttpResponse(f"{bool(decision)} {pending}")


urlpatterns = [
    path("approve/<int:pk>/", approve_view),
    path("approve-twice/<int:pk>/", approve_twice_view),
    path("async-approve/<int:pk>/", async_approve_view),
]

# --------------------------------------------------------------------------------------------
# The signal
# --------------------------------------------------------------------------------------------


def test_one_signal_per_decision_with_the_decision(
    alice: User, denied_doc: Document, approvable: Document
) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    decision_made.connect(receiver)
    try:
        decisions = [
            authorize(alice, "testapp.approve", approvable),
            authorize(alice, "testapp.approve", denied_doc),
            explain(alice, "testapp.approve", denied_doc),
        ]
    finally:
        decision_made.disconnect(receiver)
    assert [kw["decision"] for kw in seen] == decisions
    assert all(kw["decision"] is d for kw, d in zip(seen, decisions, strict=True))
    assert [bool(d) for d in decisions] == [True, False, False]


# --------------------------------------------------------------------------------------------
# The database sink
# --------------------------------------------------------------------------------------------


def test_a_denial_is_one_audit_record_with_the_decisions_fields(
    alice: User, denied_doc: Document
) -> None:
    with pytest.raises(PolicyDenied) as raised:
        enforce(alice, "testapp.approve", denied_doc)
    decision = raised.value.decision
    record = records().get()
    assert record.allowed is False
    assert record.outcome == "denied"
    assert record.action == "testapp.approve"
    assert record.actor_label == "alice"
    assert record.actor_pk == str(alice.pk)
    assert record.actor_kind == "user"
    assert record.resource_model == "testapp.Document"
    assert record.resource_pk == str(denied_doc.pk)
    assert record.layer == "policy"
    assert record.rule == "four_eyes"
    assert record.code == "policy.four_eyes"
    assert record.reason == "Nobody approves their own document."
    assert record.error == ""
    assert record.at == decision.at
    assert record.fingerprint == decision.fingerprint
    assert record.explained is False
    assert record.trace == decision.as_dict()["trace"]
    assert [t["rule"] for t in record.trace] == [
        "testapp.approve_document",
        "tenant_member",
        "four_eyes",
    ]
    rebuilt = record.to_decision()
    assert (rebuilt.code, rebuilt.layer, rebuilt.reason, rebuilt.at) == (
        decision.code,
        Layer.POLICY,
        decision.reason,
        decision.at,
    )
    assert [t.rule for t in rebuilt.trace] == [t.rule for t in decision.trace]
    assert str(record) == (
        f"alice testapp.approve on testapp.Document:{denied_doc.pk}: denied by policy.four_eyes"
    )


def test_every_recorded_decision_is_one_row(
    alice: User, denied_doc: Document, approvable: Document
) -> None:
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True}):
        authorize(alice, "testapp.approve", approvable)
        authorize(alice, "testapp.approve", denied_doc)
        explain(alice, "testapp.approve", denied_doc)  # a probe: not recorded
        explain(alice, "testapp.approve", denied_doc, probe=False)
    rows = list(records().order_by("id"))
    assert [(r.allowed, r.code, r.explained, r.kind) for r in rows] == [
        (True, "allowed", False, "attempt"),
        (False, "policy.four_eyes", False, "attempt"),
        (False, "policy.four_eyes", True, "attempt"),
    ]
    # explain evaluated every rule; its row keeps the whole trace.
    assert len(rows[2].trace) > len(rows[1].trace)


def test_allowed_decisions_are_not_recorded_by_default(
    alice: User, approvable: Document, django_assert_num_queries: Any
) -> None:
    alice.has_perm("testapp.approve_document")  # warm the permission cache
    authorize(alice, "testapp.approve", approvable)  # warm the membership cache
    with django_assert_num_queries(0):
        assert authorize(alice, "testapp.approve", approvable)
    assert records().count() == 0


def test_gate_one_denials_on_unsaved_objects_are_recorded(make_user: Callable[..., User]) -> None:
    from django.contrib.auth.models import AnonymousUser

    outsider = make_user("outsider", approver=False)
    assert not authorize(outsider, "testapp.approve", Document(title="new"))
    assert not authorize(AnonymousUser(), "testapp.approve", Document(title="new"))
    rows = list(records().order_by("id"))
    assert [(r.actor_label, r.actor_pk, r.actor_kind) for r in rows] == [
        ("outsider", str(outsider.pk), "user"),
        ("anonymous", "", "anonymous"),
    ]
    assert {r.resource_pk for r in rows} == {""}
    assert {r.layer for r in rows} == {"permission"}
    assert {r.resource_model for r in rows} == {"testapp.Document"}


# --------------------------------------------------------------------------------------------
# Append-only
# --------------------------------------------------------------------------------------------


def test_audit_records_cannot_be_changed_or_deleted_through_the_orm(
    alice: User, denied_doc: Document
) -> None:
    authorize(alice, "testapp.approve", denied_doc)
    record = records().get()
    record.reason = "nothing to see"
    with pytest.raises(AppendOnlyError, match="append-only"):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        records().filter(pk=record.pk).update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        records().all().delete()
    with pytest.raises(AppendOnlyError):
        records().bulk_update([record], ["reason"])
    with pytest.raises(AppendOnlyError):
        records().update_or_create(pk=record.pk, defaults={"reason": "x"})
    # A "new" object carrying an existing primary key cannot overwrite the row either.
    impostor = records().get()
    impostor._state.adding = True
    impostor.reason = "overwritten"
    with pytest.raises(Exception):  # noqa: B017 (IntegrityError: the insert is forced)
        from django.db import transaction

        with transaction.atomic():
            impostor.save()
    stored = records().get()
    assert stored.reason == "Nobody approves their own document."


def test_prune_is_the_one_way_to_remove_old_records(alice: User, denied_doc: Document) -> None:
    for _ in range(3):
        authorize(alice, "testapp.approve", denied_doc)
    old = records().order_by("id")[:2]
    old_ids = [r.pk for r in old]
    # Back-date two records as a migration of old data would: a fresh insert with an old date.
    for record in records().filter(pk__in=old_ids):
        copy = AuditRecord.from_decision(record.to_decision())
        copy.at = timezone.now() - dt.timedelta(days=100)
        copy.save()
    assert records().count() == 5
    assert prune(dt.timedelta(days=90)) == 2
    assert records().count() == 3
    assert not records().filter(at__lt=timezone.now() - dt.timedelta(days=90)).exists()
    # Pruning did not unlock deletion for anyone else.
    with pytest.raises(AppendOnlyError):
        records().all().delete()


def test_prune_refuses_a_non_positive_age() -> None:
    with pytest.raises(ValueError, match="positive"):
        prune(dt.timedelta(0))
    with pytest.raises(TypeError):
        prune(90)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", dt.timedelta(days=90)),
        ("12h", dt.timedelta(hours=12)),
        ("4w", dt.timedelta(weeks=4)),
        (" 7D ", dt.timedelta(days=7)),
    ],
)
def test_parse_age_reads_hours_days_and_weeks(text: str, expected: dt.timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "90", "d", "3m", "1y", "-5d", "1.5d", "0d", "ninety days"])
def test_parse_age_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_age(text)


@given(st.integers(min_value=1, max_value=10**5), st.sampled_from(["h", "d", "w"]))
def test_parse_age_round_trips(amount: int, unit: str) -> None:
    unit_seconds = {"h": 3600, "d": 86400, "w": 7 * 86400}[unit]
    assert parse_age(f"{amount}{unit}").total_seconds() == amount * unit_seconds


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------


@override_settings(CLEARANCE={"AUDIT_REQUEST_ID_SET_BY_PROXY": True})
def test_a_denial_is_one_structured_record_on_clearance_audit(
    alice: User, denied_doc: Document, caplog: pytest.LogCaptureFixture
) -> None:
    request = RequestFactory().post(
        "/documents/1/approve", HTTP_X_REQUEST_ID="req-42", REMOTE_ADDR="203.0.113.9"
    )
    with caplog.at_level(logging.INFO, logger="clearance.audit"):
        decision = authorize(alice, "testapp.approve", denied_doc, request=request)
    records = [r for r in caplog.records if r.name == "clearance.audit"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == str(decision)
    fields = vars(record)
    for key, value in decision.as_dict().items():
        assert fields[key] == value, key
    assert fields["code"] == "policy.four_eyes"
    assert fields["actor"] == {"label": "alice", "pk": alice.pk, "kind": "user"}
    assert (fields["request_id"], fields["method"], fields["path"], fields["remote_addr"]) == (
        "req-42",
        "POST",
        "/documents/1/approve",
        "203.0.113.9",
    )

    line = JsonFormatter().format(record)
    assert "\n" not in line
    shipped = json.loads(line)
    assert shipped["logger"] == "clearance.audit"
    assert shipped["level"] == "WARNING"
    assert shipped["code"] == "policy.four_eyes"
    assert shipped["layer"] == "policy"
    assert shipped["allowed"] is False
    assert shipped["resource"] == {"model": "testapp.Document", "pk": denied_doc.pk}
    assert shipped["request_id"] == "req-42"
    assert [t["rule"] for t in shipped["trace"]] == [t.rule for t in decision.trace]
    assert dt.datetime.fromisoformat(shipped["at"]) == decision.at


def test_json_formatter_keeps_exceptions_and_odd_values() -> None:
    logger = logging.getLogger("clearance.audit.test")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logger.makeRecord(
            logger.name,
            logging.ERROR,
            __file__,
            1,
            "failed %s",
            ("x",),
            __import__("sys").exc_info(),
            extra={"when": dt.date(2026, 3, 3), "amount": Decimal("1.5")},
        )
    shipped = json.loads(JsonFormatter().format(record))
    assert shipped["message"] == "failed x"
    assert shipped["when"] == "2026-03-03"
    assert shipped["amount"] == "1.5"
    assert "RuntimeError: boom" in shipped["exception"]


@override_settings(CLEARANCE={"AUDIT_REQUEST_ID_SET_BY_PROXY": True})
def test_a_request_id_from_a_proxy_is_cleaned(alice: User, denied_doc: Document) -> None:
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="abc\r\nforged: 1" + "x" * 300)
    authorize(alice, "testapp.approve", denied_doc, request=request)
    record = records().get()
    assert record.request_id.startswith("abcforged:1")
    assert len(record.request_id) == 128


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "expected"), [(0, 0), (0.0, 0), (1, 40), (1.0, 40), (True, 40)])
def test_sampling_at_zero_and_one(
    rate: float, expected: int, alice: User, approvable: Document, denied_doc: Document
) -> None:
    with override_settings(CLEARANCE={"RECORD_ALLOWED": rate}):
        for _ in range(40):
            authorize(alice, "testapp.approve", approvable)
        authorize(alice, "testapp.approve", denied_doc)
    assert records().filter(allowed=True).count() == expected
    # Denials are recorded whatever the rate.
    assert records().filter(allowed=False).count() == 1


def test_sampling_draws_are_reproducible(alice: User, approvable: Document) -> None:
    counts = []
    with override_settings(CLEARANCE={"RECORD_ALLOWED": 0.25}):
        for _ in range(2):
            seed(1234)
            before = records().count()
            for _ in range(200):
                authorize(alice, "testapp.approve", approvable)
            counts.append(records().count() - before)
    seed(None)
    assert counts[0] == counts[1]
    assert 25 <= counts[0] <= 75


def test_a_rate_outside_zero_to_one_is_refused() -> None:
    from clearance.conf import clearance_settings

    with override_settings(CLEARANCE={"RECORD_ALLOWED": 1.5}), pytest.raises(ImproperlyConfigured):
        clearance_settings.RECORD_ALLOWED  # noqa: B018


# --------------------------------------------------------------------------------------------
# Custom sinks and failures
# --------------------------------------------------------------------------------------------


def test_custom_sinks_by_dotted_path(alice: User, denied_doc: Document) -> None:
    request = RequestFactory().get("/")
    with override_settings(CLEARANCE={"AUDIT_SINKS": ["tests.test_audit.ListSink"]}):
        decision = authorize(alice, "testapp.approve", denied_doc, request=request)
    assert [(decision, request)] == RECEIVED
    assert records().count() == 0  # only the configured sinks run


def test_an_unimportable_sink_is_a_configuration_error(alice: User, denied_doc: Document) -> None:
    with override_settings(CLEARANCE={"AUDIT_SINKS": ["tests.nowhere.Sink"]}):
        with pytest.raises(ImproperlyConfigured, match=r"tests\.nowhere\.Sink"):
            authorize(alice, "testapp.approve", denied_doc)
        assert any(m.id == "clearance.E501" for m in clearance_checks())


def test_a_failing_sink_is_logged_and_the_decision_stands(
    alice: User, approvable: Document, denied_doc: Document, caplog: pytest.LogCaptureFixture
) -> None:
    sinks = ["tests.test_audit.BrokenSink", "tests.test_audit.ListSink"]
    with (
        override_settings(CLEARANCE={"AUDIT_SINKS": sinks, "RECORD_ALLOWED": True}),
        caplog.at_level(logging.ERROR, logger="clearance"),
    ):
        allowed = authorize(alice, "testapp.approve", approvable)
        denied = authorize(alice, "testapp.approve", denied_doc)
    assert allowed.allowed and allowed.code == "allowed"
    assert denied.code == "policy.four_eyes"
    failures = [
        r for r in caplog.records if r.levelno == logging.ERROR and "BrokenSink" in r.getMessage()
    ]
    assert len(failures) == 2
    assert all(r.exc_info and "unreachable" in str(r.exc_info[1]) for r in failures)
    # The other sinks still got every decision.
    assert [d for d, _ in RECEIVED] == [allowed, denied]


def test_fail_closed_turns_an_unrecordable_decision_into_a_denial(
    alice: User, approvable: Document, denied_doc: Document
) -> None:
    settings = {
        "AUDIT_SINKS": ["tests.test_audit.BrokenSink"],
        "RECORD_ALLOWED": True,
        "AUDIT_FAIL_CLOSED": True,
    }
    with override_settings(CLEARANCE=settings):
        decision = authorize(alice, "testapp.approve", approvable)
        assert not decision
        assert decision.code == UNRECORDED_CODE == "audit.unrecorded"
        assert decision.layer is None
        assert "audit trail" in decision.reason
        assert decision.error is not None and "unreachable" in decision.error
        # The rules were evaluated and held: the trace says so.
        assert all(t.outcome for t in decision.trace)
        with pytest.raises(Denied) as raised:
            enforce(alice, "testapp.approve", approvable)
        assert raised.value.code == "audit.unrecorded"
        # A denial stays the denial its rule made.
        assert authorize(alice, "testapp.approve", denied_doc).code == "policy.four_eyes"
    with override_settings(CLEARANCE={**settings, "AUDIT_FAIL_CLOSED": False}):
        assert authorize(alice, "testapp.approve", approvable)


def test_fail_closed_when_the_audit_table_is_unreachable(alice: User, approvable: Document) -> None:
    settings = {"RECORD_ALLOWED": True, "AUDIT_FAIL_CLOSED": True, "AUDIT_DATABASE": "nowhere"}
    with override_settings(CLEARANCE=settings):
        decision = authorize(alice, "testapp.approve", approvable)
    assert decision.code == "audit.unrecorded"
    assert "nowhere" in (decision.error or "")


def test_fail_closed_without_recording_allowed_decisions_is_reported() -> None:
    with override_settings(CLEARANCE={"AUDIT_FAIL_CLOSED": True}):
        assert any(m.id == "clearance.W503" for m in clearance_checks())


def test_emit_returns_the_decision_unchanged_when_recorded(
    alice: User, denied_doc: Document
) -> None:
    decision = authorize(alice, "testapp.approve", denied_doc)
    assert emit(decision) is decision
    assert records().count() == 2


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def test_buffered_records_are_written_when_full_and_at_the_end(
    alice: User, approvable: Document, denied_doc: Document
) -> None:
    settings = {"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 3}
    with override_settings(CLEARANCE=settings), recording() as scope:
        authorize(alice, "testapp.approve", approvable)
        authorize(alice, "testapp.approve", denied_doc)  # a denial waits with the rest
        assert records().count() == 0
        assert scope.pending == 2
        authorize(alice, "testapp.approve", approvable)  # the third: the buffer is full
        assert list(records().order_by("id").values_list("allowed", flat=True)) == [
            True,
            False,
            True,
        ]
        assert scope.pending == 0
        authorize(alice, "testapp.approve", approvable)
        assert scope.pending == 1
    assert records().count() == 4


def test_write_through_writes_denied_attempts_at_once(
    alice: User, approvable: Document, denied_doc: Document
) -> None:
    settings = {"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 10, "AUDIT_WRITE_THROUGH": True}
    with override_settings(CLEARANCE=settings), recording() as scope:
        authorize(alice, "testapp.approve", approvable)
        authorize(alice, "testapp.approve", denied_doc)
        assert list(records().values_list("allowed", flat=True)) == [False]
        with pytest.raises(PolicyDenied):
            enforce(alice, "testapp.approve", denied_doc)
        assert records().filter(allowed=False).count() == 2
        assert scope.pending == 1  # the allowed decision waits for the end of the scope
    assert records().count() == 3


def test_a_bad_write_through_setting_is_a_configuration_error() -> None:
    from clearance.conf import clearance_settings

    with (
        override_settings(CLEARANCE={"AUDIT_WRITE_THROUGH": "yes"}),
        pytest.raises(ImproperlyConfigured, match="AUDIT_WRITE_THROUGH"),
    ):
        clearance_settings.AUDIT_WRITE_THROUGH  # noqa: B018


def test_without_a_scope_or_in_fail_closed_mode_nothing_is_buffered(
    alice: User, approvable: Document
) -> None:
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 50}):
        authorize(alice, "testapp.approve", approvable)
        assert records().count() == 1
    settings = {"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 50, "AUDIT_FAIL_CLOSED": True}
    with override_settings(CLEARANCE=settings), recording():
        authorize(alice, "testapp.approve", approvable)
        assert records().count() == 2


def test_nested_scopes_share_the_outer_buffer(alice: User, approvable: Document) -> None:
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 10}):
        with recording():
            with recording():
                authorize(alice, "testapp.approve", approvable)
            assert records().count() == 0
        assert records().count() == 1


def test_a_bad_request_id_header_is_reported_and_ignored(alice: User, denied_doc: Document) -> None:
    with override_settings(CLEARANCE={"AUDIT_REQUEST_ID_HEADER": 42}):
        assert any(m.id == "clearance.E504" for m in clearance_checks())
        authorize(alice, "testapp.approve", denied_doc, request=RequestFactory().get("/"))
    assert records().get().request_id == ""


def test_a_bad_batch_size_is_a_configuration_error(alice: User, approvable: Document) -> None:
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": 0}):
        assert any(m.id == "clearance.E502" for m in clearance_checks())


# --------------------------------------------------------------------------------------------
# The middleware
# --------------------------------------------------------------------------------------------


@override_settings(ROOT_URLCONF="tests.test_audit", MIDDLEWARE=MIDDLEWARE)
def test_the_middleware_gives_decisions_their_request(
    client: Client, alice: User, denied_doc: Document
) -> None:
    client.force_login(alice)
    response = client.get(f"/approve/{denied_doc.pk}/", REMOTE_ADDR="198.51.100.7")
    assert response.content == b"no"
    record = records().get()
    assert (record.method, record.path, record.remote_addr) == (
        "GET",
        f"/approve/{denied_doc.pk}/",
        "198.51.100.7",
    )
    assert re.fullmatch(r"[0-9a-f]{32}", record.request_id)

    # A client's header is not trusted: a client could file its requests under another's id.
    client.get(f"/approve/{denied_doc.pk}/", HTTP_X_REQUEST_ID="trace-7")
    latest = records().order_by("-id").first()
    assert latest is not None and latest.request_id != "trace-7"
    assert re.fullmatch(r"[0-9a-f]{32}", latest.request_id)

    # Unless the project says a proxy sets it on every request.
    with override_settings(CLEARANCE={"AUDIT_REQUEST_ID_SET_BY_PROXY": True}):
        client.get(f"/approve/{denied_doc.pk}/", HTTP_X_REQUEST_ID="trace-8")
    assert records().order_by("-id").first().request_id == "trace-8"  # type: ignore[union-attr]


@override_settings(ROOT_URLCONF="tests.test_audit", MIDDLEWARE=MIDDLEWARE)
def test_the_middleware_writes_batched_records_when_the_response_is_ready(
    client: Client, alice: User, approvable: Document
) -> None:
    client.force_login(alice)
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 100}):
        response = client.get(f"/approve-twice/{approvable.pk}/")
    # Inside the view nothing was written yet; after the response both rows are there.
    assert response.content == b"True True 0"
    rows = list(records().all())
    assert len(rows) == 2
    assert len({r.request_id for r in rows}) == 1


@override_settings(ROOT_URLCONF="tests.test_audit", MIDDLEWARE=MIDDLEWARE)
@pytest.mark.django_db(transaction=True)
async def test_the_middleware_works_for_async_views(
    async_client: Any, alice: User, approvable: Document, denied_doc: Document
) -> None:
    from asgiref.sync import sync_to_async

    await async_client.aforce_login(alice)
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True, "AUDIT_BATCH_SIZE": 100}):
        allowed = await async_client.get(f"/async-approve/{approvable.pk}/")
        denied = await async_client.get(f"/async-approve/{denied_doc.pk}/")
    assert allowed.content == b"True 0"  # buffered: written when the response was ready
    # The first request's record was written when it ended; the denial waits for its own end.
    assert denied.content == b"False 1"
    rows = await sync_to_async(lambda: list(records().order_by("id")))()
    assert [(r.allowed, r.path) for r in rows] == [
        (True, f"/async-approve/{approvable.pk}/"),
        (False, f"/async-approve/{denied_doc.pk}/"),
    ]
    assert all(r.request_id for r in rows)
    # The views ran in asgiref's worker thread: close its connections, as a server would.
    await sync_to_async(connections.close_all)()


# --------------------------------------------------------------------------------------------
# The admin
# --------------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client: Client, make_user: Callable[..., User]) -> Client:
    admin = make_user("root", approver=False, is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_the_admin_lists_records_read_only_with_filters(
    staff_client: Client, alice: User, denied_doc: Document
) -> None:
    authorize(alice, "testapp.approve", denied_doc)
    record = records().get()
    changelist = staff_client.get("/admin/clearance/auditrecord/")
    assert changelist.status_code == 200
    body = changelist.content.decode()
    assert "policy.four_eyes" in body
    for title in ("By outcome", "By layer", "By action", "By actor", "By decided at"):
        assert title in body, title
    filtered = staff_client.get("/admin/clearance/auditrecord/?outcome=allowed")
    assert "policy.four_eyes" not in filtered.content.decode()
    detail = staff_client.get(f"/admin/clearance/auditrecord/{record.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    # Add, change and delete are refused (called directly: the 403 page is the project's).
    model_admin = admin_site._registry[AuditRecord]
    root = User.objects.get(username="root")
    factory = RequestFactory()
    for method, view, args in [
        ("get", model_admin.add_view, ()),
        ("post", model_admin.change_view, (str(record.pk),)),
        ("post", model_admin.delete_view, (str(record.pk),)),
    ]:
        request = getattr(factory, method)("/", {"reason": "edited"})
        request.user = root
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
        with pytest.raises(PermissionDenied):
            view(request, *args)
    assert model_admin.get_actions(factory.get("/")) == {}
    assert records().get().reason == "Nobody approves their own document."


# --------------------------------------------------------------------------------------------
# The router and the checks
# --------------------------------------------------------------------------------------------


def test_the_router_keeps_the_audit_table_in_its_own_database() -> None:
    router = AuditRouter()
    assert router.db_for_write(AuditRecord) is None
    assert router.allow_migrate("default", "clearance", "auditrecord") is None
    with override_settings(CLEARANCE={"AUDIT_DATABASE": "audit"}):
        assert router.db_for_read(AuditRecord) == "audit"
        assert router.db_for_write(AuditRecord) == "audit"
        assert router.db_for_write(Document) is None
        assert router.allow_migrate("audit", "clearance", "auditrecord") is True
        assert router.allow_migrate("default", "clearance", "auditrecord") is False
        assert router.allow_migrate("audit", "testapp", "document") is False
        assert router.allow_migrate("default", "testapp", "document") is None


def test_checks_report_a_missing_router_and_a_missing_alias() -> None:
    with override_settings(CLEARANCE={"AUDIT_DATABASE": "audit"}, DATABASE_ROUTERS=[]):
        assert "clearance.W501" in {m.id for m in clearance_checks()}
    with override_settings(
        CLEARANCE={"AUDIT_DATABASE": "audit"},
        DATABASE_ROUTERS=["clearance.audit.routers.AuditRouter"],
    ):
        assert not {m.id for m in clearance_checks()} & {"clearance.W501", "clearance.E503"}
    with override_settings(CLEARANCE={"AUDIT_DATABASE": "elsewhere"}):
        assert "clearance.E503" in {m.id for m in clearance_checks()}


def test_a_rule_that_raises_is_recorded_with_its_error(
    fresh_registry: Any, alice: User, make_doc: Callable[..., Document]
) -> None:
    from clearance import Action, predicate

    @predicate
    def explodes(ctx: Any) -> bool:
        raise ZeroDivisionError("no")

    act = Action("testapp.explode", model=Document, permission="testapp.approve_document")
    act.policy("explodes", explodes, reason="Explodes.")
    decision = authorize(alice, act, make_doc())
    record = records().get()
    assert record.error == decision.error == "ZeroDivisionError: no"
    assert record.layer == Layer.POLICY.value


def test_overlong_values_are_cut_to_their_columns_rather_than_lost(
    alice: User, denied_doc: Document
) -> None:
    from clearance.decisions import ActorRef

    decision = authorize(alice, "testapp.approve", denied_doc).replace(
        actor=ActorRef("a" * 400, "9" * 100, "service"), rule="r" * 300
    )
    emit(decision, RequestFactory().get("/", REMOTE_ADDR="x" * 100))
    record = records().order_by("-id").first()
    assert record is not None
    assert (len(record.actor_label), len(record.actor_pk), len(record.rule)) == (255, 64, 255)
    assert len(record.remote_addr) == 64
    assert record.actor_kind == "service"


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    verdicts=st.lists(st.booleans(), max_size=25),
    batch=st.integers(min_value=1, max_value=8),
    write_through=st.booleans(),
)
def test_buffering_never_loses_a_decision_nor_holds_more_than_a_batch(
    verdicts: list[bool],
    batch: int,
    write_through: bool,
    alice: User,
    approvable: Document,
    denied_doc: Document,
) -> None:
    """For any sequence of decisions and any batch size: fewer than a batch of records wait at
    any time, with ``AUDIT_WRITE_THROUGH`` every denial is in the table as soon as it is
    decided, and when the scope ends every decision has exactly one row."""
    start = records().aggregate(last=Max("id"))["last"] or BASELINE
    mine = lambda: AuditRecord.objects.filter(pk__gt=start)  # noqa: E731
    settings = {
        "RECORD_ALLOWED": True,
        "AUDIT_BATCH_SIZE": batch,
        "AUDIT_WRITE_THROUGH": write_through,
    }
    denials = 0
    with override_settings(CLEARANCE=settings):
        with recording() as scope:
            for n, allowed in enumerate(verdicts, start=1):
                authorize(alice, "testapp.approve", approvable if allowed else denied_doc)
                denials += not allowed
                assert scope.pending < batch
                assert mine().count() + scope.pending == n
                if write_through:
                    assert mine().filter(allowed=False).count() == denials
        assert mine().filter(allowed=False).count() == denials
        assert mine().filter(allowed=True).count() == len(verdicts) - denials
