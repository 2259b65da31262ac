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
from tests.testapp.models import Org, OrgMembership, Project, Task, Tenant

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
