"""A gate that raised because the database was unavailable: 503 through the integrations.

The database is made to drop the permission queries (an ``OperationalError``, as when the
server restarts in the middle of a request): the decision denies, fails closed, says why in its
reason, and the views and the API answer 503 Service Unavailable — not 404, not 403, not 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError, connection
from django.db.models import Max
from django.test import Client
from rest_framework.test import APIClient

from clearance import authorize
from clearance.audit.models import AuditRecord
from clearance.decisions import UNAVAILABLE_REASON, is_unavailable
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

Docs = dict[str, Document]


@contextmanager
def permissions_unreachable() -> Iterator[None]:
    """Every query of the permission tables fails as a dropped connection does."""

    def drop(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        if "auth_permission" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, *args)

    with connection.execute_wrapper(drop):
        yield


def _last_id() -> int:
    return AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0


def test_the_decision_says_the_database_was_unavailable(member: User, docs: Docs) -> None:
    user = User.objects.get(pk=member.pk)  # no permission cache yet
    with permissions_unreachable():
        decision = authorize(user, "testapp.view", docs["a"])
    assert not decision
    assert decision.reason == UNAVAILABLE_REASON
    assert decision.code == "permission.testapp.view_document"  # the gate that could not decide
    assert decision.error is not None and decision.error.startswith("OperationalError: ")
    assert is_unavailable(decision)


def test_a_view_answers_503_not_404(
    client_for: Callable[[User], Client], member: User, docs: Docs
) -> None:
    client = client_for(member)
    before = _last_id()
    with permissions_unreachable():
        response = client.post(
            f"/contrib/fn/{docs['a'].pk}/approve/", HTTP_ACCEPT="application/json"
        )
    assert response.status_code == 503
    assert response.json()["reason"] == UNAVAILABLE_REASON
    docs["a"].refresh_from_db()
    assert docs["a"].state == "submitted"  # nothing was approved
    [record] = AuditRecord.objects.filter(pk__gt=before)
    assert record.reason == UNAVAILABLE_REASON and not record.allowed


def test_a_view_answers_503_with_the_403_page_for_people(
    client_for: Callable[[User], Client], member: User, docs: Docs
) -> None:
    with permissions_unreachable():
        response = client_for(member).get(f"/contrib/fn/{docs['a'].pk}/")
    assert response.status_code == 503


def test_the_api_answers_503(
    api_for: Callable[[User], APIClient], member: User, docs: Docs
) -> None:
    client = api_for(member)
    with permissions_unreachable():
        detail = client.get(f"/api/documents/{docs['a'].pk}/")
        listing = client.get("/api/documents/")
    assert detail.status_code == listing.status_code == 503
    assert detail.json()["reason"] == UNAVAILABLE_REASON


def test_other_errors_of_a_gate_still_answer_as_before(
    client_for: Callable[[User], Client], member: User, docs: Docs
) -> None:
    """Only an unavailable database is a 503: another exception stays a hidden denial."""

    def broken(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        if "auth_permission" in sql:
            raise ValueError("not the database's fault")
        return execute(sql, *args)

    with connection.execute_wrapper(broken):
        response = client_for(member).get(f"/contrib/fn/{docs['a'].pk}/")
    assert response.status_code == 404
