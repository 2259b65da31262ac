"""Scopes at gate 1: a permission held through a membership of the object's organisation.

The central attack: a membership of one organisation must never open another organisation's
objects, whatever path, cache or object state the decision meets. Every test decides with the
real engine on a real database; nothing of the ORM is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from clearance import (
    Action,
    Layer,
    Scope,
    SystemActor,
    authorize,
    authorize_many,
    authorized,
    can_attempt,
    clear_actor_cache,
    enforce,
    explain,
    where,
)
from clearance.actions import registry
from clearance.contrib.denials import capability_denial
from clearance.decisions import PermissionMissing
from clearance.scopes import scope_registry
from tests.testapp.models import Org, OrgMembership, OrgRole, Project, Task

CHANGE = "testapp.change_project"
PUBLISH = "testapp.publish_project"
EDIT_TASK = "testapp.change_task"
MANAGE = "testapp.change_org"


def _perm(perm: str) -> Permission:
    app_label, codename = perm.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _fresh(user: User) -> User:
    """The user as the next request loads it (nothing cached)."""
    return User.objects.get(pk=user.pk)


@pytest.fixture
def scoped(fresh_registry: Any) -> Iterator[dict[str, Any]]:
    """The organisation scope (groups form) and one action per kind of path."""
    scope = Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    actions = {
        "change": Action("testapp.change_project", model=Project, permission=CHANGE, scope="org"),
        "edit_task": Action(
            "testapp.edit_task", model=Task, permission=EDIT_TASK, scope="project__org"
        ),
        "manage": Action("testapp.manage_org", model=Org, permission=MANAGE, scope="pk"),
        "publish": Action(
            "testapp.publish_project", model=Project, permission=PUBLISH, scope=("org", "partner")
        ),
    }
    yield {"scope": scope, **actions}


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    maintainers = Group.objects.create(name="Maintainers")
    maintainers.permissions.add(*(_perm(p) for p in (CHANGE, PUBLISH, EDIT_TASK, MANAGE)))
    readers = Group.objects.create(name="Readers")
    readers.permissions.add(_perm("testapp.view_project"))
    acme, globex = Org.objects.create(name="Acme"), Org.objects.create(name="Globex")

    def user(name: str, *memberships: tuple[Org, Group], **fields: Any) -> User:
        made = User.objects.create_user(username=name, password="x", **fields)
        for org, group in memberships:
            OrgMembership.objects.create(user=made, org=org).groups.add(group)
        return _fresh(made)

    global_editor = user("global_editor")
    global_editor.user_permissions.add(_perm(CHANGE))
    users = {
        "maint": user("maint", (acme, maintainers), (globex, readers)),
        "reader": user("reader", (acme, readers)),
        "globex_maint": user("globex_maint", (globex, maintainers)),
        "outsider": user("outsider"),
        "global_editor": _fresh(global_editor),
        "root": user("root", is_superuser=True),
        "inactive": user("inactive", (acme, maintainers), is_active=False),
    }
    projects = {
        "acme": Project.objects.create(org=acme, name="acme"),
        "globex": Project.objects.create(org=globex, name="globex"),
        "orphan": Project.objects.create(org=None, name="orphan"),
        "shared": Project.objects.create(org=globex, partner=acme, name="shared"),
        "archived": Project.objects.create(org=acme, name="archived", archived=True),
    }
    tasks = {name: Task.objects.create(project=p, title=name) for name, p in projects.items()}
    tasks["loose"] = Task.objects.create(project=None, title="loose")
    return {
        "acme": acme,
        "globex": globex,
        "maintainers": maintainers,
        "readers": readers,
        "users": users,
        "projects": projects,
        "tasks": tasks,
    }


def _membership(user: User, org: Org) -> OrgMembership:
    return OrgMembership.objects.get(user=user, org=org)


# -- declaring --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "say how a membership grants permissions"),
        ({"groups": "groups", "role": "role", "roles": {"a": ["A"]}}, "not both"),
        ({"role": "role"}, "go together"),
        ({"roles": {"a": ["A"]}}, "go together"),
        ({"role": "role", "roles": {}}, "roles must map each role"),
        ({"role": "role", "roles": {"a": "Maintainers"}}, "must be a list of Group names"),
        ({"role": "role", "roles": {"a": [3]}}, "must be a list of Group names"),
        ({"groups": "groups.name"}, "groups must be the name"),
        ({"groups": "groups", "user_field": "a b"}, "user_field must be the name of a field"),
        ({"groups": "groups", "model": object}, "model must be a model"),
        ({"groups": "groups", "membership": "nodot"}, "membership must be a model"),
        ({"groups": "groups", "label": 3}, "label must be a string"),
    ],
)
def test_a_scope_declared_wrongly_is_refused_at_declaration(
    fresh_registry: Any, kwargs: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"model": Org, "membership": OrgMembership, **kwargs}
    with pytest.raises(ImproperlyConfigured, match=message):
        Scope("organization", **arguments)
    assert "organization" not in scope_registry


@pytest.mark.parametrize("name", ["Organization", "org-x", "", "1org", None])
def test_a_scope_name_is_a_lowercase_identifier(fresh_registry: Any, name: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="Scope name"):
        Scope(name, model=Org, membership=OrgMembership, groups="groups")


def test_two_scopes_of_one_name_or_one_model_are_refused(fresh_registry: Any) -> None:
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    with pytest.raises(ImproperlyConfigured, match="declared twice"):
        Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    # A path to an Org must reach exactly one scope.
    with pytest.raises(ImproperlyConfigured, match=r"both declared on testapp\.Org"):
        Scope("org_roles", model=Org, membership=OrgRole, role="role", roles={"a": ["A"]})


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("", "chain of foreign keys"),
        ("org__", "chain of foreign keys"),
        ("org name", "chain of foreign keys"),
        (("org", 3), "chain of foreign keys"),
        ((), "needs a path"),
        ("org__pk", "'pk' is a path of its own"),
        (("org", "org"), "repeat"),
    ],
)
def test_an_action_scope_of_the_wrong_form_is_refused(
    fresh_registry: Any, scope: Any, message: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        Action("testapp.bad", model=Project, permission=CHANGE, scope=scope)
    assert "testapp.bad" not in registry


def test_an_action_anyone_may_attempt_takes_no_scope(fresh_registry: Any) -> None:
    from clearance import ANYONE

    with pytest.raises(ImproperlyConfigured, match="ANYONE"):
        Action("testapp.open", model=Project, permission=ANYONE, scope="org")


def test_the_scope_paths_are_kept_and_fingerprinted(fresh_registry: Any) -> None:
    plain = Action("testapp.a", model=Project, permission=CHANGE)
    one = Action("testapp.b", model=Project, permission=CHANGE, scope="org")
    two = Action("testapp.c", model=Project, permission=CHANGE, scope=["org", "partner"])
    assert (plain.scope, one.scope, two.scope) == ((), ("org",), ("org", "partner"))
    # The same rules otherwise: only the scope tells the fingerprints apart.
    fingerprints = [a.fingerprint() for a in (plain, one, two)]
    registry.unregister("testapp.b")
    again = Action("testapp.b", model=Project, permission=CHANGE)
    assert len(set(fingerprints)) == 3
    assert again.fingerprint() != fingerprints[1]


def test_the_fingerprint_moves_with_the_scope_the_path_reaches(fresh_registry: Any) -> None:
    Scope("organization", model=Org, membership=OrgRole, role="role", roles={"a": ["A"]})
    action = Action("testapp.b", model=Project, permission=CHANGE, scope="org")
    plain = Action("testapp.a", model=Project, permission=CHANGE)
    before = (action.fingerprint(), plain.fingerprint())
    scope_registry.unregister("organization")
    Scope("organization", model=Org, membership=OrgRole, role="role", roles={"a": ["A", "B"]})
    assert action.fingerprint() != before[0]
    assert plain.fingerprint() == before[1]


def test_the_registry_snapshot_restores_the_scopes(fresh_registry: Any) -> None:
    state = registry.snapshot()
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    assert "organization" in scope_registry
    registry.restore(state)
    assert "organization" not in scope_registry


# -- gate 1 through a membership ----------------------------------------------------------------


def test_a_membership_grants_the_permissions_of_its_groups_in_its_organization_only(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint, projects = world["users"]["maint"], world["projects"]
    allowed = authorize(maint, "testapp.change_project", projects["acme"])
    assert allowed
    membership = _membership(maint, world["acme"])
    assert allowed.trace[0].reason == (
        f"Holds the permission {CHANGE} through membership {membership.pk} of organization "
        f"{world['acme'].pk} (group Maintainers)."
    )
    # The central attack: a maintainer of Acme (and reader of Globex) on Globex's project.
    denied = authorize(maint, "testapp.change_project", projects["globex"])
    assert not denied
    assert (denied.layer, denied.rule, denied.code) == (
        Layer.PERMISSION,
        CHANGE,
        f"permission.{CHANGE}",
    )
    assert denied.reason == (
        f"This needs the permission {CHANGE}, globally or through a membership of the object's "
        "organization, which you do not hold."
    )
    assert denied.error is None
    with pytest.raises(PermissionMissing):
        enforce(maint, "testapp.change_project", projects["globex"])
    # A membership whose groups lack the permission grants nothing.
    assert not authorize(world["users"]["reader"], "testapp.change_project", projects["acme"])
    assert not authorize(world["users"]["outsider"], "testapp.change_project", projects["acme"])


def test_each_path_kind(scoped: dict[str, Any], world: dict[str, Any]) -> None:
    maint, tasks = world["users"]["maint"], world["tasks"]
    # Through a chain of foreign keys.
    assert authorize(maint, "testapp.edit_task", tasks["acme"])
    assert not authorize(maint, "testapp.edit_task", tasks["globex"])
    # The object is the scope object.
    assert authorize(maint, "testapp.manage_org", world["acme"])
    assert not authorize(maint, "testapp.manage_org", world["globex"])
    assert authorize(world["users"]["globex_maint"], "testapp.manage_org", world["globex"])


def test_several_paths_hold_through_any(scoped: dict[str, Any], world: dict[str, Any]) -> None:
    shared = world["projects"]["shared"]  # Globex's, shared with partner Acme
    maint, globex_maint = world["users"]["maint"], world["users"]["globex_maint"]
    partner = authorize(maint, "testapp.publish_project", shared)
    assert partner and f"of organization {world['acme'].pk} " in partner.trace[0].reason
    owner = authorize(globex_maint, "testapp.publish_project", shared)
    assert owner and f"of organization {world['globex'].pk} " in owner.trace[0].reason
    # Partner is NULL on Acme's own project: the org path alone decides.
    assert authorize(maint, "testapp.publish_project", world["projects"]["acme"])
    assert not authorize(globex_maint, "testapp.publish_project", world["projects"]["acme"])


def test_roles_name_the_groups_a_membership_grants(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    Scope(
        "organization",
        model=Org,
        membership=OrgRole,
        role="role",
        roles={"maintainer": ["Maintainers"], "reader": ["Readers"], "nobody": ["Missing"]},
        label="org",
    )
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    acme, globex = world["acme"], world["globex"]
    users = {name: User.objects.create_user(name) for name in ("m", "r", "n", "x")}
    role = OrgRole.objects.create(user=users["m"], org=acme, role="maintainer")
    OrgRole.objects.create(user=users["m"], org=globex, role="reader")
    OrgRole.objects.create(user=users["r"], org=acme, role="reader")
    OrgRole.objects.create(user=users["n"], org=acme, role="nobody")  # a Group nobody created
    OrgRole.objects.create(user=users["x"], org=acme, role="unmapped")
    project_acme, project_globex = world["projects"]["acme"], world["projects"]["globex"]
    decision = authorize(_fresh(users["m"]), "testapp.change_project", project_acme)
    assert decision.trace[0].reason == (
        f"Holds the permission {CHANGE} through membership {role.pk} of org {acme.pk} "
        "(role maintainer, group Maintainers)."
    )
    assert not authorize(_fresh(users["m"]), "testapp.change_project", project_globex)
    for name in ("r", "n", "x"):
        assert not authorize(_fresh(users[name]), "testapp.change_project", project_acme), name
    # Two queries at most for the role form: the memberships, then the Groups' permissions.
    fresh = _fresh(users["m"])
    fresh.has_perm(CHANGE)  # Django's own cache, warm
    with CaptureQueriesContext(connection) as queries:
        assert authorize(fresh, "testapp.change_project", project_acme)
    assert len(queries) == 2
    with CaptureQueriesContext(connection) as queries:
        assert not authorize(fresh, "testapp.change_project", project_globex)
    assert len(queries) == 0
    # authorized() agrees, role form included.
    for user in users.values():
        actor = _fresh(user)
        expected = sorted(
            p.pk for p in Project.objects.all() if authorize(actor, "testapp.change_project", p)
        )
        got = sorted(
            authorized(actor, "testapp.change_project", Project.objects.all()).values_list(
                "pk", flat=True
            )
        )
        assert got == expected, user.username


def test_authorized_reads_the_permissions_of_a_roles_groups_when_it_runs(
    fresh_registry: Any, world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    Scope(
        "organization",
        model=Org,
        membership=OrgRole,
        role="role",
        roles={"maintainer": ["Maintainers"], "reader": ["Readers"]},
    )
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    user = User.objects.create_user("r")
    OrgRole.objects.create(user=user, org=world["acme"], role="reader")
    actor = _fresh(user)
    project = world["projects"]["acme"]
    assert not authorize(actor, "testapp.change_project", project)  # memberships now cached
    assert list(authorized(actor, "testapp.change_project", Project.objects.all())) == []
    world["readers"].permissions.add(_perm(CHANGE))  # the role's Group gains the permission
    with django_assert_num_queries(1):
        listed = authorized(actor, "testapp.change_project", Project.objects.all())
        assert sorted(p.name for p in listed) == ["acme", "archived"]
    assert not authorize(actor, "testapp.change_project", project)  # cached on the actor
    clear_actor_cache(actor)
    assert authorize(actor, "testapp.change_project", project)
    # A role the mapping does not name, and a user who is not a member, list nothing.
    OrgRole.objects.filter(user=user).update(role="Reader")
    assert list(authorized(actor, "testapp.change_project", Project.objects.all())) == []


def test_a_global_permission_and_a_superuser_hold_everywhere(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    for name in ("global_editor", "root"):
        actor = world["users"][name]
        for project in world["projects"].values():
            decision = authorize(actor, "testapp.change_project", project)
            assert decision, (name, project)
            assert decision.trace[0].reason == f"Holds the permission {CHANGE}."
        assert can_attempt(actor, "testapp.change_project")


def test_policies_and_invariants_still_bind_a_superuser_and_a_member(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    scoped["change"].policy("live", ~where(archived=True), reason="Archived projects are frozen.")
    for name in ("root", "maint"):
        decision = authorize(
            world["users"][name], "testapp.change_project", world["projects"]["archived"]
        )
        assert (decision.allowed, decision.layer, decision.rule) == (False, Layer.POLICY, "live")


def test_anonymous_and_inactive_actors_hold_nothing_through_memberships(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    project = world["projects"]["acme"]
    inactive = world["users"]["inactive"]
    assert _membership(inactive, world["acme"]).groups.filter(name="Maintainers").exists()
    for actor, reason in (
        (inactive, "This account is inactive."),
        (AnonymousUser(), "You must be signed in to do this."),
    ):
        decision = authorize(actor, "testapp.change_project", project)
        assert (decision.allowed, decision.layer, decision.reason) == (
            False,
            Layer.PERMISSION,
            reason,
        )
        assert not can_attempt(actor, "testapp.change_project")
        assert list(authorized(actor, "testapp.change_project", Project.objects.all())) == []


def test_a_system_actor_holds_only_its_own_permissions(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    job = SystemActor("nightly", permissions=[CHANGE])
    assert authorize(job, "testapp.change_project", world["projects"]["globex"])
    idle = SystemActor("idle")
    with CaptureQueriesContext(connection) as queries:
        assert not authorize(idle, "testapp.change_project", world["projects"]["acme"])
        assert not can_attempt(idle, "testapp.change_project")
    assert len(queries) == 0  # no primary key: no membership to look for


def test_another_users_membership_grants_nothing(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    # The outsider acting while the maintainer's memberships are cached on another object.
    maint, outsider = world["users"]["maint"], world["users"]["outsider"]
    assert authorize(maint, "testapp.change_project", world["projects"]["acme"])
    assert not authorize(outsider, "testapp.change_project", world["projects"]["acme"])


def test_a_permission_of_the_same_codename_in_another_app_grants_nothing(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    from django.contrib.contenttypes.models import ContentType

    impostor = Permission.objects.create(
        codename="change_project",
        name="Can change projects elsewhere",
        content_type=ContentType.objects.get_for_model(Group),
    )
    lookalikes = Group.objects.create(name="Lookalikes")
    lookalikes.permissions.add(impostor)
    user = User.objects.create_user("lookalike")
    OrgMembership.objects.create(user=user, org=world["acme"]).groups.add(lookalikes)
    actor = _fresh(user)
    assert not authorize(actor, "testapp.change_project", world["projects"]["acme"])
    assert not can_attempt(actor, "testapp.change_project")
    assert list(authorized(actor, "testapp.change_project", Project.objects.all())) == []
    # The queryset's subquery tells the two apart too, for an actor who holds both somewhere.
    OrgMembership.objects.create(user=user, org=world["globex"]).groups.add(world["maintainers"])
    actor = _fresh(user)
    got = set(authorized(actor, "testapp.change_project", Project.objects.all()))
    assert got == {world["projects"]["globex"], world["projects"]["shared"]}


def test_request_user_behind_a_lazy_object_keeps_and_forgets_its_memberships(
    scoped: dict[str, Any], world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    from django.utils.functional import SimpleLazyObject

    maint = world["users"]["maint"]
    lazy = SimpleLazyObject(lambda: maint)
    project = world["projects"]["acme"]
    assert authorize(lazy, "testapp.change_project", project)
    with django_assert_num_queries(0):
        assert authorize(lazy, "testapp.change_project", project)
    _membership(maint, world["acme"]).delete()
    clear_actor_cache(lazy)
    assert not authorize(lazy, "testapp.change_project", project)


# -- the object's state --------------------------------------------------------------------------


def test_a_null_on_the_path_gives_no_scope(scoped: dict[str, Any], world: dict[str, Any]) -> None:
    maint = world["users"]["maint"]
    assert not authorize(maint, "testapp.change_project", world["projects"]["orphan"])
    assert not authorize(maint, "testapp.edit_task", world["tasks"]["orphan"])  # project__org NULL
    loose = authorize(maint, "testapp.edit_task", world["tasks"]["loose"])  # project NULL
    assert not loose and loose.error is None and loose.layer is Layer.PERMISSION


def test_an_unsaved_object_is_decided_on_the_scope_it_would_have(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint, acme, globex = world["users"]["maint"], world["acme"], world["globex"]
    # A create: the object is decided on the state that would be written.
    assert authorize(maint, "testapp.change_project", Project(org=acme))
    assert not authorize(maint, "testapp.change_project", Project(org=globex))
    assert not authorize(maint, "testapp.change_project", Project())
    assert authorize(maint, "testapp.edit_task", Task(project=world["projects"]["acme"]))
    assert not authorize(maint, "testapp.edit_task", Task(project=world["projects"]["globex"]))
    assert authorize(maint, "testapp.edit_task", Task(project=Project(org=acme)))
    # An organisation not created yet has no memberships: only a global permission creates one.
    assert not authorize(maint, "testapp.manage_org", Org(name="New"))
    assert authorize(world["users"]["root"], "testapp.manage_org", Org(name="New"))
    # A key from a form, not converted yet, names the same organisation.
    assert authorize(maint, "testapp.change_project", Project(org_id=str(acme.pk)))
    assert not authorize(maint, "testapp.change_project", Project(org_id=str(globex.pk)))


def test_the_object_is_read_as_it_is_now(scoped: dict[str, Any], world: dict[str, Any]) -> None:
    maint = world["users"]["maint"]
    task = Task.objects.select_related("project").get(pk=world["tasks"]["acme"].pk)
    assert authorize(maint, "testapp.edit_task", task)
    # Moved to another organisation's project (the cached project is dropped by Django).
    task.project_id = world["projects"]["globex"].pk
    assert not authorize(maint, "testapp.edit_task", task)
    # Its project moved to another organisation, in memory: the live value decides.
    task = Task.objects.select_related("project").get(pk=world["tasks"]["acme"].pk)
    task.project.org = world["globex"]
    assert not authorize(maint, "testapp.edit_task", task)
    project = Project.objects.get(pk=world["projects"]["acme"].pk)
    project.org_id = world["globex"].pk
    assert not authorize(maint, "testapp.change_project", project)


def test_a_path_that_cannot_be_followed_denies_with_the_error(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint = world["users"]["maint"]
    dangling = Task(project_id=10**9, title="dangling")  # a project that does not exist
    decision = authorize(maint, "testapp.edit_task", dangling)
    assert not decision and decision.layer is Layer.PERMISSION
    assert decision.error is not None and "DoesNotExist" in decision.error
    assert decision.reason.startswith("could not be decided")
    assert decision.code == f"permission.{EDIT_TASK}"
    full = explain(maint, "testapp.edit_task", dangling)
    assert (full.allowed, full.error) == (False, decision.error)
    with (
        override_settings(CLEARANCE={"RAISE_RULE_ERRORS": True}),
        pytest.raises(Project.DoesNotExist),
    ):
        authorize(maint, "testapp.edit_task", dangling)


def test_a_scope_that_raises_is_logged_as_the_scope_not_as_has_perm(
    scoped: dict[str, Any], world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    dangling = Task(project_id=10**9, title="dangling")
    with caplog.at_level("ERROR", logger="clearance"):
        assert not explain(world["users"]["maint"], "testapp.edit_task", dangling)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("clearance")]
    assert messages == [
        f"The scope of action testapp.edit_task raised while deciding {EDIT_TASK!r}"
    ]


def test_a_scope_whose_fields_are_wrong_denies_with_the_error(
    fresh_registry: Any, world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    Scope("organization", model=Org, membership=OrgMembership, user_field="org", groups="groups")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    decision = authorize(
        world["users"]["maint"], "testapp.change_project", world["projects"]["acme"]
    )
    assert not decision and "not to the user model" in (decision.error or "")
    assert not can_attempt(world["users"]["maint"], "testapp.change_project")
    caplog.clear()
    with caplog.at_level("ERROR", logger="clearance"):
        assert (
            list(
                authorized(world["users"]["maint"], "testapp.change_project", Project.objects.all())
            )
            == []
        )
    # The list's refusal says which action's scopes failed, with the error.
    [logged] = [r for r in caplog.records if r.name.startswith("clearance")]
    assert logged.getMessage() == (
        "The scopes of action testapp.change_project raised while filtering"
    )
    assert logged.exc_info is not None
    # Global holders are not affected: has_perm() answers before the scope is asked.
    assert authorize(
        world["users"]["global_editor"], "testapp.change_project", world["projects"]["acme"]
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("owner", "has no field 'owner'"),
        ("name", "is not a foreign key"),
        ("members", "to-many relation"),
        ("tasks", "to-many relation"),
        ("org__projects", "to-many relation"),
    ],
)
def test_a_path_the_models_do_not_have_denies_with_the_error(
    scoped: dict[str, Any], world: dict[str, Any], path: str, message: str
) -> None:
    Action("testapp.broken", model=Project, permission=CHANGE, scope=path)
    decision = authorize(world["users"]["maint"], "testapp.broken", world["projects"]["acme"])
    assert not decision and message in (decision.error or ""), decision.error


def test_a_path_to_a_model_without_a_scope_denies_until_the_scope_is_declared(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    # Declared before its scope (another app's authz.py): resolved when first needed.
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    maint, project = world["users"]["maint"], world["projects"]["acme"]
    decision = authorize(maint, "testapp.change_project", project)
    assert not decision and "not the model of a declared Scope" in (decision.error or "")
    Scope("organization", model="testapp.Org", membership="testapp.OrgMembership", groups="groups")
    assert authorize(maint, "testapp.change_project", project)


# -- without an object ---------------------------------------------------------------------------


def test_without_an_object_gate_1_holds_in_some_scope(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    users = world["users"]
    assert can_attempt(users["maint"], "testapp.change_project")
    assert can_attempt(users["globex_maint"], "testapp.manage_org")
    assert not can_attempt(users["reader"], "testapp.change_project")
    assert not can_attempt(users["outsider"], "testapp.change_project")
    assert capability_denial(users["maint"], "testapp.change_project") is None
    denial = capability_denial(users["reader"], "testapp.change_project")
    assert denial is not None and denial.reason == (
        f"This needs the permission {CHANGE}, globally or through a membership of some "
        "organization, which you do not hold."
    )


# -- many objects, querysets ----------------------------------------------------------------------


def test_authorized_is_exactly_what_authorize_allows_in_one_query(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    scoped["change"].policy("live", ~where(archived=True), reason="Archived projects are frozen.")
    actors = [*world["users"].values(), AnonymousUser()]
    for name, model in (
        ("change", Project),
        ("publish", Project),
        ("edit_task", Task),
        ("manage", Org),
    ):
        action = scoped[name]
        for actor in actors:
            expected = sorted(o.pk for o in model.objects.all() if authorize(actor, action, o))
            queryset = authorized(actor, action, model.objects.all())
            # Warm (memberships and Django's permissions cached): the queryset is one query.
            queryset = authorized(actor, action, model.objects.all())
            with CaptureQueriesContext(connection) as queries:
                got = sorted(o.pk for o in queryset)
            assert got == expected, (name, actor)
            # One query; none for an actor who holds nothing anywhere (queryset.none()).
            assert len(queries) == (0 if queryset.query.is_empty() else 1), (name, actor)
            assert expected == [] or not queryset.query.is_empty()
            many = authorize_many(actor, action, list(model.objects.all()))
            assert sorted(d.resource.pk for d in many if d) == expected


def test_a_warm_scoped_decision_makes_no_query(
    scoped: dict[str, Any], world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    maint = world["users"]["maint"]
    project, task = world["projects"]["acme"], world["tasks"]["acme"]
    Task.objects.select_related("project")
    assert authorize(maint, "testapp.change_project", project)
    task = Task.objects.select_related("project").get(pk=task.pk)
    assert authorize(maint, "testapp.edit_task", task)
    with django_assert_num_queries(0):
        for _ in range(3):
            assert authorize(maint, "testapp.change_project", project)
            assert not authorize(maint, "testapp.change_project", world["projects"]["globex"])
            assert authorize(maint, "testapp.edit_task", task)
            assert can_attempt(maint, "testapp.change_project")
    # Cold: Django's permissions, then one query for the memberships with what they grant.
    cold = _fresh(maint)
    cold.has_perm(CHANGE)
    with django_assert_num_queries(1):
        assert authorize(cold, "testapp.change_project", project)


def test_authorized_for_a_warm_actor_is_one_query(
    scoped: dict[str, Any], world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    maint = world["users"]["maint"]
    assert can_attempt(maint, "testapp.edit_task")  # warm
    with django_assert_num_queries(1):
        titles = sorted(t.title for t in authorized(maint, "testapp.edit_task", Task.objects.all()))
    assert titles == ["acme", "archived"]
    # Filtered further, still one query, and no duplicate rows.
    with django_assert_num_queries(1):
        assert (
            authorized(maint, "testapp.edit_task", Task.objects.all()).filter(done=False).count()
            == 2
        )


def test_authorized_reads_memberships_from_the_tables_in_its_one_query(
    scoped: dict[str, Any], world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    # A list reads every rule from the tables when it runs, memberships included, in its one
    # query; per-object decisions keep what they loaded on the actor until clear_actor_cache.
    reader, acme = world["users"]["reader"], world["acme"]
    project = world["projects"]["acme"]
    assert not can_attempt(reader, "testapp.change_project")  # warm: memberships cached
    with django_assert_num_queries(1):
        assert list(authorized(reader, "testapp.change_project", Project.objects.all())) == []
    _membership(reader, acme).groups.add(world["maintainers"])  # granted after the cache
    with django_assert_num_queries(1):
        listed = list(authorized(reader, "testapp.change_project", Project.objects.all()))
    assert sorted(p.name for p in listed) == ["acme", "archived"]
    assert not authorize(reader, "testapp.change_project", project)  # the cached memberships
    clear_actor_cache(reader)
    assert authorize(reader, "testapp.change_project", project)
    # And taken away again: the list drops the rows at once.
    _membership(reader, acme).groups.remove(world["maintainers"])
    assert list(authorized(reader, "testapp.change_project", Project.objects.all())) == []


def test_authorize_many_decides_gate_1_per_object(
    scoped: dict[str, Any], world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    maint = world["users"]["maint"]
    tasks = list(Task.objects.order_by("pk"))
    decisions = authorize_many(maint, "testapp.edit_task", tasks)
    assert [d.allowed for d in decisions] == [
        bool(authorize(maint, "testapp.edit_task", t)) for t in tasks
    ]
    assert [t.title for t, d in zip(tasks, decisions, strict=True) if d] == ["acme", "archived"]
    assert decisions[1].reason.startswith(f"This needs the permission {EDIT_TASK}, globally or")
    # The projects on the way are fetched once for the page, not once per task.
    fresh = list(Task.objects.order_by("pk"))
    with django_assert_num_queries(1):
        authorize_many(maint, "testapp.edit_task", fresh, probe=True)


# -- the actor's cache -----------------------------------------------------------------------------


def test_a_removed_membership_counts_until_the_actor_cache_is_cleared(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint, project = world["users"]["maint"], world["projects"]["acme"]
    assert authorize(maint, "testapp.change_project", project)
    _membership(maint, world["acme"]).delete()
    # Cached on the actor object, as Django caches _perm_cache ...
    assert authorize(maint, "testapp.change_project", project)
    clear_actor_cache(maint)
    # ... and forgotten on request.
    assert not authorize(maint, "testapp.change_project", project)
    assert not can_attempt(maint, "testapp.change_project")
    assert list(authorized(maint, "testapp.change_project", Project.objects.all())) == []
    # The next request's user object knows nothing of the old membership.
    assert not authorize(_fresh(maint), "testapp.change_project", project)


def test_a_group_losing_the_permission_is_seen_after_clearing(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint, project = world["users"]["maint"], world["projects"]["acme"]
    assert authorize(maint, "testapp.change_project", project)
    world["maintainers"].permissions.remove(_perm(CHANGE))
    clear_actor_cache(maint)
    assert not authorize(maint, "testapp.change_project", project)
    # The queryset asks the database: it agrees even with a stale actor object.
    stale = _fresh(maint)
    world["maintainers"].permissions.add(_perm(CHANGE))
    assert authorize(stale, "testapp.change_project", project)
    world["maintainers"].permissions.remove(_perm(CHANGE))
    assert list(authorized(stale, "testapp.change_project", Project.objects.all())) == []


# -- explain and the audit ------------------------------------------------------------------------


def test_explain_names_the_membership_and_the_group(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    scoped["change"].policy("live", ~where(archived=True), reason="Archived projects are frozen.")
    maint, acme = world["users"]["maint"], world["acme"]
    membership = _membership(maint, acme)
    decision = explain(maint, "testapp.change_project", world["projects"]["archived"])
    assert (decision.allowed, decision.rule) == (False, "live")
    gate1 = decision.trace[0]
    assert gate1.layer is Layer.PERMISSION and gate1.outcome is True
    assert gate1.reason == (
        f"Holds the permission {CHANGE} through membership {membership.pk} of organization "
        f"{acme.pk} (group Maintainers)."
    )
    assert gate1.expression == f"has_perm({CHANGE!r}) or membership via org"
    # A denial at gate 1 still evaluates every rule.
    denied = explain(maint, "testapp.change_project", world["projects"]["globex"])
    assert [t.rule for t in denied.trace] == [CHANGE, "live"]
    assert (denied.layer, denied.rule) == (Layer.PERMISSION, CHANGE)


def test_the_membership_named_is_the_first_granting_one(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    maint, acme = world["users"]["maint"], world["acme"]
    first = _membership(maint, acme)
    first.groups.add(world["readers"])
    later = OrgMembership.objects.create(user=maint, org=acme)
    later.groups.add(world["maintainers"])
    reason = (
        authorize(_fresh(maint), "testapp.change_project", world["projects"]["acme"])
        .trace[0]
        .reason
    )
    assert f"membership {first.pk} " in reason and "(group Maintainers)" in reason


def test_the_audit_record_of_a_scoped_decision(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    from clearance.audit import recording
    from clearance.audit.models import AuditRecord

    maint, acme = world["users"]["maint"], world["acme"]
    membership = _membership(maint, acme)
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True}), recording():
        authorize(maint, "testapp.change_project", world["projects"]["acme"])
        authorize(maint, "testapp.change_project", world["projects"]["globex"])
    allowed, denied = AuditRecord.objects.filter(action="testapp.change_project").order_by("id")
    assert allowed.allowed and allowed.trace[0]["reason"] == (
        f"Holds the permission {CHANGE} through membership {membership.pk} of organization "
        f"{acme.pk} (group Maintainers)."
    )
    assert not denied.allowed
    assert (denied.layer, denied.rule, denied.code) == (
        "permission",
        CHANGE,
        f"permission.{CHANGE}",
    )
    assert "globally or through a membership of the object's organization" in denied.reason
    assert denied.resource_pk == str(world["projects"]["globex"].pk)


def test_the_backend_answers_has_perm_with_an_object_through_the_scope(
    scoped: dict[str, Any], world: dict[str, Any]
) -> None:
    from clearance.backends import ClearanceBackend

    backend = ClearanceBackend()
    maint = world["users"]["maint"]
    assert backend.has_perm(maint, CHANGE, world["projects"]["acme"])
    with pytest.raises(PermissionMissing):
        backend.has_perm(maint, CHANGE, world["projects"]["globex"])


def test_scopes_declared_in_a_test_do_not_leak(fresh_registry: Any) -> None:
    assert "organization" not in scope_registry


def test_the_testing_helpers_restore_the_scopes(fresh_registry: Any) -> None:
    from clearance.testing import override_rules

    with override_rules("testapp.approve", policies={"extra": where(state="x")}):
        Scope("organization", model=Org, membership=OrgMembership, groups="groups")
        assert "organization" in scope_registry
    assert "organization" not in scope_registry


# -- actors of another class -------------------------------------------------------------------


class _GlobalJob:
    """An actor of the caller's own: signed in, holds every permission, no ``is_active``."""

    is_authenticated = True
    pk = None

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True


class _Anonymous:
    """Says it holds every permission, but not that it is signed in."""

    pk = None

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return True


def test_a_scoped_list_reads_what_an_actor_of_another_class_says_as_gate_one_does(
    scoped: dict[str, Any], world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # No is_active: active (as Django's AnonymousUser and system actors are), so a job that
    # holds the permission globally sees every row, as authorize() allows each.
    job = _GlobalJob()
    rows = set(authorized(job, scoped["change"], Project.objects.all()))
    assert rows == set(Project.objects.all())
    assert all(authorize(job, scoped["change"], p).allowed for p in rows)
    # No is_authenticated: not signed in, so nothing, whatever has_perm() says, and no error.
    stranger = _Anonymous()
    assert not authorized(stranger, scoped["change"], Project.objects.all()).exists()
    assert authorize(stranger, scoped["change"], world["projects"]["acme"]).allowed is False
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


class _Broken:
    """Signed in, active, and its permission backend is down."""

    is_authenticated = True
    is_active = True
    pk = None

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        raise RuntimeError("backend down")


def test_a_list_of_an_unscoped_action_blames_has_perm_not_the_scopes(
    caplog: pytest.LogCaptureFixture, db: None
) -> None:
    from tests.testapp.models import Document

    with caplog.at_level("ERROR", logger="clearance"):
        assert not authorized(_Broken(), "testapp.approve", Document.objects.all()).exists()
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("clearance")]
    assert messages == ["has_perm('testapp.approve_document') raised for action testapp.approve"]
