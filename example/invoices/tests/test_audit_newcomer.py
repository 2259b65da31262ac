"""The demo used as a newcomer would: browsing records nothing, a refused action one row.

The demo's own middleware, audit database and router are in force (``demo.settings``), so
what is measured is what a person clicking through ``make demo`` would leave in the trail.
"""

import re
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Max
from django.test import Client, override_settings

from clearance.audit.models import AuditRecord
from demo import settings as demo_settings
from invoices.models import Invoice

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

DEMO = {
    "MIDDLEWARE": demo_settings.MIDDLEWARE,
    "CLEARANCE": demo_settings.CLEARANCE,
    "DATABASE_ROUTERS": demo_settings.DATABASE_ROUTERS,
}


def _last_record() -> int:
    return int(AuditRecord.objects.using("audit").aggregate(last=Max("id"))["last"] or 0)


def _log_in(username: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": username, "password": "demo"})
    assert response.status_code == 302, f"{username} could not log in"
    return client


def _browse(client: Client, paths: list[str], **headers: str) -> None:
    for path in paths:
        response = client.get(path, **headers)
        assert response.status_code == 200, (path, response.status_code)


@override_settings(**DEMO)
def test_browsing_the_demo_records_nothing_and_a_refused_post_one_attempt(
    demo: str, invoice: Callable[[str], Invoice]
) -> None:
    own = invoice("ACME-003")  # alice's: four eyes refuses her approval
    draft = invoice("ACME-001")  # bob's draft: alice may not change it
    before = _last_record()

    alice = _log_in("alice")
    _browse(
        alice,
        [
            "/invoices/",
            f"/invoices/{own.pk}/",
            f"/invoices/{draft.pk}/",
            f"/invoices/{own.pk}/print/",
        ],
    )
    # The browsable API: the list, and a detail page whose edit forms it decides to offer.
    _browse(alice, ["/api/invoices/", f"/api/invoices/{own.pk}/", f"/api/invoices/{draft.pk}/"])
    _browse(alice, ["/api/invoices/", f"/api/invoices/{own.pk}/"], HTTP_ACCEPT="text/html")
    response = alice.options(f"/api/invoices/{own.pk}/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    erin = _log_in("erin")  # staff: the console
    _browse(
        erin,
        [
            "/invoices/",
            f"/invoices/{own.pk}/",
            "/clearance/",
            "/clearance/actions/",
            "/clearance/matrix/",
            "/clearance/audit/",
            f"/clearance/explain/?user=alice&action=invoices.approve&object={own.pk}",
        ],
    )
    assert _last_record() == before, "browsing recorded audit rows"

    response = alice.post(f"/invoices/{own.pk}/approve/", HTTP_X_REQUEST_ID="newcomer-42")
    assert response.status_code == 403
    record = AuditRecord.objects.using("audit").get(pk__gt=before)
    assert (record.kind, record.allowed, record.code) == ("attempt", False, "policy.four_eyes")
    assert (record.actor_label, record.resource_pk) == ("alice", str(own.pk))
    # The demo runs behind no proxy: the client's X-Request-ID is not trusted, an id is generated.
    assert record.method == "POST"
    assert re.fullmatch(r"[0-9a-f]{32}", record.request_id)
    assert record.path == f"/invoices/{own.pk}/approve/"
    assert get_user_model().objects.get(username="alice").pk == int(record.actor_pk)


class _Statements:
    """Counts the SQL statements sent on every database connection."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.sql.append(sql)
        return execute(sql, params, many, context)


def _statements(client: Client, method: str, path: str, **headers: Any) -> tuple[int, list[str]]:
    counter = _Statements()
    with ExitStack() as stack:
        for conn in connections.all():
            stack.enter_context(conn.execute_wrapper(counter))
        response = getattr(client, method)(path, **headers)
    return response.status_code, counter.sql


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("post", "/api/invoices/{own}/approve/", 403),  # a refused API request
        ("get", "/invoices/", 200),  # a page of decisions about what to show
        ("get", "/api/invoices/{own}/", 200),  # the browsable API and its forms
    ],
)
def test_what_the_audit_adds_to_a_request_in_statements(
    demo: str, invoice: Callable[[str], Invoice], method: str, path: str, status: int
) -> None:
    """A refused request costs one INSERT more than with audit off; browsing costs none."""
    own = invoice("ACME-003")
    url = path.format(own=own.pk)
    counts = {}
    for audit in ("off", "on"):
        settings = {**DEMO, "CLEARANCE": {**demo_settings.CLEARANCE}}
        if audit == "off":
            settings["CLEARANCE"]["AUDIT_SINKS"] = []
        with override_settings(**settings):
            client = _log_in("alice")
            _statements(client, method, url, HTTP_ACCEPT="text/html")  # warm the session
            code, sql = _statements(client, method, url, HTTP_ACCEPT="text/html")
        assert code == status
        counts[audit] = sql
    extra = len(counts["on"]) - len(counts["off"])
    expected = 1 if status == 403 else 0
    assert extra == expected, counts["on"][-3:]
    if expected:
        assert counts["on"][-1].startswith('INSERT INTO "clearance_auditrecord"')
