"""The explain page: three gates in order, each rule with its outcome, reason and time."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client

from clearance import Action, predicate
from clearance.audit.models import AuditRecord
from clearance.testing import capture_decisions
from tests.testapp.models import Document

from .html import classes, element, gate, links, rule_row, visible_text

pytestmark = pytest.mark.django_db


def explain(client: Client, **params: Any) -> str:
    response = client.get(f"/clearance/explain/?{urlencode(params)}")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def own_document(alice: User, make_doc: Callable[..., Document]) -> Document:
    return make_doc(owner=alice, title="Alice's expenses")


def test_the_failing_gate_is_highlighted_with_its_rule_and_reason(
    staff_client: Client, alice: User, own_document: Document
) -> None:
    page = explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)

    policy = gate(page, "policy")
    assert "gate-decisive" in classes(policy)
    assert "Gate 2 Policies denied this gate decided" in visible_text(policy)
    four_eyes = rule_row(policy, "four_eyes")
    assert "rule-decisive" in classes(four_eyes)
    assert visible_text(four_eyes).startswith(
        "✗ denied four_eyes decisive ~where(owner=ACTOR) Nobody approves their own document."
    )
    assert visible_text(page).count("this gate decided") == 1
    assert "Denied by the policy gate, rule four_eyes: Nobody approves their own document." in (
        visible_text(page)
    )


def test_gates_are_drawn_in_order_and_every_rule_is_evaluated(
    staff_client: Client, alice: User, own_document: Document
) -> None:
    page = explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)

    layers = ("permission", "policy", "invariant")
    positions = [page.index(f'data-layer="{layer}"') for layer in layers]
    assert positions == sorted(positions)
    assert "gate-passed" in classes(gate(page, "permission"))
    # After the denying rule, explain still evaluates the rest: nothing is "not evaluated".
    assert "✓ passed submitted" in visible_text(rule_row(gate(page, "policy"), "submitted"))
    invariant = gate(page, "invariant")
    assert "gate-passed" in classes(invariant)
    assert "not evaluated" not in visible_text(page)


def test_each_rule_shows_its_time(
    staff_client: Client, alice: User, own_document: Document
) -> None:
    page = explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)

    for layer, rule in [
        ("permission", "testapp.approve_document"),
        ("policy", "tenant_member"),
        ("invariant", "within_limit"),
    ]:
        assert visible_text(rule_row(gate(page, layer), rule)).endswith(" ms")


def test_a_missing_permission_denies_at_gate_one_and_the_rest_is_still_shown(
    staff_client: Client, make_user: Callable[..., User], own_document: Document
) -> None:
    make_user("clerk", approver=False, tenants=(own_document.tenant,))
    page = explain(staff_client, user="clerk", action="testapp.approve", object=own_document.pk)

    permission = gate(page, "permission")
    assert "gate-decisive" in classes(permission)
    assert "This needs the permission testapp.approve_document, which you do not hold." in (
        visible_text(permission)
    )
    assert "gate-decisive" not in classes(gate(page, "policy"))
    assert "✓ passed four_eyes" in visible_text(gate(page, "policy"))


def test_an_allowed_decision_passes_every_gate(
    staff_client: Client, alice: User, bob: User, make_doc: Callable[..., Document]
) -> None:
    document = make_doc(owner=bob)
    page = explain(staff_client, user="alice", action="testapp.approve", object=document.pk)

    assert "Allowed. Every gate let alice do testapp.approve" in visible_text(page)
    for layer in ("permission", "policy", "invariant"):
        assert "gate-passed" in classes(gate(page, layer))
    assert "gate-decisive" not in page


def test_the_permalink_reproduces_the_explanation(
    staff_client: Client, alice: User, own_document: Document
) -> None:
    page = explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)
    permalink = next(link for link in links(page) if "object=" in link)

    assert permalink == (
        f"/clearance/explain/?user=alice&action=testapp.approve&object={own_document.pk}"
    )
    again = staff_client.get(permalink).content.decode()
    assert "gate-decisive" in classes(gate(again, "policy"))


def test_explaining_records_nothing_and_sends_no_decision(
    staff_client: Client, alice: User, own_document: Document
) -> None:
    before = AuditRecord.objects.filter(actor_pk=str(alice.pk)).count()

    with capture_decisions() as decisions:
        page = explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)

    assert "Denied" in visible_text(page)
    assert list(decisions) == []
    assert AuditRecord.objects.filter(actor_pk=str(alice.pk)).count() == before


def test_who_explained_what_is_logged(
    staff_client: Client, alice: User, own_document: Document, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="clearance.console"):
        explain(staff_client, user="alice", action="testapp.approve", object=own_document.pk)

    assert "staffer explained testapp.approve for alice: denied by policy.four_eyes" in (
        caplog.messages
    )


def test_the_object_field_suggests_objects_of_the_chosen_action(
    staff_client: Client, make_doc: Callable[..., Document]
) -> None:
    document = make_doc(title="Quarterly report")
    page = explain(staff_client, action="testapp.approve")

    assert f'<option value="{document.pk}">Quarterly report</option>' in page
    assert "Denied" not in page  # a question without a user is not answered yet


def test_objects_are_suggested_before_the_first_submit(
    staff_client: Client, make_doc: Callable[..., Document]
) -> None:
    document = make_doc(title="Quarterly report")
    page = explain(staff_client)  # nothing asked yet: the form as it first opens

    # The documents' list is on the page, and the approve action names it for the object field.
    datalist = element(page, "datalist", "id", "console-objects-testapp-document")
    assert f'<option value="{document.pk}">Quarterly report</option>' in datalist
    mapping = re.search(
        r'<script id="console-action-objects" type="application/json">(.*?)</script>', page
    )
    assert mapping is not None
    assert json.loads(mapping.group(1))["testapp.approve"] == "console-objects-testapp-document"
    assert "/static/clearance/console/explain.js" in page
    # Once an action is chosen, the field itself names the list (also without the script).
    chosen = explain(staff_client, action="testapp.approve")
    assert 'list="console-objects-testapp-document"' in chosen


def test_a_rule_that_passed_says_so_not_its_denial_sentence(
    staff_client: Client, alice: User, bob: User, make_doc: Callable[..., Document]
) -> None:
    theirs = make_doc(owner=bob, title="Bob's expenses")
    page = explain(staff_client, user="alice", action="testapp.approve", object=theirs.pk)

    four_eyes = visible_text(rule_row(gate(page, "policy"), "four_eyes"))
    assert four_eyes.startswith("✓ passed four_eyes")
    assert "Nobody approves their own document." not in four_eyes
    assert "Holds: this rule does not refuse the action." in four_eyes
    within_limit = visible_text(rule_row(gate(page, "invariant"), "within_limit"))
    assert "Holds: this rule does not refuse the action." in within_limit
    assert "Documents above 10,000" not in within_limit
    permission = visible_text(rule_row(gate(page, "permission"), "testapp.approve_document"))
    assert "Holds the permission testapp.approve_document." in permission
    # A denied rule keeps its sentence.
    own = make_doc(owner=alice, title="Alice's expenses")
    denied = explain(staff_client, user="alice", action="testapp.approve", object=own.pk)
    assert "Nobody approves their own document." in visible_text(
        rule_row(gate(denied, "policy"), "four_eyes")
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"user": "nobody", "action": "testapp.approve", "object": "1"},
            "There is no user 'nobody'.",
        ),
        ({"user": "alice", "action": "testapp.fly", "object": "1"}, "Select a valid choice."),
        (
            {"user": "alice", "action": "testapp.approve", "object": "999999"},
            "There is no testapp.Document with primary key '999999'.",
        ),
        (
            {"user": "alice", "action": "testapp.approve", "object": "abc"},
            "'abc' is not a primary key of testapp.Document.",
        ),
        (
            {"user": "alice", "action": "testapp.approve"},
            "testapp.approve acts on testapp.Document objects: give a primary key.",
        ),
        (
            {"user": "alice", "action": "testapp.approve", "object": "1", "at": "yesterday"},
            "Enter a valid date/time.",
        ),
    ],
)
def test_a_question_that_cannot_be_answered_says_why(
    staff_client: Client, alice: User, params: dict[str, str], message: str
) -> None:
    page = explain(staff_client, **params)

    assert message in visible_text(page)
    assert "data-layer=" not in page


def test_as_of_evaluates_the_rules_at_that_moment(
    staff_client: Client,
    alice: User,
    bob: User,
    make_doc: Callable[..., Document],
    fresh_registry: Any,
) -> None:
    @predicate(uses_object=False)
    def business_hours(ctx: Any) -> bool:
        return 9 <= ctx.now.hour < 17

    act = Action("testapp.sign", model=Document, permission="testapp.approve_document")
    act.policy("business_hours", business_hours, reason="Signatures happen in business hours.")
    document = make_doc(owner=bob)
    day = dt.date.today().isoformat()

    at_night = explain(
        staff_client, user="alice", action="testapp.sign", object=document.pk, at=f"{day}T03:00"
    )
    at_ten = explain(
        staff_client, user="alice", action="testapp.sign", object=document.pk, at=f"{day}T10:00"
    )

    assert "Signatures happen in business hours." in visible_text(gate(at_night, "policy"))
    assert "gate-decisive" in classes(gate(at_night, "policy"))
    assert "Allowed." in visible_text(at_ten)
    assert f"at={day}T10%3A00" in at_ten  # the permalink keeps the moment


def test_the_object_may_be_named_by_its_natural_key(
    staff_client: Client, alice: User, own_document: Document, settings: Any
) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "NATURAL_KEYS": {"testapp.Document": "title"}}
    by_title = explain(
        staff_client, user="alice", action="testapp.approve", object="Alice's expenses"
    )

    assert "Denied by the policy gate, rule four_eyes" in visible_text(by_title)
    assert f"<code>testapp.Document:{own_document.pk}</code>" in by_title


def test_a_natural_key_several_objects_share_is_not_guessed(
    staff_client: Client, alice: User, make_doc: Callable[..., Document], settings: Any
) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "NATURAL_KEYS": {"testapp.Document": "title"}}
    first, second = make_doc(title="Memo"), make_doc(title="Memo")
    page = explain(staff_client, user="alice", action="testapp.approve", object="Memo")

    assert (
        f"2 testapp.Document objects have title 'Memo' (testapp.Document:{first.pk} ({first}), "
        f"testapp.Document:{second.pk} ({second})): name one by its primary key, "
        f"e.g. pk={first.pk}."
    ) in visible_text(page)
    assert "data-layer=" not in page
