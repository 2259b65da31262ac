"""Roles within a scope at gate 1, on a GitHub-like app (``tests/githubapp``).

The property (issue 16): on generated worlds of a few hundred rows (organisations with teams of
different permission sets, members on some teams of some organisations, outside collaborators
with every role, personal repositories without organisation, archived repositories, issues
without author), for every user (a superuser, an inactive owner, a user with a global
permission, a stranger, members, collaborators, anonymous) and every action of the app, the
pks ``authorized()`` returns are exactly those per-object ``authorize()`` allows, and
``authorize_many()`` decides every object as ``authorize()`` does (verdict, layer, rule, reason).
Gate 1 is also checked against an oracle computed here from the tables (the permission globally,
or the scope objects where a membership's groups or a collaborator role's groups hold it), with
and without an object (``can_attempt()``). A list is one query for a warm actor; a warm
per-object decision makes none.

Then the attacks, each on a small hand-made world: another organisation's repository and
issue, a sibling repository of the one a collaborator works on, NULL and missing relations,
memberships changed after the actor's cache was filled, and creates (unsaved objects) aimed at
another organisation.

``CLEARANCE_GITHUB_EXAMPLES`` sets the number of generated worlds (10 by default).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import connection
from django.db.models import Model, QuerySet
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis.extra.django import TestCase

from clearance import (
    ANYONE,
    Action,
    Layer,
    authorize,
    authorize_many,
    authorized,
    can_attempt,
    explain,
)
from clearance.actions import registry
from clearance.engine import clear_actor_cache
from tests.githubapp import data
from tests.githubapp.authz import COLLABORATOR_ROLES
from tests.githubapp.models import Collaborator, Issue, Membership, Organization, Repository

#: No audit (not under test here); a rule that raises fails the test instead of denying quietly.
QUIET = {"RAISE_RULE_ERRORS": True, "AUDIT_SINKS": []}


def github_actions() -> list[Action]:
    """Every action the app declares."""
    return [a for a in registry.actions if a.app_label == "github"]


def _reload(actor: Any) -> Any:
    """A fresh actor object, as the next request would load it (no cached results)."""
    if isinstance(actor, User):
        return User.objects.get(pk=actor.pk)
    return AnonymousUser()


def _objects(action: Action) -> QuerySet[Any]:
    """All the objects of the action's model, with what the rules follow already joined."""
    qs: QuerySet[Any] = action.model._default_manager.order_by("pk")  # type: ignore[union-attr]
    if action.model is Issue:
        qs = qs.select_related("repository")
    if action.model is Repository:
        qs = qs.select_related("organization")
    return qs


def test_the_app_declares_scoped_actions_on_every_model() -> None:
    """The property below is about scopes: most actions hold gate 1 through one."""
    actions = {a.name: a for a in github_actions()}
    scoped = [a for a in actions.values() if a.scope]
    assert len(scoped) >= 9
    assert {a.model for a in scoped} == {Repository, Issue, Organization}
    assert actions["github.read"].scope == ("organization", "pk")
    assert actions["github.comment"].scope == ("repository__organization", "repository")
    assert actions["github.manage_organization"].scope == ("pk",)
    assert actions["github.browse"].scope == ()


class ScopedGateOneAgrees(TestCase):
    """``authorized()`` == per-object ``authorize()`` == ``authorize_many()``, scopes included."""

    @settings(
        max_examples=int(os.environ.get("CLEARANCE_GITHUB_EXAMPLES", "10")),
        deadline=None,
        derandomize=True,
        # A world is drawn from a seed: shrinking a seed finds nothing smaller, only spends
        # minutes. A failure prints the shape, which rebuilds the same world.
        phases=(Phase.explicit, Phase.reuse, Phase.generate),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.differing_executors,
        ],
    )
    @given(shape=data.shapes)
    @override_settings(CLEARANCE=QUIET)
    def test_every_user_every_action(self, shape: dict[str, Any]) -> None:
        world = data.build_world(shape)
        note(f"shape {shape}: {world.rows()} rows")
        actors: list[Any] = [*world.users.values(), AnonymousUser()]
        # How gate 1 decided, over the whole world: through a scope, or refused by one.
        seen: Counter[str] = Counter()
        for action in github_actions():
            objs = list(_objects(action))
            for actor in actors:
                self._check(action, actor, objs, seen)
        note(f"gate 1: {dict(seen)}")
        # Teeth: scopes decided many cases, both ways (the fixed cast guarantees some of each).
        assert seen["allowed through a scope"] > 0
        assert seen["refused at gate 1 although a member or collaborator"] > 0

    def _check(self, action: Action, actor: Any, objs: list[Model], seen: Counter[str]) -> None:
        name = getattr(actor, "username", "anonymous")
        # The list, for a warm actor: one query (none when gate 1 refuses everywhere).
        listing = _reload(actor)
        list(authorized(listing, action, _objects(action)))
        with CaptureQueriesContext(connection) as queries:
            rows = list(authorized(listing, action, _objects(action)).values_list("pk", flat=True))
        assert len(queries) <= 1, [q["sql"] for q in queries.captured_queries]
        assert len(rows) == len(set(rows)), f"{action.name}, {name}: duplicate rows"
        listed = set(rows)

        # One by one, on one actor object (as in one request). The first pass fills the actor's
        # caches (a bounded number of queries, never one per object); the second makes none and
        # decides the same.
        same = _reload(actor)
        with CaptureQueriesContext(connection) as cold:
            first = [authorize(same, action, obj) for obj in objs]
        assert len(cold) <= 12, f"{action.name}, {name}: {len(cold)} queries for {len(objs)}"
        with CaptureQueriesContext(connection) as warm:
            second = [authorize(same, action, obj) for obj in objs]
        assert len(warm) == 0, [q["sql"] for q in warm.captured_queries]
        one_by_one = {obj.pk for obj, d in zip(objs, first, strict=True) if d.allowed}
        assert [d.allowed for d in second] == [d.allowed for d in first]

        assert listed == one_by_one, (
            f"{action.name}, {name}: authorized() {sorted(listed)} != authorize() "
            f"{sorted(one_by_one)} (only listed: {sorted(listed - one_by_one)}, only allowed "
            f"one by one: {sorted(one_by_one - listed)})"
        )
        # authorize_many() runs the general loop, authorize() the compiled plan: the same
        # verdict, layer, rule, reason and error, object by object.
        batch = authorize_many(_reload(actor), action, objs)
        assert [(d.allowed, d.layer, d.rule, d.reason, d.error) for d in batch] == [
            (d.allowed, d.layer, d.rule, d.reason, d.error) for d in first
        ], f"{action.name}, {name}: authorize_many() differs from authorize()"
        # explain() evaluates every rule and reaches the same verdict and layer (a sample).
        for obj, d in list(zip(objs, first, strict=True))[:8]:
            explained = explain(same, action, obj)
            assert (explained.allowed, explained.layer, explained.rule) == (
                d.allowed,
                d.layer,
                d.rule,
            ), f"{action.name}, {name}: explain() differs from authorize() on {obj.pk}"

        if action.permission is ANYONE:
            return
        # Gate 1 against an oracle written here, from the tables: active, and the permission
        # globally or through a membership of the scope object each path reaches.
        perm = str(action.permission)
        active = isinstance(actor, User) and actor.is_active
        globally = active and _reload(actor).has_perm(perm)
        held = _granted_within(actor, perm) if active else {}
        for obj, d in zip(objs, first, strict=True):
            reached = [_follow(obj, path) for path in action.scope]
            expected = globally or any(pk in held.get(model, ()) for model, pk in reached)
            assert (d.layer is not Layer.PERMISSION) is expected, (
                f"{action.name}, {name} on {obj.pk}: gate 1 {d.layer is not Layer.PERMISSION}, "
                f"the oracle says {expected} (reached {reached}, held {held})"
            )
            if expected and not globally:
                seen["allowed through a scope"] += 1
            elif not expected and any(held.values()):
                seen["refused at gate 1 although a member or collaborator"] += 1
        # Without an object: globally, or through a membership of some scope object.
        models = {_scope_model(action.model, path) for path in action.scope}  # type: ignore[arg-type]
        expected = globally or any(held.get(model) for model in models)
        assert can_attempt(_reload(actor), action) is bool(expected), (
            f"{action.name}, {name}: can_attempt() is not {bool(expected)}"
        )


def _granted_within(user: User, perm: str) -> dict[type[Model], set[Any]]:
    """The pks of the organisations and repositories where ``user`` holds ``perm`` through a
    membership (its groups) or a collaboration (the groups its role names), from the tables."""
    app_label, codename = perm.split(".")
    holding = {
        "permissions__content_type__app_label": app_label,
        "permissions__codename": codename,
    }
    orgs = Membership.objects.filter(
        user=user, groups__in=Group.objects.filter(**holding)
    ).values_list("organization", flat=True)
    roles = [
        role
        for role, names in COLLABORATOR_ROLES.items()
        if Group.objects.filter(name__in=names, **holding).exists()
    ]
    repos = Collaborator.objects.filter(user=user, role__in=roles).values_list(
        "repository", flat=True
    )
    return {Organization: set(orgs), Repository: set(repos)}


def _scope_model(model: type[Model], path: str) -> type[Model]:
    """The model at the end of ``path`` from ``model`` ("pk": the model itself)."""
    if path == "pk":
        return model
    for name in path.split("__"):
        model = model._meta.get_field(name).related_model  # type: ignore[assignment]
    return model


def _follow(obj: Model, path: str) -> tuple[type[Model], Any]:
    """(scope model, pk) that ``path`` reaches from ``obj`` (pk None at a NULL)."""
    if path == "pk":
        return type(obj), obj.pk
    *hops, last = path.split("__")
    target: Any = obj
    for hop in hops:
        target = getattr(target, hop)
        if target is None:
            return _scope_model(type(obj), path), None
    field = type(target)._meta.get_field(last)
    return field.related_model, getattr(target, field.attname)  # type: ignore[union-attr]


# -- a small hand-made world for the attacks ------------------------------------------------


@pytest.fixture
def gh(db: None) -> dict[str, Any]:
    """Acme (widgets and gadgets, private) and Globex (vault, private); a personal repository.

    alice: Acme developers. bob: Globex owners. carol: outside collaborator (write) on
    widgets only. dave: Acme member on no team. erin: Acme readers and collaborator (admin)
    on the personal repository. Issues: one in each repository, opened by carol in widgets.
    """
    data.role_groups()
    acme = data.organization("Acme")
    globex = data.organization("Globex")
    users = {
        name: User.objects.create_user(name) for name in ("alice", "bob", "carol", "dave", "erin")
    }
    data.member(users["alice"], acme, "developers")
    data.member(users["bob"], globex, "owners")
    data.member(users["dave"], acme)
    data.member(users["erin"], acme, "readers")
    widgets = Repository.objects.create(organization=acme, name="widgets")
    gadgets = Repository.objects.create(organization=acme, name="gadgets")
    vault = Repository.objects.create(organization=globex, name="vault")
    personal = Repository.objects.create(organization=None, name="dotfiles")
    Collaborator.objects.create(user=users["carol"], repository=widgets, role="write")
    Collaborator.objects.create(user=users["erin"], repository=personal, role="admin")
    issues = {
        "widgets": Issue.objects.create(repository=widgets, author=users["carol"], title="w"),
        "gadgets": Issue.objects.create(repository=gadgets, author=users["alice"], title="g"),
        "vault": Issue.objects.create(repository=vault, author=users["bob"], title="v"),
        "personal": Issue.objects.create(repository=personal, author=None, title="p"),
    }
    return {
        **{k: _reload(u) for k, u in users.items()},
        "acme": acme,
        "globex": globex,
        "widgets": widgets,
        "gadgets": gadgets,
        "vault": vault,
        "personal": personal,
        "issues": issues,
    }


def _listed(user: Any, action: str, model: type[Model]) -> set[Any]:
    return set(authorized(user, action, model._default_manager.all()).values_list("pk", flat=True))


def _refused_at_gate_one(decision: Any, permission: str) -> None:
    assert not decision.allowed
    assert decision.layer is Layer.PERMISSION
    assert decision.rule == permission
    assert decision.code == f"permission.{permission}"
    assert decision.error is None


pytestmark = pytest.mark.usefixtures("quiet")


@pytest.fixture
def quiet(settings: Any) -> None:
    settings.CLEARANCE = QUIET


def test_scoped_gate_one_holds_through_the_membership_and_names_it(gh: dict[str, Any]) -> None:
    alice, widgets = gh["alice"], gh["widgets"]
    decision = explain(alice, "github.push", widgets)
    assert decision.allowed
    (gate,) = [entry for entry in decision.trace if entry.layer is Layer.PERMISSION]
    membership = Membership.objects.get(user=alice, organization=gh["acme"])
    assert gate.outcome
    assert gate.reason == (
        f"Holds the permission github.push_repository through membership {membership.pk} of "
        f"organization {gh['acme'].pk} (group Acme/developers)."
    )


def test_a_member_of_one_organisation_gets_nothing_in_another(gh: dict[str, Any]) -> None:
    alice, bob = gh["alice"], gh["bob"]
    for action, obj in [
        ("github.push", gh["vault"]),
        ("github.read", gh["vault"]),
        ("github.comment", gh["issues"]["vault"]),
        ("github.open_issue", gh["issues"]["vault"]),
    ]:
        decision = authorize(alice, action, obj)
        permission = registry.get(action).permission
        _refused_at_gate_one(decision, str(permission))
        assert decision.reason.startswith(
            f"This needs the permission {permission}, globally or through a membership of the "
            "object's organization"
        )
        assert decision.reason.endswith(", which you do not hold.")
    decision = authorize(alice, "github.delete_issue", gh["issues"]["vault"])
    assert decision.reason == (
        "This needs the permission github.delete_issue, globally or through a membership of "
        "the object's organization, which you do not hold."
    )
    # bob owns Globex, not Acme: he can manage his organisation only.
    assert authorize(bob, "github.manage_organization", gh["globex"]).allowed
    _refused_at_gate_one(
        authorize(bob, "github.manage_organization", gh["acme"]), "github.change_organization"
    )
    assert _listed(bob, "github.manage_organization", Organization) == {gh["globex"].pk}
    assert _listed(alice, "github.push", Repository) == {gh["widgets"].pk, gh["gadgets"].pk}
    assert _listed(alice, "github.comment", Issue) == {
        gh["issues"]["widgets"].pk,
        gh["issues"]["gadgets"].pk,
    }
    assert _listed(bob, "github.delete_issue", Issue) == {gh["issues"]["vault"].pk}


def test_a_suspended_organisation_is_frozen_for_its_owners_too(gh: dict[str, Any]) -> None:
    bob, globex = gh["bob"], gh["globex"]
    Organization.objects.filter(pk=globex.pk).update(suspended=True)
    globex.refresh_from_db()
    refused = authorize(bob, "github.manage_organization", globex)
    assert refused.layer is Layer.POLICY and refused.rule == "not_suspended"
    refused = authorize(bob, "github.create_repository", Repository(organization=globex))
    assert refused.layer is Layer.POLICY and refused.rule == "organization_not_suspended"
    assert _listed(bob, "github.manage_organization", Organization) == set()


def test_a_collaborator_of_one_repository_gets_nothing_on_its_sibling(gh: dict[str, Any]) -> None:
    carol = gh["carol"]
    assert authorize(carol, "github.push", gh["widgets"]).allowed
    _refused_at_gate_one(authorize(carol, "github.push", gh["gadgets"]), "github.push_repository")
    _refused_at_gate_one(
        authorize(carol, "github.comment", gh["issues"]["gadgets"]), "github.add_comment"
    )
    assert _listed(carol, "github.push", Repository) == {gh["widgets"].pk}
    assert _listed(carol, "github.read", Repository) == {gh["widgets"].pk}
    assert _listed(carol, "github.comment", Issue) == {gh["issues"]["widgets"].pk}
    # The repository scope is not the organisation's: collaborators cannot archive (the action
    # is scoped to the organisation only), nor delete issues.
    _refused_at_gate_one(
        authorize(carol, "github.archive", gh["widgets"]), "github.archive_repository"
    )
    assert _listed(carol, "github.delete_issue", Issue) == set()
    # Write includes triage: carol edits the issue she opened; she is not a member, so not
    # others' issues (a policy, after gate 1 held through the repository).
    assert authorize(carol, "github.edit_issue", gh["issues"]["widgets"]).allowed
    other = Issue.objects.create(repository=gh["widgets"], author=gh["alice"], title="x")
    refused = authorize(carol, "github.edit_issue", other)
    assert refused.layer is Layer.POLICY and refused.rule == "outsiders_edit_their_own"


def test_an_admin_collaborator_is_not_an_organisation_member(gh: dict[str, Any]) -> None:
    erin = gh["erin"]
    # admin on the personal repository: archive is scoped to an organisation, which it has not.
    _refused_at_gate_one(
        authorize(erin, "github.archive", gh["personal"]), "github.archive_repository"
    )
    assert authorize(erin, "github.push", gh["personal"]).allowed
    # readers of Acme: reads Acme's repositories, pushes to none of them.
    assert authorize(erin, "github.read", gh["gadgets"]).allowed
    _refused_at_gate_one(authorize(erin, "github.push", gh["gadgets"]), "github.push_repository")
    assert _listed(erin, "github.push", Repository) == {gh["personal"].pk}
    assert _listed(erin, "github.read", Repository) == {
        gh["widgets"].pk,
        gh["gadgets"].pk,
        gh["personal"].pk,
    }


def test_a_member_on_no_team_holds_nothing(gh: dict[str, Any]) -> None:
    dave = gh["dave"]
    for action in ("github.read", "github.push", "github.archive"):
        assert _listed(dave, action, Repository) == set()
        assert not can_attempt(dave, action)
    # The policy "visible" would let him see private repositories; gate 1 does not.
    _refused_at_gate_one(authorize(dave, "github.read", gh["widgets"]), "github.view_repository")
    assert authorize(dave, "github.browse", gh["widgets"]).allowed


def test_a_role_the_scope_does_not_name_grants_nothing(gh: dict[str, Any]) -> None:
    mallory = User.objects.create_user("mallory")
    Collaborator.objects.create(user=mallory, repository=gh["gadgets"], role="maintain")
    Collaborator.objects.create(user=mallory, repository=gh["widgets"], role="")
    for action in ("github.read", "github.push"):
        assert _listed(mallory, action, Repository) == set()
        assert not can_attempt(mallory, action)
    _refused_at_gate_one(authorize(mallory, "github.read", gh["gadgets"]), "github.view_repository")


def test_a_membership_grants_its_groups_within_its_own_organisation_only(
    gh: dict[str, Any],
) -> None:
    # Misconfigured: dave's membership of Acme carries the group of Globex's owners team. A
    # membership grants exactly its groups' permissions, within its own scope object: Acme.
    membership = Membership.objects.get(user=gh["dave"], organization=gh["acme"])
    membership.groups.add(Group.objects.get(name="Globex/owners"))
    dave = _reload(gh["dave"])
    assert authorize(dave, "github.manage_organization", gh["acme"]).allowed
    _refused_at_gate_one(
        authorize(dave, "github.manage_organization", gh["globex"]), "github.change_organization"
    )
    assert _listed(dave, "github.push", Repository) == {gh["widgets"].pk, gh["gadgets"].pk}


def test_without_an_object_gate_one_means_in_some_scope(gh: dict[str, Any]) -> None:
    assert can_attempt(gh["carol"], "github.push")  # through widgets only
    assert can_attempt(gh["bob"], "github.manage_organization")
    assert not can_attempt(gh["alice"], "github.manage_organization")
    assert not can_attempt(gh["carol"], "github.delete_issue")
    assert not can_attempt(AnonymousUser(), "github.read")


def test_null_and_missing_relations_give_no_scope(gh: dict[str, Any]) -> None:
    alice, erin, personal = gh["alice"], gh["erin"], gh["personal"]
    # A personal repository: organization is NULL, only the repository scope can hold.
    _refused_at_gate_one(authorize(alice, "github.read", personal), "github.view_repository")
    issue = gh["issues"]["personal"]  # repository__organization is NULL; author is NULL
    assert authorize(erin, "github.comment", issue).allowed  # as a collaborator of the repo
    _refused_at_gate_one(authorize(alice, "github.comment", issue), "github.add_comment")
    # No author: "outsiders edit their own" does not match a NULL author.
    refused = authorize(erin, "github.edit_issue", issue)
    assert refused.layer is Layer.POLICY and refused.rule == "outsiders_edit_their_own"
    # A new issue with no repository yet: no scope on either path.
    _refused_at_gate_one(authorize(alice, "github.open_issue", Issue()), "github.add_issue")
    # A new repository without organisation: gate 1 of create_repository needs one.
    _refused_at_gate_one(
        authorize(gh["bob"], "github.create_repository", Repository(name="new")),
        "github.add_repository",
    )
    # Anonymous and inactive users are refused at gate 1 whatever their memberships.
    assert not authorize(AnonymousUser(), "github.read", gh["widgets"]).allowed
    alice.is_active = False
    assert not authorize(alice, "github.read", gh["widgets"]).allowed
    assert _listed(alice, "github.read", Repository) == set()


def test_a_path_to_a_row_that_does_not_exist_denies_with_an_error(
    gh: dict[str, Any], settings: Any
) -> None:
    settings.CLEARANCE = {"AUDIT_SINKS": []}  # fail closed, as in production
    missing = Repository.objects.order_by("-pk").values_list("pk", flat=True)[0] + 100
    issue = Issue(repository_id=missing, title="dangling")
    decision = authorize(gh["alice"], "github.open_issue", issue)
    assert not decision.allowed
    assert decision.layer is Layer.PERMISSION
    assert decision.error is not None
    # A global holder does not follow the path: gate 1 holds, the policies decide.
    root = User.objects.create_superuser("root", password="x")
    assert authorize(root, "github.open_issue", issue).layer is not Layer.PERMISSION


def test_creates_are_decided_on_the_unsaved_object(gh: dict[str, Any]) -> None:
    alice, bob = gh["alice"], gh["bob"]
    # An issue in another organisation's repository: refused at gate 1.
    _refused_at_gate_one(
        authorize(alice, "github.open_issue", Issue(repository=gh["vault"], title="hi")),
        "github.add_issue",
    )
    assert authorize(alice, "github.open_issue", Issue(repository=gh["gadgets"])).allowed
    # A repository and its first issue created together: the unsaved repository's organisation.
    for org, allowed in ((gh["globex"], False), (gh["acme"], True)):
        issue = Issue(repository=Repository(organization=org, name="new"), title="first")
        assert authorize(alice, "github.open_issue", issue).allowed is allowed
    # A repository created in an organisation: its owners only.
    assert authorize(bob, "github.create_repository", Repository(organization=gh["globex"]))
    _refused_at_gate_one(
        authorize(bob, "github.create_repository", Repository(organization=gh["acme"])),
        "github.add_repository",
    )
    # Moving an issue out of reach: the state that would be written is what is decided.
    issue = gh["issues"]["gadgets"]
    issue.repository = gh["vault"]
    _refused_at_gate_one(authorize(alice, "github.edit_issue", issue), "github.change_issue")


def test_archived_repositories_are_read_only_for_everyone(gh: dict[str, Any]) -> None:
    root = User.objects.create_superuser("root", password="x")
    widgets = gh["widgets"]
    Repository.objects.filter(pk=widgets.pk).update(archived=True)
    widgets.refresh_from_db()
    issue = Issue.objects.select_related("repository").get(pk=gh["issues"]["widgets"].pk)
    for actor in (root, gh["alice"], gh["carol"]):
        # explain() evaluates every rule: the invariant refuses, whatever gate 1 and the
        # policies say (the superuser is refused by "visible" too: widgets is private).
        for action, obj in (("github.push", widgets), ("github.comment", issue)):
            explained = explain(actor, action, obj)
            assert not explained.allowed
            assert [(e.rule, e.outcome) for e in explained.trace if e.layer is Layer.INVARIANT] == [
                ("not_archived", False)
            ]
            if actor is not root:
                assert explained.layer is Layer.INVARIANT
        # Reading is not writing: the invariant does not bind it.
        assert authorize(actor, "github.read", widgets).layer is not Layer.INVARIANT
        assert widgets.pk not in _listed(actor, "github.push", Repository)
    assert authorize(gh["carol"], "github.read", widgets).allowed
    # Superusers are bound by policies too: a private repository of nobody's they are in.
    refused = authorize(root, "github.read", widgets)
    assert refused.layer is Layer.POLICY and refused.rule == "visible"
    # Public, the archived repository is refused to the superuser by the invariant alone.
    Repository.objects.filter(pk=widgets.pk).update(visibility="public")
    widgets.refresh_from_db()
    refused = authorize(root, "github.push", widgets)
    assert refused.layer is Layer.INVARIANT and refused.rule == "not_archived"
    # The superuser holds gate 1 as Django says: globally, without a membership.
    decision = explain(root, "github.push", widgets)
    (gate,) = [e for e in decision.trace if e.layer is Layer.PERMISSION]
    assert gate.outcome and gate.reason == "Holds the permission github.push_repository."


def test_a_global_permission_holds_everywhere_and_policies_still_bind(gh: dict[str, Any]) -> None:
    support = User.objects.create_user("support")
    support.groups.add(data.group(*data.SUPPORT_GROUP))
    support = _reload(support)
    # view_repository globally: gate 1 holds on every repository, the policy keeps private
    # repositories of organisations support is not in out of reach.
    refused = authorize(support, "github.read", gh["vault"])
    assert refused.layer is Layer.POLICY and refused.rule == "visible"
    Repository.objects.filter(pk=gh["vault"].pk).update(visibility="public")
    assert _listed(support, "github.read", Repository) == {gh["vault"].pk}
    # push is not among its permissions, and it has no membership: nothing.
    assert _listed(support, "github.push", Repository) == set()


def _stale(gh: dict[str, Any], change: Callable[[], None], before: bool, after: bool) -> None:
    """Decide, ``change`` the memberships, decide again on the same and on fresh objects."""
    alice, widgets = gh["alice"], gh["widgets"]
    assert authorize(alice, "github.push", widgets).allowed is before
    change()
    with CaptureQueriesContext(connection) as queries:
        stale = authorize(alice, "github.push", widgets)
    # Documented: memberships are cached on the actor object, as Django's _perm_cache is.
    assert stale.allowed is before and len(queries) == 0
    assert authorize(_reload(alice), "github.push", widgets).allowed is after
    clear_actor_cache(alice)
    assert authorize(alice, "github.push", widgets).allowed is after
    # authorized() builds its query from the database: after clearing, it agrees.
    assert (widgets.pk in _listed(alice, "github.push", Repository)) is after


def test_a_user_removed_from_a_team_keeps_it_until_the_cache_is_cleared(gh: dict[str, Any]) -> None:
    membership = Membership.objects.get(user=gh["alice"], organization=gh["acme"])
    developers = Group.objects.get(name="Acme/developers")
    _stale(gh, lambda: membership.groups.remove(developers), before=True, after=False)


def test_a_removed_membership_is_stale_until_the_cache_is_cleared(gh: dict[str, Any]) -> None:
    _stale(
        gh,
        lambda: Membership.objects.filter(user=gh["alice"]).delete(),
        before=True,
        after=False,
    )


def test_a_user_added_to_a_team_gets_it_once_the_cache_is_cleared(gh: dict[str, Any]) -> None:
    membership = Membership.objects.get(user=gh["alice"], organization=gh["acme"])
    developers = Group.objects.get(name="Acme/developers")
    membership.groups.remove(developers)
    gh["alice"] = _reload(gh["alice"])
    _stale(gh, lambda: membership.groups.add(developers), before=False, after=True)


def test_a_team_losing_a_permission_is_stale_until_the_cache_is_cleared(
    gh: dict[str, Any],
) -> None:
    developers = Group.objects.get(name="Acme/developers")
    push = data.permissions("push_repository")
    _stale(gh, lambda: developers.permissions.remove(*push), before=True, after=False)


def test_a_warm_decision_makes_no_query_and_a_cold_one_few(gh: dict[str, Any]) -> None:
    alice = _reload(gh["alice"])
    issue = Issue.objects.select_related("repository").get(pk=gh["issues"]["gadgets"].pk)
    with CaptureQueriesContext(connection) as cold:
        assert authorize(alice, "github.close_issue", issue).allowed is False  # no close_issue
        assert authorize(alice, "github.edit_issue", issue).allowed
        assert authorize(alice, "github.push", gh["gadgets"]).allowed
    # has_perm's two queries, at most two per scope (two scopes on the paths), and one per
    # to-many rule tied to the actor (its organisations, its repositories).
    assert len(cold) <= 2 + 2 * 2 + 2, [q["sql"] for q in cold.captured_queries]
    with CaptureQueriesContext(connection) as warm:
        for _ in range(3):
            authorize(alice, "github.edit_issue", issue)
            authorize(alice, "github.push", gh["gadgets"])
            authorize(alice, "github.push", gh["vault"])
    assert len(warm) == 0, [q["sql"] for q in warm.captured_queries]


def test_one_query_per_list_with_a_warm_actor(gh: dict[str, Any]) -> None:
    alice = _reload(gh["alice"])
    list(authorized(alice, "github.comment", Issue.objects.all()))
    with CaptureQueriesContext(connection) as queries:
        found = list(authorized(alice, "github.comment", Issue.objects.all()))
    assert len(queries) == 1
    assert {i.pk for i in found} == {gh["issues"]["widgets"].pk, gh["issues"]["gadgets"].pk}
