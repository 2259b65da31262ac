"""The calling service behind a decision is recorded with the request's metadata."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import RequestFactory

from clearance import authorize
from clearance.audit.models import AuditRecord
from clearance.audit.requests import CALLER_ATTRIBUTE, request_metadata
from tests.testapp.models import Document


@pytest.fixture
def own_doc(make_doc: Callable[..., Document], alice: User) -> Document:
    """A document alice may not approve (four eyes), so the decision is recorded."""
    return make_doc(owner=alice, title="own")


def test_the_caller_is_part_of_the_request_metadata() -> None:
    request = RequestFactory().post("/authzen/access/v1/evaluation")
    assert request_metadata(request)["caller"] == ""
    setattr(request, CALLER_ATTRIBUTE, "token:gateway")
    assert request_metadata(request)["caller"] == "token:gateway"
    assert request_metadata(None) == {}


@pytest.fixture(autouse=True)
def proxy_sets_the_request_id(settings: Any) -> None:
    """The tests find their record by the request id they send: trust the header."""
    settings.CLEARANCE = {"AUDIT_REQUEST_ID_SET_BY_PROXY": True}


def test_a_decision_records_its_caller(
    alice: User, own_doc: Document, caplog: pytest.LogCaptureFixture
) -> None:
    request_id = uuid.uuid4().hex
    request = RequestFactory().post("/authzen/access/v1/evaluation", HTTP_X_REQUEST_ID=request_id)
    setattr(request, CALLER_ATTRIBUTE, "token:gateway")
    with caplog.at_level(logging.INFO, logger="clearance.audit"):
        decision = authorize(alice, "testapp.approve", own_doc, request=request)
    assert not decision.allowed
    record = AuditRecord.objects.get(request_id=request_id)
    assert record.caller == "token:gateway"
    logged = [r for r in caplog.records if r.name == "clearance.audit"]
    assert vars(logged[-1])["caller"] == "token:gateway"


def test_a_decision_without_a_caller_records_none(alice: User, own_doc: Document) -> None:
    request_id = uuid.uuid4().hex
    request = RequestFactory().get("/documents/", HTTP_X_REQUEST_ID=request_id)
    authorize(alice, "testapp.approve", own_doc, request=request)
    assert AuditRecord.objects.get(request_id=request_id).caller == ""
