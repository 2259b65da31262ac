"""A rule that raises: every entry point answers with the decision's reason, never a made-up one.

The approval limit is read from the approver's profile, and Alice has no profile row, so the
invariant raises while it is evaluated. The decision denies (fail closed) and its ``reason`` is
what the engine says about a rule it could not decide; the REST API's body, the 403 page and the
console must show that reason, exactly as the decision carries it.
"""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

import clearance
from clearance import ACTOR, where
from clearance.decisions import Decision
from clearance.testing import override_rules
from invoices.models import Invoice

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

DECLARED = "The amount is above your approval limit."


@pytest.fixture
def limit_from_profile() -> Iterator[None]:
    """``within_limit`` reads ``ACTOR.approver_profile``, which no demo user has."""
    with override_rules(
        "invoices.approve",
        invariants={"within_limit": where(amount__lte=ACTOR.approver_profile.approval_limit)},
        reasons={"within_limit": DECLARED},
    ):
        yield


@pytest.fixture
def decided(
    limit_from_profile: None, user: Callable[[str], Any], invoice: Callable[[str], Invoice]
) -> Decision:
    """Alice approving Bob's submitted ACME-002, as the engine decides it."""
    decision = clearance.authorize(user("alice"), "invoices.approve", invoice("ACME-002"))
    assert not decision and decision.error
    assert decision.code == "invariant.within_limit"
    return decision


def test_the_api_body_carries_the_decisions_reason(
    decided: Decision, user: Callable[[str], Any], invoice: Callable[[str], Invoice]
) -> None:
    client = APIClient()
    client.force_login(user("alice"))
    response = client.post(f"/api/invoices/{invoice('ACME-002').pk}/approve/")
    assert response.status_code == 409
    body = response.json()
    assert body["reason"] == body["detail"] == decided.reason
    assert body["code"] == "invariant.within_limit"
    assert "approver_profile" not in response.content.decode()  # no exception text
    assert invoice("ACME-002").state == "submitted"


def test_the_403_page_carries_the_decisions_reason(
    decided: Decision, client_for: Callable[[str], Client], invoice: Callable[[str], Invoice]
) -> None:
    response = client_for("alice").post(f"/invoices/{invoice('ACME-002').pk}/approve/")
    assert response.status_code == 409  # an invariant refused, as the API answers
    page = response.content.decode()
    assert f'<p class="reason big">{decided.reason}</p>' in page
    assert "approver_profile" not in page
    assert invoice("ACME-002").state == "submitted"


def test_the_console_shows_the_decisions_reason_and_what_raised(
    decided: Decision, client_for: Callable[[str], Client], invoice: Callable[[str], Invoice]
) -> None:
    target = invoice("ACME-002")
    page = (
        client_for("erin")
        .get(f"/clearance/explain/?user=alice&action=invoices.approve&object={target.pk}")
        .content.decode()
    )
    assert f"rule <code>within_limit</code>:\n  {decided.reason}</p>" in page
    row = page[page.index('data-rule="within_limit"') :]
    row = row[: row.index("</tr>")]
    assert "Could not be decided: the rule raised AttributeError" in row
    assert DECLARED not in row


def test_a_raising_rules_declared_reason_is_never_shown(
    decided: Decision,
    user: Callable[[str], Any],
    client_for: Callable[[str], Client],
    invoice: Callable[[str], Invoice],
) -> None:
    # The decision says it could not be decided; no entry point tells the person the declared
    # sentence, which was never found true.
    assert decided.reason.startswith("could not be decided: rule within_limit raised")
    target = invoice("ACME-002")
    api = APIClient()
    api.force_login(user("alice"))
    body = api.post(f"/api/invoices/{target.pk}/approve/").json()
    page = client_for("alice").post(f"/invoices/{target.pk}/approve/").content.decode()
    console = (
        client_for("erin")
        .get(f"/clearance/explain/?user=alice&action=invoices.approve&object={target.pk}")
        .content.decode()
    )
    assert body["reason"].startswith("could not be decided")
    for shown in (str(body), page, console):
        assert "could not be decided" in shown
        assert DECLARED not in shown
