"""The audit page: filters, pages, and the chart of decisions per day, split by layer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from clearance import authorize, explain
from clearance.audit.models import AuditRecord
from clearance.console.views import PAGE_SIZE
from tests.testapp.models import Document

from .html import element, links, visible_text

pytestmark = pytest.mark.django_db

Record = Callable[..., AuditRecord]


@pytest.fixture
def people(
    make_user: Callable[..., User], unique: Callable[[str], str], tenant: Any
) -> dict[str, User]:
    """An approver and a clerk with names no other test uses."""
    return {
        "approver": make_user(unique("ann"), tenants=(tenant,)),
        "clerk": make_user(unique("carl"), approver=False, tenants=(tenant,)),
    }


@pytest.fixture
def record(make_doc: Callable[..., Document], settings: Any) -> Record:
    """Record a real decision, as of ``days_ago`` days ago (audit rows are copies).

    The sinks are off, so each decision is recorded once, by the test, with the date it needs.
    """
    settings.CLEARANCE = {**settings.CLEARANCE, "AUDIT_SINKS": []}

    def make(
        actor: User, *, own: bool = False, days_ago: int = 0, allowed: bool = False, **doc: Any
    ) -> AuditRecord:
        document = make_doc(owner=None if allowed or not own else actor, **doc)
        decision = explain(actor, "testapp.approve", document, probe=False)
        decision = decision.replace(at=decision.at - dt.timedelta(days=days_ago))
        saved = AuditRecord.from_decision(decision)
        saved.save()
        return saved

    return make


def audit_page(client: Client, **params: Any) -> str:
    response = client.get(f"/clearance/audit/?{urlencode(params)}")
    assert response.status_code == 200
    return response.content.decode()


def shown(page: str) -> list[int]:
    """The primary keys of the records listed on the page, in order."""
    import re

    return [int(pk) for pk in re.findall(r'data-record="(\d+)"', page)]


def test_a_real_denial_shows_up_with_gate_rule_and_reason(
    staff_client: Client, people: dict[str, User], make_doc: Callable[..., Document]
) -> None:
    ann = people["approver"]
    decision = authorize(ann, "testapp.approve", make_doc(owner=ann))
    assert not decision

    page = audit_page(staff_client, actor=ann.username)
    row = visible_text(element(page, "tr", "class", "record record-denied"))

    assert f"denied {ann.username} testapp.approve testapp.Document:" in row
    assert "policy four_eyes Nobody approves their own document." in row
    assert "Records (1)" in visible_text(page)


def test_filters_by_outcome_layer_action_and_actor(
    staff_client: Client, people: dict[str, User], record: Record
) -> None:
    ann, carl = people["approver"], people["clerk"]
    own = record(ann, own=True)  # policy four_eyes
    missing = record(carl)  # permission
    allowed = record(ann, allowed=True)
    big = record(ann, amount=50_000)  # invariant within_limit

    mine = audit_page(staff_client, actor=ann.username[:7])
    assert set(shown(mine)) == {own.pk, allowed.pk, big.pk}
    assert shown(audit_page(staff_client, actor=ann.username, outcome="allowed")) == [allowed.pk]
    policy = audit_page(staff_client, actor=ann.username, outcome="denied", layer="policy")
    assert shown(policy) == [own.pk]
    assert shown(audit_page(staff_client, actor=ann.username, layer="invariant")) == [big.pk]
    assert shown(audit_page(staff_client, actor=carl.username, layer="permission")) == [missing.pk]
    assert shown(audit_page(staff_client, actor=carl.username, action="testapp.read")) == []


def test_filters_by_date(staff_client: Client, people: dict[str, User], record: Record) -> None:
    ann = people["approver"]
    old = record(ann, own=True, days_ago=10)
    recent = record(ann, own=True, days_ago=1)
    today = timezone.localdate()

    page = audit_page(
        staff_client,
        actor=ann.username,
        since=(today - dt.timedelta(days=12)).isoformat(),
        until=(today - dt.timedelta(days=5)).isoformat(),
    )
    assert shown(page) == [old.pk]
    since = (today - dt.timedelta(days=2)).isoformat()
    assert shown(audit_page(staff_client, actor=ann.username, since=since)) == [recent.pk]


def test_newest_first_and_paginated_with_the_filters_kept(
    staff_client: Client, people: dict[str, User], record: Record
) -> None:
    ann = people["approver"]
    records = [record(ann, own=True) for _ in range(PAGE_SIZE + 3)]

    first = audit_page(staff_client, actor=ann.username)
    assert f"Records ({PAGE_SIZE + 3})" in visible_text(first)
    assert shown(first) == [r.pk for r in reversed(records)][:PAGE_SIZE]
    assert "Page 1 of 2" in visible_text(first)
    older = next(link for link in links(first) if "page=2" in link)
    assert older == f"?actor={ann.username}&page=2"

    second = staff_client.get(f"/clearance/audit/{older}").content.decode()
    assert shown(second) == [r.pk for r in reversed(records)][PAGE_SIZE:]


def test_invalid_filters_are_reported_not_applied(
    staff_client: Client, people: dict[str, User], record: Record
) -> None:
    ann = people["approver"]
    kept = record(ann, own=True)

    page = audit_page(staff_client, actor=ann.username, since="last tuesday", layer="wizard")

    text = visible_text(page)
    assert "Enter a valid date." in text
    assert "Select a valid choice. wizard is not one of the available choices." in text
    assert "Some filters are not valid and were left out" in text
    assert kept.pk in shown(page)


def test_the_chart_counts_decisions_per_day_by_layer(
    staff_client: Client, people: dict[str, User], record: Record
) -> None:
    ann, carl = people["approver"], people["clerk"]
    record(ann, own=True, days_ago=2)
    record(ann, own=True, days_ago=2)
    record(carl, days_ago=2)
    record(ann, allowed=True, days_ago=2)
    record(ann, amount=50_000)
    day = (timezone.localdate() - dt.timedelta(days=2)).isoformat()

    page = audit_page(staff_client, actor="")  # every actor: other tests' rows may be there too
    mine = audit_page(staff_client, actor=ann.username)

    assert "<svg" in page and 'role="img"' in page
    bar = element(mine, "g", "data-day", day)
    assert f"<title>{day}: 3 (1 allowed, 2 denied by a policy)</title>" in bar
    assert bar.count("<rect") == 2
    assert 'class="series-allowed"' in bar and 'class="series-policy"' in bar
    today = element(mine, "g", "data-day", timezone.localdate().isoformat())
    assert "1 denied by an invariant" in today
    legend = visible_text(element(mine, "ul", "class", "legend"))
    assert legend == (
        "allowed: 1 denied by a permission: 0 denied by a policy: 2 denied by an invariant: 1"
    )
    numbers = visible_text(element(mine, "table", "class", "chart-data"))
    assert f"{day} 1 0 2 0 0 3" in numbers  # allowed, permission, policy, invariant, other


def test_the_chart_follows_the_date_range(staff_client: Client, people: dict[str, User]) -> None:
    page = audit_page(
        staff_client, actor=people["approver"].username, since="2024-02-27", until="2024-03-02"
    )

    for day in ("2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"):
        assert f'data-day="{day}"' in page
    assert 'data-day="2024-03-03"' not in page
    assert "No recorded decisions from 2024-02-27 to 2024-03-02." in page


def test_each_record_opens_its_trace_and_can_be_explained_again(
    staff_client: Client, people: dict[str, User], record: Record
) -> None:
    ann = people["approver"]
    saved = record(ann, own=True)

    page = audit_page(staff_client, actor=ann.username)
    assert f"/clearance/audit/{saved.pk}/" in links(page)
    explain_again = (
        f"/clearance/explain/?user={ann.username}&action=testapp.approve&object={saved.resource_pk}"
    )
    assert explain_again in links(page)

    detail = staff_client.get(f"/clearance/audit/{saved.pk}/").content.decode()
    assert "Denied by the policy gate, rule four_eyes" in visible_text(detail)
    assert 'class="gate gate-denied gate-decisive" data-layer="policy"' in detail
    assert explain_again in links(detail)


def test_a_decision_that_stopped_early_shows_the_rules_it_did_not_reach(
    staff_client: Client, people: dict[str, User], make_doc: Callable[..., Document]
) -> None:
    ann = people["approver"]
    decision = authorize(ann, "testapp.approve", make_doc(owner=ann))
    saved = AuditRecord.from_decision(decision)
    saved.save()

    detail = staff_client.get(f"/clearance/audit/{saved.pk}/").content.decode()

    invariant = visible_text(element(detail, "li", "data-layer", "invariant"))
    assert "Gate 3 Invariants not evaluated" in invariant
    assert "\N{EN DASH} not evaluated within_limit" in invariant


def test_a_denial_without_a_gate_is_shown_as_a_denial(
    staff_client: Client, people: dict[str, User], make_doc: Callable[..., Document]
) -> None:
    # An allowed decision refused because it could not be recorded (fail-closed audit) carries
    # no layer: the record must still read as a denial, in the list and on its own page.
    from clearance.audit import unrecorded

    ann = people["approver"]
    allowed = authorize(ann, "testapp.approve", make_doc())
    assert allowed.allowed
    saved = AuditRecord.from_decision(unrecorded(allowed, "DatabaseSink: OperationalError"))
    saved.save()

    page = audit_page(staff_client, actor=ann.username)
    row = visible_text(element(page, "tr", "data-record", str(saved.pk)))
    assert "denied" in row and "allowed" not in row

    detail = visible_text(staff_client.get(f"/clearance/audit/{saved.pk}/").content.decode())
    assert "Allowed" not in detail
    assert "Denied by audit.unrecorded" in detail


def test_attempts_by_default_probes_on_request(
    staff_client: Client, people: dict[str, User], make_doc: Callable[..., Document], settings: Any
) -> None:
    """A page that decided what to show is not mistaken for someone trying to act."""
    settings.CLEARANCE = {**settings.CLEARANCE, "RECORD_PROBES": True}
    ann = people["approver"]
    document = make_doc(owner=ann)
    authorize(ann, "testapp.approve", document, probe=True)
    authorize(ann, "testapp.approve", document)
    probe, attempt = AuditRecord.objects.filter(actor_label=ann.username).order_by("id")
    assert (probe.kind, attempt.kind) == ("probe", "attempt")

    assert shown(audit_page(staff_client, actor=ann.username)) == [attempt.pk]
    probes = audit_page(staff_client, actor=ann.username, kind="probe")
    assert shown(probes) == [probe.pk]
    assert "probe" in visible_text(element(probes, "tr", "class", "record record-denied"))
    assert set(shown(audit_page(staff_client, actor=ann.username, kind="any"))) == {
        probe.pk,
        attempt.pk,
    }
