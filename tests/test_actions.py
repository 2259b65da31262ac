"""Declaring actions and rules: names, the registry, decorators, autodiscovery."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from clearance import ACTOR, ANYONE, Action, Layer, authorize, model_invariant, where
from clearance.actions import registry
from clearance.rules import Predicate
from tests.testapp.models import Document, Note


def test_authz_modules_are_autodiscovered() -> None:
    assert "testapp.approve" in registry
    approve = registry.get("testapp.approve")
    assert approve.model is Document
    assert approve.permission == "testapp.approve_document"
    assert [r.name for r in approve.policies] == ["tenant_member", "four_eyes", "submitted"]
    assert [r.name for r in approve.invariants] == ["within_limit"]
    assert approve.declared_at.endswith("tests/testapp/authz.py:9")


def test_registry_is_enumerable_for_tooling() -> None:
    names = [a.name for a in registry]
    assert names == sorted(names)
    approve = registry.get("testapp.approve")
    rows = [(r.layer, r.name, r.expression, r.reason) for r in approve.rules]
    assert rows[1] == (
        Layer.POLICY,
        "four_eyes",
        "~where(owner=ACTOR)",
        "Nobody approves their own document.",
    )
    assert rows[-1][0] is Layer.INVARIANT
    assert approve in registry.actions_for(Document)


def test_duplicate_action_name_names_both_places(fresh_registry: Any) -> None:
    Action("testapp.twice", model=Document, permission=ANYONE)
    with pytest.raises(ImproperlyConfigured) as info:
        Action("testapp.twice", model=Document, permission=ANYONE)
    message = str(info.value)
    assert message.count("tests/test_actions.py:") == 2


def test_an_action_must_name_its_permission(fresh_registry: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="must name its permission"):
        Action("testapp.nameless", model=Document)
    with pytest.raises(ImproperlyConfigured, match="one Django permission"):
        Action("testapp.twoperms", model=Document, permission="a.b c.d")
    with pytest.raises(ImproperlyConfigured, match="must look like"):
        Action("approve", model=Document, permission=ANYONE)
    with pytest.raises(ImproperlyConfigured, match="must be a Django model"):
        Action("testapp.badmodel", model=object, permission=ANYONE)  # type: ignore[arg-type]


def test_policy_and_invariant_declaration_forms(fresh_registry: Any) -> None:
    action = Action("testapp.forms", model=Document, permission=ANYONE)
    returned = action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    assert returned is action

    @action.policy
    def has_title(ctx: Any) -> bool:
        """A document needs a title."""
        return bool(ctx.obj.title)

    @action.policy(reason="Not on the weekend.", uses_object=False)
    def weekday(ctx: Any) -> bool:
        return bool(ctx.now.weekday() < 7)

    @action.invariant(reason="Amounts stay below a million.")
    def sane_amount(ctx: Any) -> bool:
        return bool(ctx.obj.amount < 1_000_000)

    assert isinstance(has_title, Predicate) and has_title.uses_object
    assert isinstance(weekday, Predicate) and not weekday.uses_object
    assert [r.name for r in action.policies] == ["submitted", "has_title", "weekday"]
    assert action.policies[1].reason == "A document needs a title."
    assert action.policies[2].reason == "Not on the weekend."
    assert [r.name for r in action.invariants] == ["sane_amount"]
    assert action.invariants[0].layer is Layer.INVARIANT

    decision = authorize(User(pk=1), action, Document(state="submitted", title=""))
    assert (decision.layer, decision.rule, decision.reason) == (
        Layer.POLICY,
        "has_title",
        "A document needs a title.",
    )


def test_rule_names_must_be_plain(fresh_registry: Any) -> None:
    action = Action("testapp.names", model=Document, permission=ANYONE)
    with pytest.raises(ImproperlyConfigured, match="plain identifier"):
        action.policy("has space", where(state="x"), reason="x")
    with pytest.raises(TypeError, match="expected a rule"):
        action.policy("bad", 42, reason="x")  # type: ignore[arg-type]


def test_model_invariant_registration(fresh_registry: Any) -> None:
    inv = model_invariant(Note, "has_text", ~where(text=""), reason="A note has text.")
    assert inv in registry.invariants_for(Note)
    assert inv.on == frozenset({"save", "delete"})
    with pytest.raises(ImproperlyConfigured, match="on= takes"):
        model_invariant(Note, "odd", where(text="x"), on=("update",))
    with pytest.raises(ImproperlyConfigured, match="expected a model class"):
        model_invariant("testapp.Note", "odd", where(text="x"))  # type: ignore[arg-type]


def test_model_invariants_change_the_fingerprint(fresh_registry: Any) -> None:
    approve = registry.get("testapp.approve")
    before = approve.fingerprint()
    model_invariant(Document, "positive", where(amount__gte=0), reason="Positive.")
    assert approve.fingerprint() != before
    assert registry.get("testapp.read").fingerprint() != before


def test_model_given_as_a_label_resolves_lazily(fresh_registry: Any) -> None:
    action = Action("testapp.lazy", model="testapp.Document", permission=ANYONE)
    action.policy("mine", where(owner=ACTOR), reason="Mine.")
    assert action.model is Document
    assert authorize(User(pk=3), action, Document(owner_id=3)).allowed


def test_unregister_and_snapshot_restore(fresh_registry: Any) -> None:
    state = registry.snapshot()
    Action("testapp.temp", model=Document, permission=ANYONE)
    registry.get("testapp.approve").policy("extra", where(state="x"), reason="x")
    registry.restore(state)
    assert "testapp.temp" not in registry
    assert "extra" not in [r.name for r in registry.get("testapp.approve").policies]
