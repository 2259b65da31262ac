"""Attacks on scopes at gate 1: each test is an attempt to be granted, through a membership,
what the membership does not grant.

The organisation scope of ``tests/testapp`` (Org, OrgMembership, OrgRole, Project, Task) with
real queries on a real database; nothing of the ORM is mocked. Each test names what an
attacker tries and asserts what a user of the library would notice: a decision, a queryset's
rows, an explanation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils.functional import SimpleLazyObject

from clearance import (
    Action,
    Layer,
    Scope,
    SystemActor,
    authorize,
    authorize_many,
    authorized,
    can_attempt,
    explain,
    perform,
)
from clearance.decisions import PermissionMissing
from tests.testapp.models import Org, OrgMembership, OrgRole, Project, Task, Tenant

CHANGE = "testapp.change_project"
EDIT_TASK = "testapp.change_task"
MANAGE = "testapp.change_org"


def _perm(perm: str) -> Permission:
    app_label, codename = perm.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _fresh(user: User) -> User:
    """The user as the next request loads it (nothing cached)."""
    return User.objects.get(pk=user.pk)


def _allowed(actor: Any, action: str, model: Any) -> list[int]:
    """The primary keys ``authorize()`` allows, one object at a time."""
    return sorted(o.pk for o in model.objects.all() if authorize(actor, action, o))


def _filtered(actor: Any, action: str, model: Any) -> list[int]:
    return sorted(authorized(actor, action, model.objects.all()).values_list("pk", flat=True))


@pytest.fixture
def scoped(fresh_registry: Any) -> Iterator[Scope]:
    """The organisation scope (groups form) and one action per kind of path."""
    scope = Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    Action("testapp.edit_task", model=Task, permission=EDIT_TASK, scope="project__org")
    Action("testapp.manage_org", model=Org, permission=MANAGE, scope="pk")
    yield scope


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    return _make_world()


def _make_world() -> dict[str, Any]:
    maintainers = Group.objects.create(name="Maintainers")
    maintainers.permissions.add(*(_perm(p) for p in (CHANGE, EDIT_TASK, MANAGE)))
    acme, globex = Org.objects.create(name="Acme"), Org.objects.create(name="Globex")
    # The victim: a maintainer of Acme whose primary key an attacker may try to borrow.
    maint = User.objects.create_user("maint")
    OrgMembership.objects.create(user=maint, org=acme).groups.add(maintainers)
    outsider = User.objects.create_user("outsider")
    projects = {
        "acme": Project.objects.create(org=acme, name="acme"),
        "globex": Project.objects.create(org=globex, name="globex"),
    }
    tasks = {name: Task.objects.create(project=p, title=name) for name, p in projects.items()}
    return {
        "acme": acme,
        "globex": globex,
        "maintainers": maintainers,
        "maint": _fresh(maint),
        "outsider": _fresh(outsider),
        "projects": projects,
        "tasks": tasks,
    }


# -- an actor that is not a user borrows a user's primary key ----------------------------------


class _Job(SystemActor):
    """A system actor given a primary key (a job row of the project's own, say)."""

    def __init__(self, name: str, pk: Any) -> None:
        super().__init__(name)
        self.pk = self.id = pk


class _ServiceAccount:
    """A custom actor object: authenticated, active, holding no Django permission."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False

    def __init__(self, pk: Any) -> None:
        self.pk = self.id = pk

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


def _tenant_actor(pk: Any) -> Tenant:
    """A model instance of another model used as an actor, its primary key the victim's."""
    tenant = Tenant.objects.create(pk=pk, name="impostor")
    tenant.is_authenticated = True  # type: ignore[attr-defined]
    tenant.is_active = True  # type: ignore[attr-defined]
    tenant.has_perm = lambda perm, obj=None: False  # type: ignore[attr-defined]
    return tenant


_IMPOSTORS = {
    "system_actor": lambda pk: _Job("sync", pk),
    "custom_object": _ServiceAccount,
    "other_model": _tenant_actor,
}


@pytest.mark.parametrize("kind", sorted(_IMPOSTORS))
def test_an_actor_that_is_not_a_user_gets_no_users_memberships(
    scoped: Scope, world: dict[str, Any], kind: str
) -> None:
    victim = world["maint"]
    actor = _IMPOSTORS[kind](victim.pk)
    project, task, acme = world["projects"]["acme"], world["tasks"]["acme"], world["acme"]
    for _round in ("cold", "warm"):  # warm: with whatever the first round cached on the actor
        for action, obj, model in (
            ("testapp.change_project", project, Project),
            ("testapp.edit_task", task, Task),
            ("testapp.manage_org", acme, Org),
        ):
            decision = authorize(actor, action, obj)  # the compiled plan
            assert (decision.allowed, decision.layer) == (False, Layer.PERMISSION), action
            assert decision.reason.startswith("This needs the permission")
            assert not explain(actor, action, obj)  # the general loop
            assert not any(authorize_many(actor, action, [obj]))
            assert not can_attempt(actor, action)  # in some scope
            assert _filtered(actor, action, model) == []
    # The user whose key was borrowed still holds it, of course.
    assert authorize(victim, "testapp.change_project", project)
    assert _filtered(victim, "testapp.change_project", Project) == [project.pk]


def test_the_queryset_subquery_of_an_actor_that_is_not_a_user_is_empty(
    scoped: Scope, world: dict[str, Any]
) -> None:
    # authorized()'s subquery, asked directly with what a user's memberships grant (as a
    # stale cache could hold): for an actor that is not a user it selects no membership.
    victim = world["maint"]
    held = scoped.load(victim)
    assert held.grants[CHANGE]
    for make in _IMPOSTORS.values():
        actor = make(victim.pk)
        assert scoped.load(actor).grants == {}
        assert list(scoped.granting(actor, CHANGE)) == []
    assert list(scoped.granting(victim, CHANGE)) == [{"org__pk": world["acme"].pk}]


class _StaffUser(User):
    """Another class for the user rows (a proxy, as a project's own user class may be)."""

    class Meta:
        proxy = True
        app_label = "testapp"


def test_a_user_behind_a_proxy_or_a_lazy_object_keeps_its_memberships(
    scoped: Scope, world: dict[str, Any]
) -> None:
    victim = world["maint"]
    project = world["projects"]["acme"]
    for actor in (
        _StaffUser.objects.get(pk=victim.pk),
        SimpleLazyObject(lambda: _fresh(victim)),
    ):
        assert authorize(actor, "testapp.change_project", project)
        assert not authorize(actor, "testapp.change_project", world["projects"]["globex"])
        assert can_attempt(actor, "testapp.change_project")
        assert _filtered(actor, "testapp.change_project", Project) == [project.pk]


@pytest.mark.parametrize("kind", ["custom_object", "system_actor"])  # a model object raises
def test_a_rule_tied_to_the_actor_matches_nothing_for_an_actor_that_is_not_a_user(
    fresh_registry: Any, world: dict[str, Any], kind: str
) -> None:
    from clearance import ACTOR, ANYONE, where
    from tests.testapp.models import Document

    # An actor object that carries a user's key is not that user: where(owner=ACTOR) and
    # where(watchers=ACTOR) match nothing for it, on every path (compiled, general, batch, SQL).
    owners = Action("testapp.own", model=Document, permission=ANYONE)
    owners.policy("owner", where(owner=ACTOR), reason="Owners only.")
    watchers = Action("testapp.watch", model=Document, permission=ANYONE)
    watchers.policy("watcher", where(watchers=ACTOR), reason="Watchers only.")
    victim = world["maint"]
    document = Document.objects.create(owner=victim, title="the victim's")
    document.watchers.add(victim)
    actor = _IMPOSTORS[kind](victim.pk)
    for action in (owners, watchers):
        for _round in ("cold", "warm"):
            assert not authorize(actor, action, document)
            assert not explain(actor, action, document)
            assert not any(authorize_many(actor, action, [document]))
            assert list(authorized(actor, action, Document.objects.all())) == []
        # The user whose key it carries is matched, of course.
        assert authorize(victim, action, document)
        assert list(authorized(victim, action, Document.objects.all())) == [document]


# -- the role form: what Python matches and what SQL matches ----------------------------------


def _role_world(world: dict[str, Any], roles: dict[Any, list[str]]) -> User:
    """A user who is a maintainer of Acme and holds the role value ``"1"`` in Globex."""
    Scope("organization", model=Org, membership=OrgRole, role="role", roles=roles)
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    user = User.objects.create_user("roles")
    OrgRole.objects.create(user=user, org=world["acme"], role="maintainer")
    OrgRole.objects.create(user=user, org=world["globex"], role="1")
    return _fresh(user)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (1, "the role key 1 is not a value of the field as it holds it (the field holds '1')"),
        (None, "the role key None matches no membership in SQL"),
        (("1",), "the role key ('1',) is not a value of the field as it holds it"),
    ],
)
def test_a_role_key_the_role_field_cannot_hold_as_it_is_is_refused(
    fresh_registry: Any, world: dict[str, Any], key: Any, message: str
) -> None:
    # roles={1: ...} for a CharField: Python never matched the stored "1" but SQL did (Django
    # converts 1 to "1"), so authorized() listed Globex's project that authorize() refused.
    # None is the other way round (SQL drops it from IN). Such a key is a configuration error:
    # reported by the checks, and gate 1 through the scope fails closed.
    from django.core import checks

    user = _role_world(world, {"maintainer": ["Maintainers"], key: ["Maintainers"]})
    globex, acme = world["projects"]["globex"], world["projects"]["acme"]
    decision = authorize(user, "testapp.change_project", globex)
    assert (decision.allowed, decision.layer) == (False, Layer.PERMISSION)
    assert decision.error is not None and message in decision.error
    assert not authorize(user, "testapp.change_project", acme)  # the whole scope is refused
    assert _filtered(user, "testapp.change_project", Project) == []
    assert _allowed(user, "testapp.change_project", Project) == []
    errors = [m for m in checks.run_checks(tags=["clearance"]) if m.id == "clearance.E020"]
    assert len(errors) == 1 and message in errors[0].msg and "(roles)" in errors[0].msg


def test_role_keys_as_the_field_holds_them_decide_alike_in_python_and_sql(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    from django.db import models

    class Role(models.TextChoices):
        MAINTAINER = "maintainer"

    # A choices member is the string itself: accepted, and matched both ways.
    user = _role_world(world, {Role.MAINTAINER: ["Maintainers"], "1": ["Maintainers"]})
    expected = [world["projects"]["acme"].pk, world["projects"]["globex"].pk]
    assert _allowed(user, "testapp.change_project", Project) == expected
    assert _filtered(user, "testapp.change_project", Project) == expected
    # " 1" and "01" are other roles than "1", in Python and in SQL alike.
    OrgRole.objects.filter(org=world["globex"]).update(role=" 1")
    user = _fresh(user)
    assert _allowed(user, "testapp.change_project", Project) == expected[:1]
    assert _filtered(user, "testapp.change_project", Project) == expected[:1]


def test_a_group_named_like_a_role_group_but_for_its_case_grants_nothing(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    # The role names the Group "Admins"; only "admins" (another row) holds the permission.
    Group.objects.create(name="admins").permissions.add(_perm(CHANGE))
    Group.objects.create(name="Admins ").permissions.add(_perm(CHANGE))
    Scope("organization", model=Org, membership=OrgRole, role="role", roles={"admin": ["Admins"]})
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    user = User.objects.create_user("admin")
    OrgRole.objects.create(user=user, org=world["acme"], role="admin")
    actor = _fresh(user)
    assert _allowed(actor, "testapp.change_project", Project) == []
    assert _filtered(actor, "testapp.change_project", Project) == []
    assert not can_attempt(actor, "testapp.change_project")
    Group.objects.create(name="Admins").permissions.add(_perm(CHANGE))
    actor = _fresh(user)
    assert _allowed(actor, "testapp.change_project", Project) == [world["projects"]["acme"].pk]
    assert _filtered(actor, "testapp.change_project", Project) == [world["projects"]["acme"].pk]


# -- the object's scope key: its form, its state -----------------------------------------------


def test_a_scope_key_in_another_form_is_decided_as_the_row_it_would_write(
    scoped: Scope, world: dict[str, Any]
) -> None:
    # A key from a form or a payload, not converted yet: gate 1 must decide on the
    # organisation the row would be written with, never on another, never wider.
    maint = world["maint"]
    acme, globex = world["acme"].pk, world["globex"].pk
    for org in (acme, globex):
        for key in (org, str(org), f"0{org}", f" {org}", f"{org} ", f"+{org}", float(org)):
            decision = authorize(maint, "testapp.change_project", Project(org_id=key, name="x"))
            written = Project.objects.create(org_id=key, name="x")
            stored = Project.objects.get(pk=written.pk)
            assert stored.org_id == org
            assert decision.allowed == (org == acme), key
            assert bool(authorize(maint, "testapp.change_project", stored)) == (org == acme)
            stored.delete()
    # Keys that name no organisation deny, with the error when the key cannot be converted.
    for key in (f"{acme}.0", "acme", f"{acme}x", -acme, 10**9, ""):
        decision = authorize(maint, "testapp.change_project", Project(org_id=key, name="x"))
        assert (decision.allowed, decision.layer) == (False, Layer.PERMISSION), key
    bad = authorize(maint, "testapp.change_project", Project(org_id="acme"))
    assert bad.error is not None and bad.reason.startswith("could not be decided")
    # The object is itself the scope object: the same for its primary key.
    assert authorize(maint, "testapp.manage_org", Org(pk=str(acme), name="Acme"))
    assert not authorize(maint, "testapp.manage_org", Org(pk=str(globex), name="Globex"))


def test_a_move_in_memory_is_decided_on_the_organisation_it_moves_to(
    scoped: Scope, world: dict[str, Any]
) -> None:
    maint = world["maint"]
    # Into Acme (where the actor maintains) from Globex (where it does not): the object as it
    # would be written decides, so authorize() allows the move ...
    theirs = Project.objects.get(pk=world["projects"]["globex"].pk)
    theirs.org = world["acme"]
    assert authorize(maint, "testapp.change_project", theirs)
    # ... and out of Acme into Globex it refuses.
    mine = Project.objects.get(pk=world["projects"]["acme"].pk)
    mine.org_id = world["globex"].pk
    assert not authorize(maint, "testapp.change_project", mine)
    # A task whose project was swapped for Globex's, with the old project cached by a join.
    task = Task.objects.select_related("project").get(pk=world["tasks"]["acme"].pk)
    task.project = world["projects"]["globex"]
    assert not authorize(maint, "testapp.edit_task", task)
    assert not any(authorize_many(maint, "testapp.edit_task", [task]))
    # perform() decides on the locked row, not on the caller's copy: a Globex project handed
    # over with its organisation changed in memory is still Globex's, and the body never runs.
    ran = []
    with pytest.raises(PermissionMissing), perform(maint, "testapp.change_project", theirs):
        ran.append(True)
    assert ran == []
    assert Project.objects.get(pk=theirs.pk).org_id == world["globex"].pk
    # A creation is decided on the unsaved object as given.
    with (
        pytest.raises(PermissionMissing),
        perform(maint, "testapp.change_project", Project(org=world["globex"], name="new")),
    ):
        ran.append(True)
    assert ran == [] and not Project.objects.filter(name="new").exists()


def test_a_deleted_organisation_opens_nothing(scoped: Scope, world: dict[str, Any]) -> None:
    maint = world["maint"]
    project = Project.objects.get(pk=world["projects"]["acme"].pk)
    acme_pk = world["acme"].pk
    Org.objects.filter(pk=acme_pk).delete()  # its memberships and projects go with it
    actor = _fresh(maint)
    assert not authorize(actor, "testapp.change_project", project)  # the copy in memory
    assert not authorize(actor, "testapp.change_project", Project(org_id=acme_pk))
    assert not can_attempt(actor, "testapp.change_project")
    assert _filtered(actor, "testapp.change_project", Project) == []


def test_an_actor_deactivated_after_its_memberships_were_cached_holds_nothing(
    scoped: Scope, world: dict[str, Any]
) -> None:
    maint = world["maint"]
    project = world["projects"]["acme"]
    assert authorize(maint, "testapp.change_project", project)  # warm
    maint.is_active = False
    decision = authorize(maint, "testapp.change_project", project)
    assert (decision.allowed, decision.reason) == (False, "This account is inactive.")
    assert not explain(maint, "testapp.change_project", project)
    assert not any(authorize_many(maint, "testapp.change_project", [project]))
    assert not can_attempt(maint, "testapp.change_project")
    assert _filtered(maint, "testapp.change_project", Project) == []


# -- other classes: proxies of the models, objects of the wrong model --------------------------


class _ProxyProject(Project):
    class Meta:
        proxy = True
        app_label = "testapp"


class _ProxyOrg(Org):
    class Meta:
        proxy = True
        app_label = "testapp"


def test_proxies_of_the_action_model_and_of_the_scope_model_decide_alike(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    # The scope declared on a proxy of Org; one action on Project, one on its proxy.
    Scope("organization", model=_ProxyOrg, membership=OrgMembership, groups="groups")
    on_model = Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    on_proxy = Action("testapp.change_proxy", model=_ProxyProject, permission=CHANGE, scope="org")
    manage = Action("testapp.manage_org", model=Org, permission=MANAGE, scope="pk")
    maint, acme = world["maint"], world["projects"]["acme"].pk
    for action in (on_model, on_proxy):
        for model in (Project, _ProxyProject):
            objs = list(model.objects.order_by("pk"))
            assert [o.pk for o in objs if authorize(maint, action, o)] == [acme], (action, model)
            assert [o.pk for o in objs if explain(maint, action, o)] == [acme]
            assert [d.resource.pk for d in authorize_many(maint, action, objs) if d] == [acme]
            assert _filtered(maint, action.name, model) == [acme]
    for model in (Org, _ProxyOrg):
        assert _allowed(maint, "testapp.manage_org", model) == [world["acme"].pk]
        assert _filtered(maint, manage.name, model) == [world["acme"].pk]


def test_an_object_of_another_model_is_refused_not_decided(
    scoped: Scope, world: dict[str, Any]
) -> None:
    from clearance.backends import ClearanceBackend

    maint = world["maint"]
    task = world["tasks"]["acme"]  # a Task: it has no "org", but its project has one
    for call in (
        lambda: authorize(maint, "testapp.change_project", task),
        lambda: explain(maint, "testapp.change_project", task),
        lambda: authorize_many(maint, "testapp.change_project", [world["projects"]["acme"], task]),
        lambda: authorized(maint, "testapp.change_project", Task.objects.all()),
        lambda: authorize(maint, "testapp.manage_org", world["projects"]["acme"]),
    ):
        with pytest.raises(TypeError, match="acts on testapp"):
            call()
    # The backend answers a permission for the object's own model only.
    assert not ClearanceBackend().has_perm(maint, CHANGE, task)


# -- querysets ----------------------------------------------------------------------------------


def test_authorized_keeps_the_callers_queryset_shape_and_filters_it(
    scoped: Scope, world: dict[str, Any]
) -> None:
    from django.db.models import Count, F

    maint = world["maint"]
    Project.objects.create(org=world["acme"], name="second")
    Task.objects.create(project=world["projects"]["acme"], title="again")
    base = Project.objects.all()
    allowed = set(_allowed(maint, "testapp.change_project", Project))
    cases = {
        "values": (base.values("pk", "name"), lambda r: {row["pk"] for row in r}),
        "values_list": (base.values_list("pk", flat=True), set),
        "distinct": (base.distinct(), lambda r: {o.pk for o in r}),
        "to-many annotation": (base.annotate(n=Count("tasks")), lambda r: {o.pk for o in r}),
        "annotation": (base.annotate(o=F("org")), lambda r: {o.pk for o in r}),
        "filtered": (base.filter(name="acme"), lambda r: {o.pk for o in r}),
        "excluded": (base.exclude(org=world["acme"]), lambda r: {o.pk for o in r}),
        "ordered, joined": (
            base.order_by("-pk").select_related("org"),
            lambda r: [o.pk for o in r],
        ),
        "none": (base.none(), lambda r: {o.pk for o in r}),
    }
    for name, (queryset, read) in cases.items():
        got = read(authorized(maint, "testapp.change_project", queryset))
        expected = {pk for pk in read(queryset) if pk in allowed}
        assert set(got) == expected, name
    # The to-many annotation still counts each project's tasks once per task.
    counted = authorized(maint, "testapp.change_project", base.annotate(n=Count("tasks")))
    assert sorted(counted.values_list("name", "n")) == [("acme", 2), ("second", 0)]
    # Grouped rows: one per organisation the actor may change projects of.
    grouped = authorized(
        maint, "testapp.change_project", base.values("org").annotate(n=Count("id"))
    )
    assert list(grouped) == [{"org": world["acme"].pk, "n": 2}]


def test_authorize_many_on_a_mixed_page_agrees_with_authorize(
    scoped: Scope, world: dict[str, Any]
) -> None:
    maint = world["maint"]
    acme, globex = world["acme"], world["globex"]
    moved = Task.objects.select_related("project").get(pk=world["tasks"]["globex"].pk)
    moved.project = world["projects"]["acme"]  # in memory
    swapped = Task.objects.select_related("project").get(pk=world["tasks"]["acme"].pk)
    swapped.project.org = globex  # the cached project moved, in memory
    page = [
        *Task.objects.order_by("pk"),
        moved,
        swapped,
        Task(project=world["projects"]["globex"]),
        Task(project=Project(org=acme)),
        Task(project=Project(org=globex)),
        Task(project=None),
        Task.objects.create(project=Project.objects.create(org=None)),
        Task(project_id=10**9),  # a project that does not exist
    ]
    expected = [authorize(maint, "testapp.edit_task", t) for t in page]
    got = authorize_many(maint, "testapp.edit_task", page)
    assert [(d.allowed, d.reason, bool(d.error)) for d in got] == [
        (d.allowed, d.reason, bool(d.error)) for d in expected
    ]
    assert [d.allowed for d in got] == [
        True,
        False,
        True,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    ]


# -- the actor's cache: async, threads, a scope declared again ---------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_async_twins_decide_as_the_sync_functions(fresh_registry: Any) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    from clearance import aauthorize, aauthorized, aexplain
    from clearance.engine import aauthorize_many

    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    try:
        made = await sync_to_async(_make_world)()
        user = made["maint"]
        projects = [made["projects"]["acme"], made["projects"]["globex"]]
        lazy = SimpleLazyObject(lambda: _fresh(user))
        for actor, expected in ((lazy, [True, False]), (_Job("sync", user.pk), [False, False])):
            got = [bool(await aauthorize(actor, "testapp.change_project", p)) for p in projects]
            explained = [bool(await aexplain(actor, "testapp.change_project", p)) for p in projects]
            decisions = await aauthorize_many(actor, "testapp.change_project", projects)
            queryset = await aauthorized(actor, "testapp.change_project", Project.objects.all())
            rows = await sync_to_async(lambda q=queryset: sorted(q.values_list("pk", flat=True)))()
            assert got == explained == [bool(d) for d in decisions] == expected
            assert rows == [p.pk for p, ok in zip(projects, expected, strict=True) if ok]
    finally:
        await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
def test_threads_deciding_on_one_actor_while_its_cache_fills(fresh_registry: Any) -> None:
    import sys
    import threading

    from django.db import connection

    from clearance import ACTOR, where

    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    # A to-many rule tied to the actor shares the actor's cache with the memberships.
    Action("testapp.edit_task", model=Task, permission=EDIT_TASK, scope="project__org").policy(
        "member", where(project__members=ACTOR), reason="Project members only."
    )
    made = _make_world()
    for project in made["projects"].values():
        project.members.add(made["maint"])
    cases = [
        ("testapp.change_project", made["projects"]["acme"], True),
        ("testapp.change_project", made["projects"]["globex"], False),
        ("testapp.edit_task", made["tasks"]["acme"], True),
        ("testapp.edit_task", made["tasks"]["globex"], False),
    ]
    rows = {action: [obj.pk] for action, obj, allowed in cases if allowed}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    wrong: list[Any] = []
    try:
        for _round in range(10):
            actor = _fresh(made["maint"])  # cold: every thread may fill the cache
            start = threading.Barrier(4)

            def decide(offset: int, actor: User = actor, start: Any = start) -> None:
                try:
                    start.wait()
                    for i in range(len(cases) * 2):
                        action, obj, allowed = cases[(i + offset) % len(cases)]
                        if bool(authorize(actor, action, obj)) is not allowed:
                            wrong.append((action, obj, allowed))
                        if _filtered(actor, action, type(obj)) != rows[action]:
                            wrong.append(("authorized", action))
                finally:
                    connection.close()

            threads = [threading.Thread(target=decide, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_a_scope_declared_again_is_what_the_next_decision_uses(
    scoped: Scope, world: dict[str, Any]
) -> None:
    from clearance.scopes import scope_registry
    from clearance.testing import override_rules

    maint = world["maint"]
    acme, globex = world["projects"]["acme"], world["projects"]["globex"]
    OrgRole.objects.create(user=maint, org=world["globex"], role="maintainer")

    def verdicts() -> list[Any]:
        return [
            [bool(authorize(maint, "testapp.change_project", p)) for p in (acme, globex)],
            [bool(explain(maint, "testapp.change_project", p)) for p in (acme, globex)],
            [bool(d) for d in authorize_many(maint, "testapp.change_project", [acme, globex])],
            _filtered(maint, "testapp.change_project", Project),
            can_attempt(maint, "testapp.change_project"),
        ]

    through_groups = [[True, False], [True, False], [True, False], [acme.pk], True]
    assert verdicts() == through_groups  # the compiled plan and the actor's cache are warm
    with override_rules("testapp.change_project"):
        # The same name, now the role form, where the actor maintains Globex only.
        scope_registry.unregister("organization")
        Scope(
            "organization",
            model=Org,
            membership=OrgRole,
            role="role",
            roles={"maintainer": ["Maintainers"]},
        )
        assert verdicts() == [[False, True], [False, True], [False, True], [globex.pk], True]
        # Removed: nobody holds it through a membership; the error says why.
        scope_registry.unregister("organization")
        decision = authorize(maint, "testapp.change_project", acme)
        assert not decision and "not the model of a declared Scope" in (decision.error or "")
        assert verdicts() == [[False, False], [False, False], [False, False], [], False]
    assert verdicts() == through_groups  # restored with the registry


def test_explain_and_every_entry_point_name_the_same_first_granting_membership(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action(
        "testapp.publish_project",
        model=Project,
        permission="testapp.publish_project",
        scope=("org", "partner"),
    )
    publishers = Group.objects.create(name="Publishers")
    also = Group.objects.create(name="Also publishers")
    for group in (publishers, also):
        group.permissions.add(_perm("testapp.publish_project"))
    user = User.objects.create_user("publisher")
    acme, globex = world["acme"], world["globex"]
    # Two memberships of Globex grant it (the later one through two groups), one of Acme.
    acme_membership = OrgMembership.objects.create(user=user, org=acme)
    acme_membership.groups.add(publishers)
    first = OrgMembership.objects.create(user=user, org=globex)
    first.groups.add(publishers)
    second = OrgMembership.objects.create(user=user, org=globex)
    second.groups.add(publishers, also)
    shared = Project.objects.create(org=globex, partner=acme, name="shared")
    # The first path ("org") decides the reason: Globex's first membership, its group.
    expected = (
        f"Holds the permission testapp.publish_project through membership {first.pk} of "
        f"organization {globex.pk} (group Publishers)."
    )
    reasons = {
        "authorize": authorize(_fresh(user), "testapp.publish_project", shared).trace[0].reason,
        "explain": explain(_fresh(user), "testapp.publish_project", shared).trace[0].reason,
        "many": authorize_many(_fresh(user), "testapp.publish_project", [shared])[0]
        .trace[0]
        .reason,
    }
    assert reasons == dict.fromkeys(reasons, expected)
    # Without the first membership, the second, through the group first by name.
    first.delete()
    reason = authorize(_fresh(user), "testapp.publish_project", shared).trace[0].reason
    assert f"membership {second.pk} " in reason and "(group Also publishers)" in reason
    # Without Globex's at all, the partner path: Acme's membership.
    second.delete()
    reason = explain(_fresh(user), "testapp.publish_project", shared).trace[0].reason
    assert f"membership {acme_membership.pk} of organization {acme.pk} " in reason


# -- an entry point: another organisation's id in a payload ------------------------------------


def test_a_rest_api_never_moves_a_project_across_organisations_without_both_roles(
    scoped: Scope, world: dict[str, Any]
) -> None:
    from rest_framework import serializers, viewsets
    from rest_framework.test import APIRequestFactory, force_authenticate

    from clearance.contrib.drf import ClearanceAPIMixin, ClearanceFilterBackend, ClearancePermission

    Action("testapp.view_project", model=Project, permission="testapp.view_project", scope="org")
    Action("testapp.create_project", model=Project, permission="testapp.add_project", scope="org")
    Group.objects.get(name="Maintainers").permissions.add(
        _perm("testapp.view_project"), _perm("testapp.add_project")
    )

    class ProjectSerializer(serializers.ModelSerializer[Project]):
        class Meta:
            model = Project
            fields = ["id", "name", "org"]

    class Projects(ClearanceAPIMixin, viewsets.ModelViewSet[Project]):
        queryset = Project.objects.order_by("pk")
        serializer_class = ProjectSerializer
        permission_classes = [ClearancePermission]
        filter_backends = [ClearanceFilterBackend]
        clearance_actions = {
            "create": "testapp.create_project",
            "update": "testapp.change_project",
            "partial_update": "testapp.change_project",
        }

    factory = APIRequestFactory()
    maint = world["maint"]
    acme, globex = world["acme"], world["globex"]
    mine, theirs = world["projects"]["acme"], world["projects"]["globex"]

    def call(method: str, pk: int | None, data: dict[str, Any] | None = None) -> Any:
        request = getattr(factory, method)(f"/projects/{pk or ''}", data or {}, format="json")
        force_authenticate(request, user=_fresh(maint))
        views = {"post": "create"} if pk is None else {"get": "retrieve", "patch": "partial_update"}
        return Projects.as_view(views)(request, **({"pk": pk} if pk else {}))

    assert call("get", mine.pk).status_code == 200
    assert call("get", theirs.pk).status_code == 404  # not yours: not found
    # Pulling Globex's project into Acme: refused on the object as it is (Globex's).
    assert call("patch", theirs.pk, {"org": acme.pk}).status_code == 404
    # Pushing Acme's project into Globex: refused on the object as it would be.
    response = call("patch", mine.pk, {"org": globex.pk})
    assert response.status_code == 403
    assert "through a membership of the object's organization" in str(response.data)
    # Creating in Globex: refused; in Acme: allowed.
    assert call("post", None, {"name": "new", "org": globex.pk}).status_code == 403
    assert call("post", None, {"name": "ok", "org": acme.pk}).status_code == 201
    assert sorted(Project.objects.values_list("name", "org")) == [
        ("acme", acme.pk),
        ("globex", globex.pk),
        ("ok", acme.pk),
    ]


def test_a_membership_without_a_scope_object_or_a_user_opens_nothing(
    fresh_registry: Any, db: None
) -> None:
    # Documents serve as memberships here: an owner (the user), a nullable tenant (the scope
    # object) and a state (the role). A membership row whose tenant is NULL must not open the
    # objects whose tenant is NULL too (NULL = NULL is not true in SQL, nor here), and one whose
    # owner is NULL belongs to nobody.
    from tests.testapp.models import Document

    approve = "testapp.approve_document"
    Group.objects.create(name="Approvers").permissions.add(_perm(approve))
    Scope(
        "tenancy",
        model=Tenant,
        membership=Document,
        user_field="owner",
        role="state",
        roles={"member": ["Approvers"]},
    )
    Action("testapp.approve_in_tenant", model=Document, permission=approve, scope="tenant")
    user = User.objects.create_user("member")
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    Document.objects.create(owner=user, tenant=None, state="member", title="no scope")
    Document.objects.create(owner=None, tenant=globex, state="member", title="nobody's")
    Document.objects.create(owner=user, tenant=acme, state="member", title="member of acme")
    Document.objects.create(tenant=None, title="loose")
    Document.objects.create(tenant=globex, title="globex's")
    actor = _fresh(user)
    allowed = sorted(
        d.title for d in Document.objects.all() if authorize(actor, "testapp.approve_in_tenant", d)
    )
    assert allowed == ["member of acme"]
    filtered = authorized(actor, "testapp.approve_in_tenant", Document.objects.all())
    assert sorted(filtered.values_list("title", flat=True)) == allowed
    assert not authorize(actor, "testapp.approve_in_tenant", Document(tenant=None))


def test_a_scope_on_models_that_do_not_exist_is_reported_in_one_sentence_each(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    from django.core import checks

    Scope("organization", model="nope.Nope", membership="testapp.OrgMembership", groups="groups")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    decision = authorize(world["maint"], "testapp.change_project", world["projects"]["acme"])
    assert not decision and "No installed app with label 'nope'" in (decision.error or "")
    assert not can_attempt(world["maint"], "testapp.change_project")
    assert _filtered(world["maint"], "testapp.change_project", Project) == []
    messages = {
        m.id: m.msg
        for m in checks.run_checks(tags=["clearance"])
        if m.id in ("clearance.E020", "clearance.E021")
    }
    assert messages == {
        "clearance.E020": "Scope 'organization': No installed app with label 'nope'. No "
        "membership of it grants anything: gate 1 denies every actor without the permission "
        "globally, with an error.",
        "clearance.E021": "testapp.change_project: No installed app with label 'nope'. Gate 1 "
        "denies every actor without the permission globally, with an error.",
    }


def test_a_hostile_group_name_in_the_reason_is_shown_as_text(
    scoped: Scope, world: dict[str, Any], settings: Any
) -> None:
    # The reason names the group, whose name anyone with the admin's group page writes.
    from django.test import Client

    settings.ROOT_URLCONF = "tests.console.urls"
    settings.CLEARANCE = {**getattr(settings, "CLEARANCE", {}), "CONSOLE_SEES_ALL": True}
    hostile = '<script>alert("x")</script>'
    world["maintainers"].name = hostile
    world["maintainers"].save()
    project = world["projects"]["acme"]
    reason = authorize(_fresh(world["maint"]), "testapp.change_project", project).trace[0].reason
    assert f"(group {hostile})" in reason
    staff = User.objects.create_user("staffer", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="clearance_console", codename="view_console")
    )
    client = Client()
    client.force_login(staff)
    response = client.get(
        "/clearance/explain/",
        {"user": "maint", "action": "testapp.change_project", "object": project.pk},
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "through membership" in page
    assert hostile not in page
    assert "(group &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;)" in page


def test_role_groups_given_as_a_generator_are_kept(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    # The groups of a role read once: a generator must not be used up by the validation.
    scope = Scope(
        "organization",
        model=Org,
        membership=OrgRole,
        role="role",
        roles={"maintainer": (name for name in ["Maintainers"])},
    )
    assert scope.roles == {"maintainer": ("Maintainers",)}
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    user = User.objects.create_user("generated")
    OrgRole.objects.create(user=user, org=world["acme"], role="maintainer")
    assert authorize(_fresh(user), "testapp.change_project", world["projects"]["acme"])


def test_a_permission_of_the_same_codename_in_another_app_grants_nothing_through_a_role(
    fresh_registry: Any, world: dict[str, Any]
) -> None:
    from django.contrib.contenttypes.models import ContentType

    impostor = Permission.objects.create(
        codename="change_project",
        name="Can change projects elsewhere",
        content_type=ContentType.objects.get_for_model(Group),
    )
    Group.objects.create(name="Lookalikes").permissions.add(impostor)
    Scope(
        "organization",
        model=Org,
        membership=OrgRole,
        role="role",
        roles={"lookalike": ["Lookalikes"], "maintainer": ["Maintainers"]},
    )
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")
    user = User.objects.create_user("lookalike")
    OrgRole.objects.create(user=user, org=world["acme"], role="lookalike")
    OrgRole.objects.create(user=user, org=world["globex"], role="maintainer")
    actor = _fresh(user)
    globex = [world["projects"]["globex"].pk]
    assert _allowed(actor, "testapp.change_project", Project) == globex
    assert _filtered(actor, "testapp.change_project", Project) == globex


def test_perform_decides_gate_1_on_the_locked_row(scoped: Scope, world: dict[str, Any]) -> None:
    maint = world["maint"]
    stale = Project.objects.get(pk=world["projects"]["acme"].pk)
    # Moved to Globex by someone else since the caller read it: the locked row decides.
    Project.objects.filter(pk=stale.pk).update(org=world["globex"])
    with pytest.raises(PermissionMissing), perform(maint, "testapp.change_project", stale):
        pytest.fail("the body must not run")
    Project.objects.filter(pk=stale.pk).update(org=world["acme"])
    with perform(maint, "testapp.change_project", stale) as locked:
        assert locked.org_id == world["acme"].pk
        locked.name = "renamed"
        locked.save()
    assert Project.objects.get(pk=stale.pk).name == "renamed"


# -- the law, for every world: authorized() is per-object authorize() --------------------------

_GROUPS = {
    "Maintainers": [CHANGE, EDIT_TASK, MANAGE],
    "Readers": ["testapp.view_project"],
    "Taskers": [EDIT_TASK],
}
_ROLES = {"maintainer": ["Maintainers"], "reader": ["Readers"], "tasker": ["Taskers", "Readers"]}
_PATHS = {
    "change": [("org",), ("partner",), ("org", "partner"), ("partner", "org")],
    "edit_task": [("project__org",), ("project__partner",), ("project__org", "project__partner")],
    "manage": [("pk",)],
}
_MODELS = {"change": (Project, CHANGE), "edit_task": (Task, EDIT_TASK), "manage": (Org, MANAGE)}


def _scope_worlds() -> Any:
    from hypothesis import strategies as st

    org = st.none() | st.integers(0, 2)
    user = st.fixed_dictionaries(
        {
            # (organisation, groups) for the groups form; the first group is the role
            "memberships": st.lists(
                st.tuples(
                    st.integers(0, 2), st.lists(st.sampled_from(sorted(_GROUPS)), max_size=2)
                ),
                max_size=3,
            ),
            "global": st.booleans(),
            "superuser": st.booleans(),
            "active": st.booleans(),
        }
    )
    return st.fixed_dictionaries(
        {
            "users": st.lists(user, min_size=3, max_size=3),
            "projects": st.lists(
                st.tuples(org, org, st.booleans()), min_size=2, max_size=6
            ),  # (org, partner, archived)
            "tasks": st.lists(st.none() | st.integers(0, 5), max_size=6),
            "form": st.sampled_from(["groups", "role"]),
            "action": st.sampled_from(sorted(_PATHS)),
            "path": st.integers(0, 3),
            "policy": st.booleans(),
        }
    )


def _build_scope_world(spec: dict[str, Any]) -> list[Any]:
    groups = {}
    for name, perms in _GROUPS.items():
        groups[name] = Group.objects.create(name=name)
        groups[name].permissions.add(*(_perm(p) for p in perms))
    orgs = [Org.objects.create(name=f"org{i}") for i in range(3)]
    actors: list[Any] = []
    for i, user_spec in enumerate(spec["users"]):
        user = User.objects.create_user(
            f"user{i}",
            is_superuser=user_spec["superuser"] and i == 0,
            is_active=user_spec["active"] or i != 1,
        )
        if user_spec["global"] and i == 2:
            user.user_permissions.add(_perm(CHANGE))
        for org, names in user_spec["memberships"]:
            membership = OrgMembership.objects.create(user=user, org=orgs[org])
            membership.groups.add(*(groups[n] for n in names))
            role = next((r for r, g in _ROLES.items() if names and g[0] == names[0]), "none")
            OrgRole.objects.create(user=user, org=orgs[org], role=role)
        actors.append(user)
    projects = [
        Project.objects.create(
            org=None if o is None else orgs[o],
            partner=None if p is None else orgs[p],
            archived=archived,
            name=f"p{i}",
        )
        for i, (o, p, archived) in enumerate(spec["projects"])
    ]
    for i, index in enumerate(spec["tasks"]):
        project = projects[index] if index is not None and index < len(projects) else None
        Task.objects.create(project=project, title=f"t{i}")
    return actors


def _expected(actor: Any, form: str, model: Any, perm: str, paths: tuple[str, ...]) -> list[int]:
    """What gate 1 and the "live" policy should allow, worked out without clearance."""
    if not isinstance(actor, User) or not actor.is_active:
        return []  # anonymous, inactive, or not a user at all (the impostor holds nothing)
    everywhere = (
        actor.is_superuser
        or actor.user_permissions.filter(
            content_type__app_label=perm.split(".")[0], codename=perm.split(".")[1]
        ).exists()
    )
    granted: set[int] = set()
    if form == "groups":
        for membership in OrgMembership.objects.filter(user=actor):
            names = {g.name for g in membership.groups.all()}
            if any(perm in _GROUPS[n] for n in names):
                granted.add(membership.org_id)
    else:
        for held in OrgRole.objects.filter(user=actor):
            names = set(_ROLES.get(held.role, []))
            if any(perm in _GROUPS[n] for n in names):
                granted.add(held.org_id)

    def scope_keys(obj: Any) -> list[Any]:
        keys = []
        for path in paths:
            value = obj
            for hop in [] if path == "pk" else path.split("__"):
                value = getattr(value, hop) if value is not None else None
            keys.append(None if value is None else value.pk)
        return keys

    allowed = []
    for obj in model.objects.order_by("pk"):
        if not everywhere and not any(k in granted for k in scope_keys(obj) if k is not None):
            continue
        allowed.append(obj.pk)
    return allowed


def test_authorized_is_authorize_in_every_world(db: None) -> None:
    import os

    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from hypothesis import HealthCheck, given, note, settings

    from clearance import where
    from clearance.actions import registry

    @settings(
        max_examples=int(os.environ.get("CLEARANCE_SCOPE_EXAMPLES", "40")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(spec=_scope_worlds())
    def check(spec: dict[str, Any]) -> None:
        from django.db import transaction

        state = registry.snapshot()
        sid = transaction.savepoint()
        try:
            if spec["form"] == "groups":
                Scope("organization", model=Org, membership=OrgMembership, groups="groups")
            else:
                Scope("organization", model=Org, membership=OrgRole, role="role", roles=_ROLES)
            paths = _PATHS[spec["action"]]
            model, perm = _MODELS[spec["action"]]
            action = Action(
                "testapp.scoped",
                model=model,
                permission=perm,
                scope=paths[spec["path"] % len(paths)],
            )
            live: Any = lambda obj: True  # noqa: E731
            if spec["policy"] and model is Project:
                action.policy("live", ~where(archived=True), reason="Archived.")
                live = lambda obj: not obj.archived  # noqa: E731
            elif spec["policy"] and model is Task:
                action.policy("live", where(project__archived=False), reason="Archived.")
                live = lambda obj: obj.project is not None and not obj.project.archived  # noqa: E731
            note(f"{spec['form']} {action.name} scope={action.scope}")
            users = _build_scope_world(spec)
            actors = [*users, AnonymousUser(), _Job("impostor", users[0].pk)]
            for actor in actors:
                again = (
                    (lambda a=actor: _fresh(a)) if isinstance(actor, User) else (lambda a=actor: a)
                )
                objs = list(model.objects.order_by("pk"))
                one_by_one = [o.pk for o in objs if authorize(again(), action, o)]
                explained = [o.pk for o in objs if explain(again(), action, o)]
                batch = [d.resource.pk for d in authorize_many(again(), action, objs) if d]
                queryset = authorized(again(), action, model.objects.order_by("pk"))
                with CaptureQueriesContext(connection) as queries:
                    rows = list(queryset.values_list("pk", flat=True))
                assert len(queries) <= 1
                assert rows == one_by_one == explained == batch, actor
                expected = _expected(actor, spec["form"], model, perm, action.scope)
                assert one_by_one == [pk for pk in expected if live(model.objects.get(pk=pk))]
                assert can_attempt(again(), action) or one_by_one == []
        finally:
            transaction.savepoint_rollback(sid)
            registry.restore(state)

    check()


def test_authorized_checking_rules_in_python_keeps_the_scope_in_sql(
    scoped: Scope, world: dict[str, Any]
) -> None:
    from clearance import NotFilterable, predicate

    @predicate
    def named(ctx: Any) -> bool:  # reads the object: no SQL form
        return bool(ctx.obj.name)

    scoped_action = Action("testapp.rename", model=Project, permission=CHANGE, scope="org")
    scoped_action.policy("named", named, reason="Named projects only.")
    Project.objects.create(org=world["acme"], name="")
    maint = world["maint"]
    with pytest.raises(NotFilterable):
        authorized(maint, "testapp.rename", Project.objects.all())
    rows = authorized(maint, "testapp.rename", Project.objects.all(), evaluate_in_python=True)
    assert sorted(rows.values_list("pk", flat=True)) == _allowed(maint, "testapp.rename", Project)
    assert _allowed(maint, "testapp.rename", Project) == [world["projects"]["acme"].pk]
    impostor = _Job("sync", maint.pk)
    assert (
        list(authorized(impostor, "testapp.rename", Project.objects.all(), evaluate_in_python=True))
        == []
    )
