"""clearance.testing: assertions that print the trace, the matrix helper, rule overrides."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User

from clearance import (
    ACTOR,
    ANYONE,
    Action,
    Layer,
    authorize,
    explain,
    model_invariant,
    predicate,
    where,
)
from clearance.actions import registry
from clearance.formatting import format_decision
from clearance.testing import (
    DecisionLog,
    assert_allowed,
    assert_denied,
    assert_matrix,
    assert_outcome,
    assert_write_refused,
    capture_decisions,
    negate_rule,
    override_rules,
)
from tests.testapp.models import Document, Note

pytestmark = pytest.mark.django_db


# -- assert_allowed / assert_denied ---------------------------------------------------------------


def test_assert_allowed_returns_the_decision(alice: User, bob: User, make_doc: Any) -> None:
    decision = assert_allowed(alice, "testapp.approve", make_doc(owner=bob))
    assert decision.allowed and decision.action == "testapp.approve"


def test_assert_allowed_failure_prints_every_gate(alice: User, make_doc: Any) -> None:
    doc = make_doc(owner=alice, title="Own")
    with pytest.raises(AssertionError) as info:
        assert_allowed(alice, "testapp.approve", doc)
    message = str(info.value)
    assert message.startswith(
        f"Expected alice testapp.approve on testapp.Document:{doc.pk} (Own) to be allowed, "
        "but it was denied by policy.four_eyes."
    )
    lines = message.splitlines()
    assert "Gate 1, permission" in lines
    assert "Gate 2, policies" in lines
    assert "Gate 3, invariants" in lines
    assert any(line.split()[:2] == ["deny", "four_eyes"] for line in lines)
    assert any(line.split()[:2] == ["pass", "tenant_member"] for line in lines)
    # Every rule is shown, also those after the denial.
    assert any(line.split()[:2] == ["pass", "within_limit"] for line in lines)
    assert any(line.strip() == "Nobody approves their own document." for line in lines)
    assert lines[-1] == "Verdict: denied by policy.four_eyes: Nobody approves their own document."


def test_assert_denied_pins_layer_and_rule(alice: User, bob: User, make_doc: Any) -> None:
    own = make_doc(owner=alice)
    decision = assert_denied(alice, "testapp.approve", own, layer="policy", rule="four_eyes")
    assert decision.code == "policy.four_eyes"
    assert_denied(alice, "testapp.approve", own, layer=Layer.POLICY)
    assert_denied(alice, "testapp.approve", own, code="policy.four_eyes")
    anonymous = AnonymousUser()
    assert_denied(anonymous, "testapp.approve", own, rule="testapp.approve_document")


def test_assert_denied_by_another_rule_fails(alice: User, make_doc: Any) -> None:
    draft = make_doc(owner=alice, state="draft")  # four_eyes denies first
    with pytest.raises(AssertionError) as info:
        assert_denied(alice, "testapp.approve", draft, rule="submitted")
    headline = str(info.value).splitlines()[0]
    assert headline.endswith(
        "to be denied by rule 'submitted', but rule 'four_eyes' denied, not 'submitted'."
    )
    with pytest.raises(AssertionError, match="the policy gate denied, not the invariant gate"):
        assert_denied(alice, "testapp.approve", draft, layer="invariant")


def test_assert_denied_on_an_allowed_case_fails(alice: User, bob: User, make_doc: Any) -> None:
    with pytest.raises(AssertionError) as info:
        assert_denied(alice, "testapp.approve", make_doc(owner=bob), rule="four_eyes")
    message = str(info.value)
    assert "but it was allowed." in message.splitlines()[0]
    assert message.splitlines()[-1] == "Verdict: allowed"


def test_a_misspelt_rule_is_an_error_not_a_pass(alice: User, make_doc: Any) -> None:
    doc = make_doc(owner=alice)
    with pytest.raises(ValueError, match="has no rule named 'for_eyes'; its rules are: "):
        assert_denied(alice, "testapp.approve", doc, rule="for_eyes")
    with pytest.raises(ValueError, match="layer='polcy'"):
        assert_denied(alice, "testapp.approve", doc, layer="polcy")
    with pytest.raises(ValueError, match="has no rule named 'mine'"):
        assert_outcome(alice, "testapp.approve", doc, "policy.mine")


# -- assert_matrix --------------------------------------------------------------------------------


def test_matrix_accepts_every_form_of_expectation(
    alice: User, bob: User, make_user: Any, make_doc: Any, tenant: Any
) -> None:
    clerk = make_user("clerk", approver=False, tenants=(tenant,))
    bobs = make_doc(owner=bob)
    alices = make_doc(owner=alice)
    decisions = assert_matrix(
        {
            (alice, "testapp.approve", bobs): "allowed",
            (bob, "testapp.approve", alices): True,
            (bob, "testapp.approve", bobs): "four_eyes",
            (alice, "testapp.approve", alices): "policy.four_eyes",
            (clerk, "testapp.approve", bobs): "permission",
            (clerk, "testapp.approve", alices): "permission.testapp.approve_document",
            (clerk, "testapp.read", bobs): True,
            (alice, "testapp.approve", make_doc(owner=bob, state="draft")): Layer.POLICY,
            (alice, "testapp.approve", make_doc(owner=bob, amount=20_000)): False,
        }
    )
    assert [d.code for d in decisions] == [
        "allowed",
        "allowed",
        "policy.four_eyes",
        "policy.four_eyes",
        "permission.testapp.approve_document",
        "permission.testapp.approve_document",
        "allowed",
        "policy.submitted",
        "invariant.within_limit",
    ]


def test_matrix_reports_every_failing_row(alice: User, bob: User, make_doc: Any) -> None:
    bobs = make_doc(owner=bob)
    alices = make_doc(owner=alice)
    rows = [
        (alice, "testapp.approve", bobs, "allowed"),
        (alice, "testapp.approve", alices, "allowed"),  # wrong: four_eyes
        (bob, "testapp.approve", alices, "denied"),  # wrong: allowed
        (bob, "testapp.approve", bobs, "four_eyes"),
    ]
    with pytest.raises(AssertionError) as info:
        assert_matrix(rows)
    message = str(info.value)
    assert message.startswith("2 of 4 authorization cases failed:")
    assert f"#2 alice testapp.approve on testapp.Document:{alices.pk}" in message
    assert "expected allowed, but it was denied by policy.four_eyes." in message
    assert f"#3 bob testapp.approve on testapp.Document:{alices.pk}" in message
    assert "expected denied, but it was allowed." in message
    assert "#1 " not in message and "#4 " not in message


# -- override_rules / negate_rule -----------------------------------------------------------------


def test_override_replaces_adds_and_removes_then_restores(
    alice: User, bob: User, make_doc: Any
) -> None:
    approve = registry.get("testapp.approve")
    before = [(r.name, r.expression, r.reason) for r in approve.rules]
    fingerprint = approve.fingerprint()
    doc = make_doc(owner=bob, title="urgent")
    with override_rules(
        "testapp.approve",
        policies={
            "submitted": where(state="draft"),
            "four_eyes": None,
            "titled": ~where(title="x"),
        },
        invariants={"within_limit": where(amount__lte=50)},
        reasons={"within_limit": "Tiny documents only."},
    ) as changed:
        assert changed is approve
        assert [r.name for r in approve.policies] == ["tenant_member", "submitted", "titled"]
        assert approve.fingerprint() != fingerprint
        assert approve.policies[1].declared_at.startswith(__file__)
        decision = authorize(alice, "testapp.approve", doc)
        assert decision.code == "policy.submitted"
        assert decision.reason == "Only submitted documents can be approved."
        decision = authorize(bob, "testapp.approve", make_doc(owner=bob, state="draft"))
        assert (decision.code, decision.reason) == (
            "invariant.within_limit",
            "Tiny documents only.",
        )
    assert [(r.name, r.expression, r.reason) for r in approve.rules] == before
    assert approve.fingerprint() == fingerprint
    assert authorize(alice, "testapp.approve", doc).allowed


def test_override_restores_after_a_failure(alice: User, bob: User, make_doc: Any) -> None:
    approve = registry.get("testapp.approve")
    before = list(approve.policies)
    changes = {"x": where(state="a"), "nope": None}
    with (
        pytest.raises(ValueError, match="no policy named 'nope'"),
        override_rules("testapp.approve", policies=changes),
    ):
        pass  # pragma: no cover
    assert approve.policies == before


def test_override_as_a_decorator(alice: User, make_doc: Any) -> None:
    @override_rules("testapp.approve", policies={"four_eyes": where(owner=ACTOR)})
    def approve_own() -> bool:
        return authorize(alice, "testapp.approve", make_doc(owner=alice)).allowed

    assert approve_own() is True
    assert not authorize(alice, "testapp.approve", make_doc(owner=alice))


def test_negate_rule_flips_it_and_keeps_its_place(alice: User, bob: User, make_doc: Any) -> None:
    own, others = make_doc(owner=alice), make_doc(owner=bob)
    with negate_rule("testapp.approve", "four_eyes") as approve:
        assert [r.name for r in approve.policies] == ["tenant_member", "four_eyes", "submitted"]
        assert approve.policies[1].expression == "where(owner=ACTOR)"
        assert authorize(alice, "testapp.approve", own).allowed
        assert authorize(alice, "testapp.approve", others).code == "policy.four_eyes"
    with negate_rule("testapp.approve", "within_limit"):
        assert authorize(alice, "testapp.approve", others).code == "invariant.within_limit"
    assert not authorize(alice, "testapp.approve", own)
    with (
        pytest.raises(ValueError, match="gate 1 cannot be negated"),
        negate_rule("testapp.approve", "testapp.approve_document"),
    ):
        pass  # pragma: no cover


# -- capture_decisions / format_decision ----------------------------------------------------------


def test_capture_decisions(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob)
    with capture_decisions() as log:
        authorize(alice, "testapp.approve", doc)
        authorize(bob, "testapp.approve", doc)
    authorize(alice, "testapp.read", doc)
    assert isinstance(log, DecisionLog)
    assert log.codes == ["allowed", "policy.four_eyes"]
    assert [d.actor.label for d in log.denied] == ["bob"]
    assert len(log.allowed) == 1 and log.for_action("testapp.read") == []


def test_format_marks_rules_authorize_did_not_evaluate(alice: User, make_doc: Any) -> None:
    decision = authorize(alice, "testapp.approve", make_doc(owner=alice))
    text = format_decision(decision).splitlines()
    assert [line.split()[:2] for line in text[2:]][:6] == [
        ["pass", "testapp.approve_document"],
        ["Holds", "the"],
        ["Gate", "2,"],
        ["pass", "tenant_member"],
        ["deny", "four_eyes"],
        ["Nobody", "approves"],
    ]
    assert any(line.split() == ["skip", "submitted", "not", "evaluated"] for line in text)
    assert any(line.split() == ["skip", "within_limit", "not", "evaluated"] for line in text)


def test_format_shows_a_rule_that_raised(fresh_registry: Any, alice: User, make_doc: Any) -> None:
    @predicate
    def broken(ctx: Any) -> bool:
        raise ZeroDivisionError("boom")

    Action("testapp.fragile", model=Document, permission=ANYONE).policy("broken", broken)
    text = format_decision(explain(alice, "testapp.fragile", make_doc())).splitlines()
    assert text[5].split() == ["error", "broken", "broken()"]
    assert text[7].strip() == "raised ZeroDivisionError: boom"
    assert text[8:] == ["Gate 3, invariants", "  (none)", text[-1]]
    assert text[-1].startswith("Verdict: denied by policy.broken")


# -- assert_write_refused ------------------------------------------------------------------------


def test_assert_write_refused(fresh_registry: Any) -> None:
    model_invariant(Note, "has_text", ~where(text=""), reason="A note says something.")
    with assert_write_refused(rule="has_text") as refusal:
        Note(text="").save()
    assert refusal.decision is not None and refusal.decision.code == "invariant.has_text"
    assert not Note.objects.exists()
    went_through = r"to be refused by invariant\.has_text, but it went through"
    with pytest.raises(AssertionError, match=went_through), assert_write_refused(rule="has_text"):
        Note(text="fine").save()
    other = r"refused by invariant\.has_text: A note says something"
    with pytest.raises(AssertionError, match=other), assert_write_refused(rule="short"):
        Note(text="").save()
    assert list(Note.objects.values_list("text", flat=True)) == ["fine"]


# -- rule coverage counts the declared rule, never a stand-in that renders alike ---------------


def test_coverage_never_counts_an_overriding_rule_for_the_declared_one(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from clearance import ANYONE, Action, authorize, predicate
    from clearance.rule_coverage import RuleCoverage
    from clearance.signals import decision_made

    action = Action("testapp.covered", model=Document, permission=ANYONE)
    action.policy("gate", predicate(lambda ctx: True), reason="Always.")
    doc = make_doc()
    coverage = RuleCoverage()

    def receive(sender: Any, decision: Any, **kwargs: Any) -> None:
        coverage.record_decision(decision)

    decision_made.connect(receive, weak=False)
    try:
        assert authorize(alice, action, doc).allowed
        # A stub that renders exactly like the declared rule ("<lambda>()") and denies.
        with override_rules(action, policies={"gate": predicate(lambda ctx: False)}):
            assert not authorize(alice, action, doc).allowed
        with negate_rule(action, "gate"):
            assert not authorize(alice, action, doc).allowed
    finally:
        decision_made.disconnect(receive)
    (row,) = [r for r in coverage.rows() if r.owner == "testapp.covered" and r.gate == "policy"]
    assert (row.passed, row.denied, row.status) == (1, 0, "never denied")
