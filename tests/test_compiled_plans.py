"""The fast path: ``authorize()`` runs each action's compiled plan, and gives the decision the
general evaluation gives, field for field and trace entry for trace entry.

The general path is the one ``authorize_many`` takes (gate 1 once, then each rule through its
``evaluate()``); the fast path evaluates inline what it can. Both must agree on the verdict,
the layer, rule, reason, code and error, the references, and every trace entry but its time.
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import F
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from clearance import ACTOR, ANYONE, CTX, Action, authorize, authorize_many, predicate, where
from clearance.decisions import Decision, Layer
from clearance.rules.evaluate import LocalLookup
from tests.testapp.models import Document, Tenant

PERM = "testapp.approve_document"

_COMPARED = (
    "allowed",
    "action",
    "actor",
    "resource",
    "layer",
    "rule",
    "reason",
    "code",
    "fingerprint",
    "error",
    "explained",
    "performed",
    "probe",
)


def _shape(decision: Decision) -> tuple[Any, ...]:
    fields = tuple(getattr(decision, name) for name in _COMPARED)
    trace = tuple(
        (t.layer, t.rule, t.outcome, t.reason, t.expression, t.error) for t in decision.trace
    )
    return fields, trace


def _general(actor: Any, action: Any, obj: Any, **extra: Any) -> Decision:
    (decision,) = authorize_many(actor, action, [obj], **extra)
    return decision


#: Rules covering each inline form (constants, the actor's key, the actor's to-many rows),
#: their negations, several lookups in one where(), and the forms evaluated in full.
RULES: dict[str, Any] = {
    "state": where(state="submitted"),
    "not_state": ~where(state="draft"),
    "amount_lte": where(amount__lte=Decimal("500")),
    "amount_gt": where(amount__gt=Decimal("10")),
    "priority_none": where(priority=None),
    "priority_lt": where(priority__lt=3),
    "owner_is_actor": where(owner=ACTOR),
    "not_owner": ~where(owner=ACTOR),
    "member": where(tenant__memberships__user=ACTOR),
    "not_member": ~where(tenant__memberships__user=ACTOR),
    "admin_member": where(tenant__memberships__user=ACTOR, tenant__memberships__role="admin"),
    "two_lookups": where(state="submitted", amount__lte=Decimal("500")),
    "chain": where(owner__username="alice"),
    "ctx_value": where(state=CTX.state),
    "either": where(state="draft") | where(owner=ACTOR),
    "predicate": predicate(lambda ctx: ctx.obj.title != "forbidden"),
    "raises": predicate(lambda ctx: 1 / 0),
    # Expressions, F() and re-rooted rules: never specialised, decided as in full.
    "arithmetic": where(priority__lte=ACTOR.pk - 1),
    "not_arithmetic": ~where(amount__gt=ACTOR.pk * 10),
    "fractional": where(priority__gte=ACTOR.pk / 2),
    "date_window": where(submitted_at__gte=CTX.now - dt.timedelta(days=30)),
    "key_arithmetic": where(owner__pk__lt=ACTOR.pk + 1),
    "field": where(amount__gte=F("priority") * 100),
    "not_field_through_parent": ~where(priority__lt=F("parent__priority")),
    "field_key": where(owner=F("parent__owner")),
    "through": where(owner=ACTOR).through("parent"),
    "through_tree": (where(state="draft") | ~where(tenant__memberships__user=ACTOR)).through(
        "parent"
    ),
    "through_predicate": predicate(lambda ctx: ctx.obj.title != "forbidden", reach=True).through(
        "parent"
    ),
}


@pytest.fixture
def world(
    db: None, make_user: Callable[..., User], tenant: Tenant, other_tenant: Tenant
) -> dict[str, Any]:
    alice = make_user("alice", tenants=(tenant,))
    admin = make_user("admin")
    from tests.testapp.models import Membership

    Membership.objects.create(user=admin, tenant=tenant, role="admin")
    actors = {
        "alice": alice,
        "admin": User.objects.get(pk=admin.pk),
        "stranger": make_user("stranger", tenants=(other_tenant,)),
        "clerk": make_user("clerk", approver=False, tenants=(tenant,)),
        "inactive": make_user("inactive", tenants=(tenant,), is_active=False),
        "anonymous": AnonymousUser(),
    }
    docs = [
        Document.objects.create(tenant=tenant, owner=alice, state="submitted", amount=100),
        Document.objects.create(tenant=tenant, owner=None, state="draft", amount=900),
        Document.objects.create(tenant=other_tenant, state="submitted", amount=5, priority=1),
        Document.objects.create(tenant=None, state="submitted", amount=50, title="forbidden"),
        # On the bounds of the comparisons above.
        Document.objects.create(tenant=tenant, state="submitted", amount=500, priority=3),
        Document.objects.create(tenant=tenant, owner=admin, state="archived", amount=10),
        Document(tenant=tenant, owner=alice, state="submitted", amount=Decimal("20")),  # unsaved
    ]
    # A parent for the re-rooted rules and F() paths, a date for the date window.
    docs[4].parent, docs[5].parent, docs[6].parent = docs[0], docs[3], docs[2]
    docs[2].submitted_at = timezone.now() - dt.timedelta(days=3)
    for doc in docs[2:6]:
        doc.save()
    return {"actors": actors, "docs": docs}


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("layer", ["policy", "invariant"])
def test_the_fast_path_decides_as_the_general_path(
    fresh_registry: Any, world: dict[str, Any], name: str, layer: str
) -> None:
    action = Action("testapp.compiled", model=Document, permission=PERM)
    action.policy("first", where(amount__gte=0), reason="First.")
    getattr(action, layer)(name, RULES[name], reason=f"Rule {name}.")
    action.invariant("last", ~where(state="archived"), reason="Last.")
    for actor_name, actor in world["actors"].items():
        for doc in world["docs"]:
            for warm in (False, True):  # the to-many rows: first asked, then cached
                fast = authorize(actor, action, doc, state="submitted")
                general = _general(actor, action, doc, state="submitted")
                assert _shape(fast) == _shape(general), (actor_name, doc, warm)


def test_expressions_and_field_comparisons_are_not_specialised() -> None:
    # The inline forms compare with a constant or the actor's key; an expression or an F() is
    # bound per decision or read per object, so its lookup keeps its general check.
    for rule in (
        where(priority__lte=ACTOR.pk - 1),
        where(owner=-ACTOR.pk),
        where(amount__gte=F("priority") * 100),
        where(owner=F("parent__owner")),
    ):
        (lookup,) = rule.plan(Document).local
        if isinstance(lookup, LocalLookup):
            assert lookup.python_lines(repr) is None, rule
            assert lookup.checker() == lookup.check, rule
        assert rule.python_lines(Document, repr) == [f"ok = {lookup.check!r}(obj, ctx) is True"]


def test_a_value_not_converted_yet_is_compared_as_the_field_would(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    # A string in a decimal field (an object built from raw input): the comparison raises
    # TypeError and the value is converted first, on both paths.
    action = Action("testapp.raw", model=Document, permission=PERM)
    action.invariant("limit", where(amount__lte=Decimal("500")), reason="Limit.")
    alice = world["actors"]["alice"]
    low = Document(tenant=world["docs"][0].tenant, amount="20.5")
    high = Document(tenant=world["docs"][0].tenant, amount="900")
    assert authorize(alice, action, low).allowed
    assert _shape(authorize(alice, action, low)) == _shape(_general(alice, action, low))
    assert not authorize(alice, action, high)
    assert _shape(authorize(alice, action, high)) == _shape(_general(alice, action, high))


def test_anyone_and_actions_without_a_model(fresh_registry: Any, world: dict[str, Any]) -> None:
    open_action = Action("testapp.open", model=Document, permission=ANYONE)
    open_action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    report = Action("testapp.report", permission=PERM)
    report.policy("weekday", predicate(lambda ctx: ctx.extra.get("day") != "sunday"))
    doc = world["docs"][0]
    for actor in world["actors"].values():
        assert _shape(authorize(actor, open_action, doc)) == _shape(
            _general(actor, open_action, doc)
        )
        for day in ("monday", "sunday"):
            fast = authorize(actor, report, day=day)
            (general,) = authorize_many(actor, report, [None], day=day)
            assert _shape(fast) == _shape(general)
    decision = authorize(AnonymousUser(), open_action, doc)
    assert decision.allowed
    assert decision.trace[0].reason == "Anyone may attempt this action."


def test_a_decision_is_complete_when_read_later(fresh_registry: Any, world: dict[str, Any]) -> None:
    action = Action("testapp.later", model=Document, permission=PERM)
    seen: list[Any] = []

    @action.policy(reason="Reads the clock.")
    def clock(ctx: Any) -> bool:
        seen.append(ctx.now)
        return True

    action.invariant("limit", where(amount__lte=Decimal("500")), reason="Limit.")
    alice = world["actors"]["alice"]
    unsaved = Document(tenant=world["docs"][0].tenant, amount=Decimal("1000"))
    decision = authorize(alice, action, unsaved)
    unsaved.save()  # the decision was about the unsaved object, and says so
    assert not decision
    assert decision.resource is not None and decision.resource.pk is None
    assert (decision.layer, decision.rule, decision.code) == (
        Layer.INVARIANT,
        "limit",
        "invariant.limit",
    )
    # One clock: the time a rule read is the decision's time.
    assert seen == [decision.at]
    assert [t.rule for t in decision.trace] == [PERM, "clock", "limit"]
    assert all(t.duration >= 0 for t in decision.trace)
    # Pickled and compared, a deferred decision is the decision.
    copy = pickle.loads(pickle.dumps(decision))
    assert copy == decision
    assert copy.trace == decision.trace


def test_a_fresh_decision_is_filled_by_any_field_first_read(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    action = Action("testapp.fill", model=Document, permission=PERM)
    action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    alice, doc = world["actors"]["alice"], world["docs"][0]
    for first in ("code", "trace", "at", "actor", "resource", "probe"):
        decision = authorize(alice, action, doc, probe=True)
        getattr(decision, first)
        assert decision.code == "allowed" and decision.probe is True
        assert decision.actor.pk == alice.pk and decision.resource.pk == doc.pk
        assert len(decision.trace) == 2
    with pytest.raises(AttributeError):
        decision.no_such_field  # noqa: B018
    with pytest.raises(AttributeError):
        decision.code = "forged"  # type: ignore[misc]


def test_a_rule_added_later_is_compiled_in(fresh_registry: Any, world: dict[str, Any]) -> None:
    alice, doc = world["actors"]["alice"], world["docs"][0]
    registered = Action("testapp.grows", model=Document, permission=PERM)
    assert authorize(alice, "testapp.grows", doc)
    registered.policy("never", where(state="nothing"), reason="Never.")
    assert authorize(alice, "testapp.grows", doc).rule == "never"
    # An action outside any registry is recompiled as well.
    loose = Action("testapp.loose", model=Document, permission=PERM, register=False)
    assert authorize(alice, loose, doc)
    loose.invariant("never", where(state="nothing"), reason="Never.")
    assert authorize(alice, loose, doc).rule == "never"


def test_a_warm_decision_makes_no_query(fresh_registry: Any, world: dict[str, Any]) -> None:
    from django.db import connection

    action = Action("testapp.warm", model=Document, permission=PERM)
    action.policy("member", where(tenant__memberships__user=ACTOR), reason="Members only.")
    action.policy("not_owner", ~where(owner=ACTOR), reason="Not the owner.")
    alice, doc = world["actors"]["alice"], world["docs"][1]
    assert authorize(alice, action, doc)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert authorize(alice, action, doc)
    assert len(queries) == 0


def test_rule_errors_are_raised_when_configured(fresh_registry: Any, world: dict[str, Any]) -> None:
    action = Action("testapp.raise", model=Document, permission=PERM)
    action.policy("explodes", predicate(lambda ctx: 1 / 0), reason="Explodes.")
    with override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True}), pytest.raises(ZeroDivisionError):
        authorize(world["actors"]["alice"], action, world["docs"][0])


def test_receivers_hear_decisions_with_no_sink(fresh_registry: Any, world: dict[str, Any]) -> None:
    from clearance.signals import decision_made

    action = Action("testapp.heard", model=Document, permission=PERM)
    action.policy("submitted", where(state="submitted"), reason="Submitted only.")
    heard: list[Decision] = []

    def receiver(sender: Any, decision: Decision, **kwargs: Any) -> None:
        heard.append(decision)

    decision_made.connect(receiver)
    try:
        with override_settings(CLEARANCE={"AUDIT_SINKS": []}):
            decision = authorize(world["actors"]["alice"], action, world["docs"][1])
    finally:
        decision_made.disconnect(receiver)
    assert heard == [decision] and heard[0].rule == "submitted"


# -- gate 1 held within a scope (clearance.Scope) --------------------------------------------------


@pytest.fixture
def scoped_world(db: None, fresh_registry: Any) -> dict[str, Any]:
    from django.contrib.auth.models import Group, Permission

    from clearance import Scope
    from tests.testapp.models import Org, OrgMembership, Project, Task

    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    perms = Permission.objects.filter(
        content_type__app_label="testapp", codename__in=["change_project", "change_task"]
    )
    maintainers = Group.objects.create(name="Maintainers")
    maintainers.permissions.add(*perms)
    acme, globex = Org.objects.create(name="Acme"), Org.objects.create(name="Globex")
    member = User.objects.create_user("member")
    OrgMembership.objects.create(user=member, org=acme).groups.add(maintainers)
    editor = User.objects.create_user("editor")
    editor.user_permissions.add(*perms)
    inactive = User.objects.create_user("inactive_member", is_active=False)
    OrgMembership.objects.create(user=inactive, org=acme).groups.add(maintainers)
    actors = {
        "member": User.objects.get(pk=member.pk),
        "editor": User.objects.get(pk=editor.pk),
        "root": User.objects.create_superuser("root"),
        "stranger": User.objects.create_user("stranger"),
        "inactive": User.objects.get(pk=inactive.pk),
        "anonymous": AnonymousUser(),
    }
    projects = [
        Project.objects.create(org=acme, name="acme"),
        Project.objects.create(org=globex, partner=acme, name="shared"),
        Project.objects.create(org=globex, name="globex"),
        Project.objects.create(org=None, name="orphan", archived=True),
        Project(org=acme, name="unsaved"),
        Project(org_id=str(acme.pk), name="raw key"),
        Project(org=None, partner=acme, name="partner only"),
    ]
    tasks = [Task.objects.create(project=p, title=p.name) for p in projects[:4]]
    tasks += [Task(project=projects[0]), Task(project=None), Task(project_id=10**9)]
    tasks += [Task(project=projects[4]), Task(project=projects[5])]  # unsaved projects
    return {"actors": actors, "projects": projects, "tasks": tasks}


@pytest.mark.parametrize(
    ("model_name", "scope"),
    [("Project", "org"), ("Project", ("org", "partner")), ("Task", "project__org")],
)
def test_the_fast_path_decides_a_scoped_gate_1_as_the_general_path(
    scoped_world: dict[str, Any], model_name: str, scope: Any
) -> None:
    from tests.testapp.models import Project, Task

    model = {"Project": Project, "Task": Task}[model_name]
    perm = f"testapp.change_{model_name.lower()}"
    action = Action("testapp.scoped", model=model, permission=perm, scope=scope)
    live = ~where(archived=True) if model is Project else ~where(project__archived=True)
    action.policy("live", live, reason="Archived projects are frozen.")
    objects = scoped_world["projects"] if model is Project else scoped_world["tasks"]
    for actor_name, actor in scoped_world["actors"].items():
        for obj in objects:
            for warm in (False, True):  # the memberships: first loaded, then cached
                fast = authorize(actor, action, obj)
                general = _general(actor, action, obj)
                assert _shape(fast) == _shape(general), (actor_name, obj, warm)
    # Each way gate 1 can go is among the decisions compared above.
    member = scoped_world["actors"]["member"]
    reasons = {authorize(member, action, obj).trace[0].reason.split(" ")[0] for obj in objects}
    assert {"Holds", "This"} <= reasons
    if model is Task:  # a project that does not exist: gate 1 fails closed
        assert "could" in reasons
