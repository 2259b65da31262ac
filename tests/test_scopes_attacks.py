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
)
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
        assert list(scoped.granting(actor, CHANGE, held)) == []
    assert list(scoped.granting(victim, CHANGE, held)) == [{"org__pk": world["acme"].pk}]


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
