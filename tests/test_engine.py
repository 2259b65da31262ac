"""The three gates, decided one object at a time."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import override_settings

from clearance import (
    ACTOR,
    ANYONE,
    CTX,
    Action,
    Decision,
    Denied,
    InvariantViolation,
    Layer,
    PermissionMissing,
    PolicyDenied,
    UnknownAction,
    aauthorize,
    aenforce,
    aexplain,
    authorize,
    enforce,
    explain,
    predicate,
    where,
)
from tests.testapp.models import Document, Note

pytestmark = pytest.mark.django_db


def test_allowed_when_every_gate_passes(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob)
    decision = authorize(alice, "testapp.approve", doc)
    assert decision.allowed and bool(decision)
    assert decision.layer is None and decision.rule is None
    assert decision.code == "allowed"
    assert [t.rule for t in decision.trace] == [
        "testapp.approve_document",
        "tenant_member",
        "four_eyes",
        "submitted",
        "within_limit",
    ]
    assert decision.actor.label == "alice" and decision.actor.pk == alice.pk
    assert decision.resource is not None
    assert (decision.resource.model, decision.resource.pk) == ("testapp.Document", doc.pk)


def test_permission_denies_alone(make_user: Any, tenant: Any, bob: User, make_doc: Any) -> None:
    clerk = make_user("clerk", approver=False, tenants=(tenant,))
    doc = make_doc(owner=bob)  # every policy and invariant would pass
    decision = authorize(clerk, "testapp.approve", doc)
    assert not decision
    assert decision.layer is Layer.PERMISSION
    assert decision.rule == "testapp.approve_document"
    assert decision.code == "permission.testapp.approve_document"
    assert "testapp.approve_document" in decision.reason


def test_policy_denies_alone(alice: User, make_doc: Any) -> None:
    doc = make_doc(owner=alice)  # only four_eyes fails
    decision = authorize(alice, "testapp.approve", doc)
    assert not decision
    assert (decision.layer, decision.rule, decision.code) == (
        Layer.POLICY,
        "four_eyes",
        "policy.four_eyes",
    )
    assert decision.reason == "Nobody approves their own document."


def test_invariant_denies_alone(alice: User, bob: User, make_doc: Any) -> None:
    doc = make_doc(owner=bob, amount=Decimal("10000.01"))
    decision = authorize(alice, "testapp.approve", doc)
    assert (decision.allowed, decision.layer, decision.rule) == (
        False,
        Layer.INVARIANT,
        "within_limit",
    )
    assert decision.code == "invariant.within_limit"


def test_policy_not_evaluated_when_permission_missing(
    fresh_registry: Any, make_user: Any, make_doc: Any
) -> None:
    calls: list[int] = []

    @predicate
    def counted(ctx: Any) -> bool:
        calls.append(1)
        return True

    action = Action("testapp.count", model=Document, permission="testapp.approve_document")
    action.policy("counted", counted, reason="Counted.")
    clerk = make_user("clerk2", approver=False)
    approver = make_user("approver2")
    doc = make_doc()

    assert authorize(clerk, action, doc).layer is Layer.PERMISSION
    assert calls == []
    assert authorize(approver, action, doc).allowed
    assert calls == [1]


def test_explain_lists_every_rule_and_agrees_with_authorize(
    make_user: Any, tenant: Any, make_doc: Any
) -> None:
    clerk = make_user("clerk3", approver=False, tenants=(tenant,))
    doc = make_doc(owner=clerk, state="draft", amount=Decimal("20000"))
    quick = authorize(clerk, "testapp.approve", doc)
    full = explain(clerk, "testapp.approve", doc)
    assert len(quick.trace) == 1  # stopped at gate 1
    assert [(t.layer, t.rule, t.outcome) for t in full.trace] == [
        (Layer.PERMISSION, "testapp.approve_document", False),
        (Layer.POLICY, "tenant_member", True),
        (Layer.POLICY, "four_eyes", False),
        (Layer.POLICY, "submitted", False),
        (Layer.INVARIANT, "within_limit", False),
    ]
    assert (full.allowed, full.layer, full.rule) == (quick.allowed, quick.layer, quick.rule)
    assert full.explained and not quick.explained
    assert all(t.duration >= 0 for t in full.trace)
    assert full.trace[2].expression == "~where(owner=ACTOR)"


def test_explain_goes_on_after_the_first_policy_denial(
    alice: User, bob: User, make_doc: Any
) -> None:
    # Gate 1 holds, the first policy denies: explain still evaluates every later rule.
    doc = make_doc(owner=alice, state="draft", amount=Decimal("20000"))
    quick = authorize(alice, "testapp.approve", doc)
    full = explain(alice, "testapp.approve", doc)
    assert [(t.layer, t.rule) for t in quick.trace][-1] == (Layer.POLICY, "four_eyes")
    assert [(t.layer, t.rule, t.outcome) for t in full.trace] == [
        (Layer.PERMISSION, "testapp.approve_document", True),
        (Layer.POLICY, "tenant_member", True),
        (Layer.POLICY, "four_eyes", False),
        (Layer.POLICY, "submitted", False),
        (Layer.INVARIANT, "within_limit", False),
    ]
    assert (full.layer, full.rule) == (quick.layer, quick.rule) == (Layer.POLICY, "four_eyes")


def test_raising_rule_denies_with_error(
    fresh_registry: Any, alice: User, make_doc: Any, caplog: pytest.LogCaptureFixture
) -> None:
    action = Action("testapp.fragile", model=Document, permission="testapp.approve_document")

    @action.policy(reason="Explodes.")
    def explodes(ctx: Any) -> bool:
        raise RuntimeError("boom")

    with caplog.at_level("ERROR", logger="clearance"):
        decision = authorize(alice, action, make_doc())
    assert not decision
    assert decision.rule == "explodes" and decision.layer is Layer.POLICY
    assert decision.error == "RuntimeError: boom"
    assert decision.trace[-1].error == "RuntimeError: boom"
    assert any("explodes" in r.getMessage() and r.exc_info for r in caplog.records)


def test_raising_rule_reraises_when_configured(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    action = Action("testapp.fragile2", model=Document, permission="testapp.approve_document")
    action.policy("explodes", predicate(lambda ctx: 1 / 0), reason="Explodes.")
    with override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True}), pytest.raises(ZeroDivisionError):
        authorize(alice, action, make_doc())


def test_missing_ctx_value_denies_with_error(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    action = Action("testapp.ctx", model=Document, permission="testapp.approve_document")
    action.policy("same_state", where(state=CTX.state), reason="State must match.")
    doc = make_doc(state="submitted")
    assert authorize(alice, action, doc, state="submitted").allowed
    missing = authorize(alice, action, doc)
    assert not missing and missing.error is not None and "CTX.state" in missing.error


def test_anonymous_and_inactive_fail_gate_one(make_user: Any, tenant: Any, make_doc: Any) -> None:
    doc = make_doc()
    anon = authorize(AnonymousUser(), "testapp.approve", doc)
    assert anon.layer is Layer.PERMISSION and "signed in" in anon.reason
    assert anon.actor.label == "anonymous" and anon.actor.pk is None

    sleeper = make_user("sleeper", tenants=(tenant,), is_active=False)
    inactive = authorize(sleeper, "testapp.approve", doc)
    assert inactive.layer is Layer.PERMISSION and "inactive" in inactive.reason

    # An inactive superuser is still refused: gate 1 checks activity itself.
    boss = User.objects.create_superuser("boss", password="x", is_active=False)
    assert authorize(boss, "testapp.approve", doc).layer is Layer.PERMISSION


def test_anyone_lets_anonymous_and_inactive_through_gate_one(make_user: Any, make_doc: Any) -> None:
    doc = make_doc()
    assert authorize(AnonymousUser(), "testapp.read", doc).allowed
    sleeper = make_user("sleeper2", is_active=False)
    assert authorize(sleeper, "testapp.read", doc).allowed
    archived = make_doc(state="archived")
    denied = authorize(AnonymousUser(), "testapp.read", archived)
    assert denied.layer is Layer.POLICY and denied.rule == "not_archived"


def test_anonymous_actor_owns_nothing(fresh_registry: Any, make_doc: Any) -> None:
    action = Action("testapp.own", model=Document, permission=ANYONE)
    action.policy("owner", where(owner=ACTOR), reason="Owners only.")
    unowned = make_doc(owner=None)
    # ACTOR.pk is None for an anonymous user: that must not match a NULL owner.
    assert not authorize(AnonymousUser(), action, unowned)


def test_superuser_passes_gate_one_but_not_policy_or_invariant(tenant: Any, make_doc: Any) -> None:
    root = User.objects.create_superuser("root", password="x")
    own = make_doc(owner=root)
    assert authorize(root, "testapp.approve", own).rule == "tenant_member"
    from tests.testapp.models import Membership

    Membership.objects.create(user=root, tenant=tenant)
    root = User.objects.get(pk=root.pk)
    assert authorize(root, "testapp.approve", own).rule == "four_eyes"
    big = make_doc(amount=Decimal("50000"))
    decision = authorize(root, "testapp.approve", big)
    assert decision.layer is Layer.INVARIANT and decision.rule == "within_limit"
    assert authorize(root, "testapp.approve", make_doc()).allowed


def test_unknown_action(alice: User, make_doc: Any) -> None:
    with pytest.raises(UnknownAction) as info:
        authorize(alice, "testapp.aprove", make_doc())
    assert isinstance(info.value, LookupError)
    assert "testapp.approve" in str(info.value)  # suggests the close match


def test_wrong_model_object_is_a_type_error(alice: User) -> None:
    note = Note.objects.create(text="x")
    with pytest.raises(TypeError, match=r"acts on testapp.Document objects, got a testapp.Note"):
        authorize(alice, "testapp.approve", note)
    with pytest.raises(TypeError, match="pass the object"):
        authorize(alice, "testapp.approve")


def test_none_actor_is_a_type_error(make_doc: Any) -> None:
    with pytest.raises(TypeError, match="actor is None"):
        authorize(None, "testapp.approve", make_doc())


def test_unsaved_object_is_decided_from_its_attributes(alice: User, bob: User, tenant: Any) -> None:
    draft = Document(tenant=tenant, owner=bob, state="submitted", amount=Decimal("5"))
    decision = authorize(alice, "testapp.approve", draft)
    assert decision.allowed
    assert decision.resource is not None and decision.resource.pk is None
    draft.owner = alice
    assert authorize(alice, "testapp.approve", draft).rule == "four_eyes"


def test_decision_is_immutable_and_truthy_only_when_allowed(
    alice: User, bob: User, make_doc: Any
) -> None:
    allowed = authorize(alice, "testapp.approve", make_doc(owner=bob))
    denied = authorize(alice, "testapp.approve", make_doc(owner=alice))
    assert bool(allowed) is True and bool(denied) is False
    with pytest.raises(AttributeError):
        allowed.allowed = False  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del denied.reason
    with pytest.raises((AttributeError, dataclasses.FrozenInstanceError)):
        allowed.trace[0].outcome = False  # type: ignore[misc]
    assert isinstance(allowed.trace, tuple)
    copy = denied.replace(reason="other")
    assert copy.reason == "other" and denied.reason != "other"


def test_enforce_raises_the_layer_subclass(
    make_user: Any, alice: User, bob: User, make_doc: Any
) -> None:
    clerk = make_user("clerk4", approver=False)
    with pytest.raises(PermissionMissing) as missing:
        enforce(clerk, "testapp.approve", make_doc())
    assert missing.value.decision.code == "permission.testapp.approve_document"
    with pytest.raises(PolicyDenied) as policy:
        enforce(alice, "testapp.approve", make_doc(owner=alice))
    assert policy.value.decision.rule == "four_eyes"
    assert str(policy.value) == "Nobody approves their own document."
    with pytest.raises(InvariantViolation) as invariant:
        enforce(alice, "testapp.approve", make_doc(amount=Decimal("99999")))
    assert invariant.value.decision.rule == "within_limit"
    assert isinstance(invariant.value, Denied)
    from django.core.exceptions import PermissionDenied

    assert isinstance(invariant.value, PermissionDenied)
    assert enforce(alice, "testapp.approve", make_doc(owner=bob)).allowed


def test_fingerprint_changes_when_a_rule_is_added_and_not_otherwise(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    first = authorize(alice, "testapp.approve", doc).fingerprint
    assert authorize(alice, "testapp.approve", doc).fingerprint == first
    assert authorize(alice, "testapp.approve", make_doc(owner=alice)).fingerprint == first
    # Declaring another action leaves this action's fingerprint alone.
    Action("testapp.unrelated", model=Document, permission=ANYONE).policy(
        "x", where(state="x"), reason="x"
    )
    assert authorize(alice, "testapp.approve", doc).fingerprint == first
    fresh_registry.get("testapp.approve").policy(
        "small", where(amount__lt=1_000_000), reason="Small."
    )
    second = authorize(alice, "testapp.approve", doc).fingerprint
    assert second != first
    assert authorize(alice, "testapp.approve", doc).fingerprint == second


def test_fingerprint_changes_when_only_an_action_invariant_is_added(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    doc = make_doc(owner=bob)
    first = authorize(alice, "testapp.approve", doc).fingerprint
    fresh_registry.get("testapp.approve").invariant(
        "under_a_million", where(amount__lt=1_000_000), reason="Never a million."
    )
    assert authorize(alice, "testapp.approve", doc).fingerprint != first


def test_fingerprint_is_stable_across_processes() -> None:
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from clearance.actions import registry; "
        "print(registry.get('testapp.approve').fingerprint())"
    )
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONHASHSEED": "random"}
    import os

    env = {**os.environ, **env}
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(runs) == 1 and len(runs.pop()) == 16


def test_decision_reaches_the_signal(alice: User, bob: User, make_doc: Any) -> None:
    from clearance.signals import decision_made

    seen: list[Decision] = []

    def receiver(sender: Any, decision: Decision, **kwargs: Any) -> None:
        seen.append(decision)

    decision_made.connect(receiver)
    try:
        d = authorize(alice, "testapp.approve", make_doc(owner=bob))
    finally:
        decision_made.disconnect(receiver)
    assert seen == [d]


@pytest.mark.django_db(transaction=True)
async def test_async_twins_agree(alice: User, bob: User, make_doc: Any) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    try:
        doc = await sync_to_async(make_doc)(owner=bob)
        own = await sync_to_async(make_doc)(owner=alice)
        assert (await aauthorize(alice, "testapp.approve", doc)).allowed
        assert (await aexplain(alice, "testapp.approve", own)).rule == "four_eyes"
        with pytest.raises(PolicyDenied) as refused:
            await aenforce(alice, "testapp.approve", own)
        assert refused.value.decision.rule == "four_eyes"
    finally:
        # The worker thread's connection would keep the test database from being dropped.
        await sync_to_async(connections.close_all)()


def _request_and_flag_action() -> tuple[Action, Any]:
    """An action whose policy holds only for one request object and the extra ``flag=True``."""
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    action = Action("testapp.passed_through", model=Document, permission=ANYONE)
    action.policy(
        "passed",
        predicate(lambda ctx: ctx.request is request and ctx.extra.get("flag") is True),
        reason="Only for that request, with the flag.",
    )
    action.policy(
        "titled",
        predicate(lambda ctx: ctx.obj is not None and ctx.obj.title != "", name="titled"),
        reason="Only titled documents.",
    )
    return action, request


def test_enforce_hands_the_request_and_the_extras_to_the_rules(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    action, request = _request_and_flag_action()
    doc = make_doc(title="t")
    assert enforce(alice, action, doc, request=request, flag=True).allowed
    with pytest.raises(PolicyDenied):
        enforce(alice, action, doc, request=request)


@pytest.mark.django_db(transaction=True)
async def test_async_twins_hand_every_argument_through(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    from clearance import NotFilterable, aauthorized
    from clearance.engine import aauthorize_many

    action, request = _request_and_flag_action()
    try:
        doc = await sync_to_async(make_doc)(title="t")
        await sync_to_async(make_doc)(title="")
        asked = {"request": request, "flag": True}

        decision = await aauthorize(alice, action, doc, **asked)
        assert decision.allowed and decision.probe is False
        assert (await aauthorize(alice, action, doc, probe=True, **asked)).probe is True
        assert not (await aauthorize(alice, action, doc, request=request)).allowed

        explained = await aexplain(alice, action, doc, **asked)
        assert explained.allowed and explained.explained and explained.probe is True
        assert (await aexplain(alice, action, doc, probe=False, **asked)).probe is False
        assert not (await aexplain(alice, action, doc, flag=True)).allowed

        assert (await aenforce(alice, action, doc, **asked)).allowed
        with pytest.raises(PolicyDenied):
            await aenforce(alice, action, doc, request=request)

        (many,) = await aauthorize_many(alice, action, [doc], **asked)
        assert many.allowed and many.probe is False
        (probed,) = await aauthorize_many(alice, action, [doc], probe=True, **asked)
        assert probed.probe is True
        (denied,) = await aauthorize_many(alice, action, [doc], flag=True)
        assert not denied.allowed

        # The object-reading predicate has no SQL form: refused unless checked in Python.
        with pytest.raises(NotFilterable):
            await aauthorized(alice, action, Document.objects.all(), **asked)
        with pytest.raises(ValueError, match="chunk_size"):
            await aauthorized(
                alice,
                action,
                Document.objects.all(),
                evaluate_in_python=True,
                chunk_size=0,
                **asked,
            )
        allowed = await aauthorized(
            alice, action, Document.objects.all(), evaluate_in_python=True, chunk_size=1, **asked
        )
        assert await sync_to_async(list)(allowed.values_list("pk", flat=True)) == [doc.pk]
        nothing = await aauthorized(
            alice, action, Document.objects.all(), evaluate_in_python=True, request=request
        )
        assert not await sync_to_async(nothing.exists)()
    finally:
        await sync_to_async(connections.close_all)()


# -- a rule that raises is reported as undecidable, never with the text of a real denial --------


class _NoProfile(Exception):
    """Stands for Django's RelatedObjectDoesNotExist (an approver without a profile row)."""


def test_a_rule_that_raises_says_it_could_not_be_decided(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    action = Action("testapp.limit", model=Document, permission="testapp.approve_document")

    @action.invariant(reason="The amount is above your approval limit.")
    def within_limit(ctx: Any) -> bool:
        raise _NoProfile("User has no approver_profile.")

    doc = make_doc()
    expected = "could not be decided: rule within_limit raised _NoProfile"
    for decide in (authorize, explain):
        decision = decide(alice, action, doc)
        assert not decision.allowed
        assert decision.reason == expected
        assert "approval limit" not in decision.reason
        assert decision.code == "invariant.within_limit" and decision.layer is Layer.INVARIANT
        assert decision.error == "_NoProfile: User has no approver_profile."
        assert decision.trace[-1].reason == expected
    with pytest.raises(InvariantViolation) as raised:
        enforce(alice, action, doc)
    assert str(raised.value) == expected and raised.value.code == "invariant.within_limit"


def test_a_where_rule_whose_placeholder_raises_could_not_be_decided(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    action = Action("testapp.limit2", model=Document, permission="testapp.approve_document")
    action.invariant(
        "within_limit",
        where(amount__lte=ACTOR.approver_profile.approval_limit),
        reason="The amount is above your approval limit.",
    )
    decision = authorize(alice, action, make_doc())
    assert decision.reason == "could not be decided: rule within_limit raised AttributeError"
    assert decision.code == "invariant.within_limit" and not decision.allowed


def test_a_permission_check_that_raises_could_not_be_decided(
    fresh_registry: Any, make_doc: Any
) -> None:
    class Broken:
        is_authenticated = True
        is_active = True
        pk = 7

        def has_perm(self, perm: str) -> bool:
            raise KeyError(perm)

    doc = make_doc()
    decision = authorize(Broken(), "testapp.approve", doc)
    assert not decision.allowed and decision.layer is Layer.PERMISSION
    assert decision.reason == (
        "could not be decided: rule testapp.approve_document raised KeyError"
    )
    # Every other way of asking gate 1 fails closed too, and says why.
    from clearance import authorize_many, authorized, can_attempt

    for other in (
        explain(Broken(), "testapp.approve", doc),
        *authorize_many(Broken(), "testapp.approve", [doc]),
    ):
        assert (other.allowed, other.layer, other.reason) == (
            False,
            Layer.PERMISSION,
            decision.reason,
        )
        assert other.error is not None and "KeyError" in other.error
    assert can_attempt(Broken(), "testapp.approve") is False
    assert list(authorized(Broken(), "testapp.approve", Document.objects.all())) == []


# -- a rule holds only when it evaluates to exactly True ----------------------------------------


@pytest.mark.filterwarnings("ignore::clearance.testing.NonBoolPredicateWarning")
@pytest.mark.parametrize(
    "returned",
    ["not yours", 1, [0], {"ok": True}, None, 0.0],
    ids=repr,
)
def test_a_predicate_returning_anything_but_true_or_false_denies_and_says_what(
    fresh_registry: Any, alice: User, make_doc: Any, returned: Any
) -> None:
    action = Action("testapp.truthy", model=Document, permission="testapp.approve_document")
    action.policy("mine", predicate(lambda ctx: returned, name="mine"), reason="Yours only.")
    decision = authorize(alice, action, make_doc())
    assert not decision.allowed and decision.code == "policy.mine"
    assert decision.error is not None
    assert repr(returned) in decision.error and type(returned).__name__ in decision.error
    assert "not True or False" in decision.error


@pytest.mark.filterwarnings("ignore::clearance.testing.NonBoolPredicateWarning")
def test_a_predicate_returning_a_queryset_denies_without_running_it(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    action = Action("testapp.qs", model=Document, permission=ANYONE)
    action.policy("mine", predicate(lambda ctx: Document.objects.all()), reason="Yours only.")
    doc = make_doc()
    with CaptureQueriesContext(connection) as queries:
        decision = authorize(alice, action, doc)
    assert not decision.allowed
    assert "returned <QuerySet of testapp.Document> (a QuerySet)" in (decision.error or "")
    assert not [q for q in queries.captured_queries if "testapp_document" in q["sql"]]


@pytest.mark.filterwarnings("ignore::clearance.testing.NonBoolPredicateWarning")
def test_a_predicate_without_the_object_returning_a_truthy_string_filters_nothing(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    from clearance import authorized

    make_doc()
    action = Action("testapp.truthy_once", model=Document, permission=ANYONE)
    action.policy(
        "open", predicate(lambda ctx: "yes", uses_object=False, name="open"), reason="Open."
    )
    assert not authorized(alice, action, Document.objects.all()).exists()
    assert not authorize(alice, action, Document.objects.get()).allowed
    assert predicate(lambda ctx: True)(None) is True


KEPT: list[tuple[Decision, Any]] = []


class KeepSink:
    """An audit sink that keeps what it is given (``CLEARANCE["AUDIT_SINKS"]``)."""

    def record(self, decision: Decision, request: Any) -> None:
        KEPT.append((decision, request))


def test_enforce_is_an_attempt_and_is_recorded_while_explain_is_a_probe(
    alice: User, bob: User, make_doc: Any
) -> None:
    from django.test import RequestFactory

    doc = make_doc(owner=bob, amount=Decimal("50000"))  # the invariant within_limit denies
    request = RequestFactory().get("/documents/1/approve/")
    KEPT.clear()
    sinks = {"AUDIT_SINKS": ["tests.test_engine.KeepSink"]}
    with override_settings(CLEARANCE=sinks):
        with pytest.raises(InvariantViolation) as raised:
            enforce(alice, "testapp.approve", doc, request=request)
        explained = explain(alice, "testapp.approve", doc, request=request)
        attempted = explain(alice, "testapp.approve", doc, request=request, probe=False)
    assert raised.value.decision.probe is False
    # A refused enforce() is always in the trail; the explanation is a probe and is not.
    assert explained.probe is True and explained.rule == "within_limit"
    assert attempted.probe is False and attempted.explained is True
    assert [(d.probe, d.rule, r) for d, r in KEPT] == [
        (False, "within_limit", request),
        (False, "within_limit", request),
    ]


def test_explain_hands_the_request_to_the_signal(alice: User, bob: User, make_doc: Any) -> None:
    from django.test import RequestFactory

    from clearance.signals import decision_made

    seen: list[Any] = []

    def receiver(sender: Any, decision: Decision, request: Any = None, **kwargs: Any) -> None:
        seen.append(request)

    request = RequestFactory().get("/documents/")
    decision_made.connect(receiver)
    try:
        explain(alice, "testapp.approve", make_doc(owner=bob), request=request)
    finally:
        decision_made.disconnect(receiver)
    assert seen == [request]


def test_explain_gives_the_rules_the_action(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    @predicate
    def named_action(ctx: Any) -> bool:
        return ctx.action is not None and ctx.action.name == "testapp.named"

    action = Action("testapp.named", model=Document, permission=ANYONE)
    action.policy("names_itself", named_action, reason="Reads the action.")
    doc = make_doc()
    assert authorize(alice, action, doc).allowed
    explained = explain(alice, action, doc)
    assert explained.allowed and [t.outcome for t in explained.trace] == [True, True]


def test_an_object_of_no_model_is_refused_by_name(alice: User) -> None:
    with pytest.raises(TypeError, match=r"acts on testapp\.Document objects, got a dict"):
        authorize(alice, "testapp.approve", {"pk": 1})
    with pytest.raises(TypeError, match=r"got a testapp\.Note"):
        explain(alice, "testapp.approve", Note())


def test_decisions_about_an_object_count_for_the_unguarded_view_guard(
    alice: User, bob: User, make_doc: Any
) -> None:
    from clearance.engine import can_attempt
    from clearance.request_context import decisions_in_request

    doc = make_doc(owner=bob)
    counter = [0, 0]  # decisions, decisions about an object (what the guard middleware reads)
    token = decisions_in_request.set(counter)
    try:
        explain(alice, "testapp.approve", doc)
        assert counter == [1, 1]
        can_attempt(alice, "testapp.approve")
    finally:
        decisions_in_request.reset(token)
    assert counter == [1, 1]  # gate 1 alone is no decision


def test_the_trace_times_each_gate(alice: User, bob: User, make_doc: Any) -> None:
    decision = explain(alice, "testapp.approve", make_doc(owner=bob))
    assert decision.trace[0].rule == "testapp.approve_document"
    # Each entry's duration is what that gate took: a few milliseconds, never a clock reading.
    assert all(0 <= entry.duration < 5 for entry in decision.trace)


def test_a_denial_and_an_allowance_carry_the_time_of_the_decision(
    alice: User, bob: User, make_doc: Any
) -> None:
    import datetime as dt

    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    refused = explain(alice, "testapp.approve", make_doc(owner=alice), now=when)
    allowed = explain(alice, "testapp.approve", make_doc(owner=bob), now=when)
    assert (refused.allowed, refused.rule, refused.at) == (False, "four_eyes", when)
    assert (allowed.allowed, allowed.at) == (True, when)


def test_a_decision_at_a_given_time_still_shows_the_rules_everything(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    import datetime as dt

    from django.test import RequestFactory

    seen: list[tuple[Any, ...]] = []

    @predicate
    def looks(ctx: Any) -> bool:
        seen.append((ctx.action.name, ctx.request, ctx.extra.get("channel"), ctx.now))
        return True

    action = Action("testapp.timed", model=Document, permission=ANYONE)
    action.policy("looks", looks, reason="Looks at its context.")
    request = RequestFactory().get("/documents/")
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert explain(alice, action, make_doc(), request=request, now=when, channel="api").allowed
    assert seen == [("testapp.timed", request, "api", when)]


def test_the_current_request_reaches_a_decision_asked_without_one(
    alice: User, bob: User, make_doc: Any
) -> None:
    from django.test import RequestFactory

    from clearance.request_context import current_request
    from clearance.signals import decision_made

    seen: list[Any] = []

    def receiver(sender: Any, decision: Decision, request: Any = None, **kwargs: Any) -> None:
        seen.append(request)

    request = RequestFactory().get("/documents/")
    token = current_request.set(request)
    decision_made.connect(receiver)
    try:
        explain(alice, "testapp.approve", make_doc(owner=bob))
    finally:
        decision_made.disconnect(receiver)
        current_request.reset(token)
    assert seen == [request]


class BareJob:
    """An actor of the caller's own: signed in, with permissions, and no ``is_active``."""

    is_authenticated = True
    pk = None

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return perm == "testapp.approve_document"


class Stranger:
    """An object passed as the actor that says nothing about itself."""

    pk = None


def test_gate_one_reads_what_an_actor_of_another_class_has(make_doc: Any) -> None:
    from clearance.engine import can_attempt

    # No is_active: active, as Django's own AnonymousUser and system actors are.
    assert can_attempt(BareJob(), "testapp.approve") is True
    # No is_authenticated: not signed in, a refusal and not an error.
    assert can_attempt(Stranger(), "testapp.approve") is False
    decision = explain(Stranger(), "testapp.approve", make_doc())
    assert decision.layer is Layer.PERMISSION and decision.error is None
    assert decision.reason == "You must be signed in to do this."


def test_authorize_at_a_given_time_hands_everything_through(
    fresh_registry: Any, alice: User, make_doc: Any
) -> None:
    import datetime as dt

    from django.test import RequestFactory

    from clearance.signals import decision_made

    seen: list[tuple[Any, ...]] = []
    signalled: list[Any] = []

    @predicate
    def looks(ctx: Any) -> bool:
        seen.append((ctx.action.name, ctx.request, ctx.extra.get("channel")))
        return True

    def receiver(sender: Any, decision: Decision, request: Any = None, **kwargs: Any) -> None:
        signalled.append(request)

    action = Action("testapp.timed", model=Document, permission=ANYONE)
    action.policy("looks", looks, reason="Looks at its context.")
    request = RequestFactory().get("/documents/")
    when = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
    decision_made.connect(receiver)
    try:
        # now= takes authorize() off the compiled plan, onto the general path.
        decision = authorize(
            alice, action, make_doc(), request=request, now=when, probe=True, channel="api"
        )
    finally:
        decision_made.disconnect(receiver)
    assert decision.allowed and decision.at == when
    assert decision.probe is True and decision.explained is False
    assert seen == [("testapp.timed", request, "api")]
    assert signalled == [request]
