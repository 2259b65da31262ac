"""The console understands scopes: an action's scope paths, the grants within scopes, the
membership through which gate 1 held, and the objects of a scoped view action."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client

from clearance import Action, Scope, authorize
from clearance.audit.models import AuditRecord
from clearance.console.gates import gates
from clearance.console.scope import visible_objects, visible_records
from tests.testapp.models import Org, OrgMembership, Project

from .conftest import console_permission
from .html import classes, element, gate, rule_row, visible_text

pytestmark = pytest.mark.django_db

CHANGE = "testapp.change_project"
VIEW = "testapp.view_project"


def perm(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def scoped(fresh_registry: Any) -> dict[str, Action]:
    """The organisation scope (a membership carries groups) and actions held within it."""
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    return {
        "view": Action("testapp.view_project", model=Project, permission=VIEW, scope="org"),
        "change": Action(
            "testapp.change_project", model=Project, permission=CHANGE, scope=("org", "partner")
        ),
    }


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    maintainers = Group.objects.create(name="Maintainers")
    maintainers.permissions.add(perm(CHANGE), perm(VIEW))
    readers = Group.objects.create(name="Readers")
    readers.permissions.add(perm(VIEW))
    acme, globex = Org.objects.create(name="Acme"), Org.objects.create(name="Globex")
    maint = User.objects.create_user("maint", password="x")
    OrgMembership.objects.create(user=maint, org=acme).groups.add(maintainers)
    OrgMembership.objects.create(user=maint, org=globex).groups.add(readers)
    return {
        "maintainers": maintainers,
        "acme": acme,
        "globex": globex,
        "maint": User.objects.get(pk=maint.pk),
        "acme_project": Project.objects.create(org=acme, name="Acme site"),
        "globex_project": Project.objects.create(org=globex, name="Globex site"),
    }


def explain(client: Client, **params: Any) -> str:
    response = client.get(f"/clearance/explain/?{urlencode(params)}")
    assert response.status_code == 200
    return response.content.decode()


# -- actions and matrix ---------------------------------------------------------------------------


def test_actions_page_shows_the_scope_paths_at_gate_one(
    staff_client: Client, scoped: dict[str, Action]
) -> None:
    page = staff_client.get("/clearance/actions/").content.decode()
    section = visible_text(element(page, "section", "id", "action-testappchange_project"))

    assert (
        "1 permission testapp.change_project has_perm('testapp.change_project') or a membership "
        "of the organization (org, scope organization) or the organization (partner, scope "
        "organization)"
    ) in section
    # The reason gate 1 gives on a denial.
    assert (
        "This needs the permission testapp.change_project, globally or through a membership of "
        "the object's organization, which you do not hold."
    ) in section
    # An unscoped action reads as before.
    approve = visible_text(element(page, "section", "id", "action-testappapprove"))
    assert "has_perm('testapp.approve_document') This needs the permission" in approve


def test_matrix_shows_the_groups_granting_within_the_scope(
    staff_client: Client, scoped: dict[str, Action], world: dict[str, Any]
) -> None:
    page = staff_client.get("/clearance/matrix/").content.decode()
    change = element(page, "tr", "data-action", "testapp.change_project")
    view = element(page, "tr", "data-action", "testapp.view_project")

    assert visible_text(element(change, "td", "class", "within")) == (
        "organization: group Maintainers"
    )
    assert visible_text(element(view, "td", "class", "within")) == (
        "organization: groups Maintainers, Readers"
    )
    # An unscoped action holds its permission globally only.
    approve = element(page, "tr", "data-action", "testapp.approve")
    assert visible_text(element(approve, "td", "class", "within")) == "global only"
    # The group columns still say who holds it everywhere.
    assert "holds" in classes(element(change, "td", "data-group", "Maintainers"))
    scope = visible_text(element(page, "tr", "data-scope", "organization"))
    assert scope == (
        "organization testapp.Org testapp.OrgMembership (user, org) the groups it carries (groups)"
    )


def test_matrix_without_scoped_actions_has_no_scope_column(
    staff_client: Client, fresh_registry: Any
) -> None:
    for action in list(fresh_registry.actions):
        if action.scope:  # the example's, and any other installed app's
            fresh_registry.unregister(action.name)
    page = staff_client.get("/clearance/matrix/").content.decode()
    assert "Within scope" not in page and "<h2>Scopes</h2>" not in page
    assert 'data-action="testapp.approve"' in page


def test_a_path_that_reaches_no_scope_is_shown_not_a_server_error(
    staff_client: Client, scoped: dict[str, Action]
) -> None:
    Action("testapp.rename_project", model=Project, permission=CHANGE, scope="name")

    actions = staff_client.get("/clearance/actions/")
    matrix = staff_client.get("/clearance/matrix/")

    assert actions.status_code == matrix.status_code == 200
    section = element(actions.content.decode(), "section", "id", "action-testapprename_project")
    assert "name (no scope: scope path 'name': testapp.Project.name is not a foreign key)" in (
        visible_text(section)
    )
    row = element(matrix.content.decode(), "tr", "data-action", "testapp.rename_project")
    assert visible_text(element(row, "td", "class", "within")) == "name: no scope"


def test_hostile_group_names_are_escaped(
    staff_client: Client, scoped: dict[str, Action], world: dict[str, Any]
) -> None:
    world["maintainers"].name = "<script>alert(1)</script>"
    world["maintainers"].save()
    page = staff_client.get("/clearance/matrix/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    shown = explain(staff_client, user="maint", action=CHANGE, object=world["acme_project"].pk)
    assert "<script>alert(1)</script>" not in shown
    assert "group &lt;script&gt;alert(1)&lt;/script&gt;" in shown


# -- explain --------------------------------------------------------------------------------------


def test_explain_names_the_membership_and_group_gate_one_held_through(
    staff_client: Client, scoped: dict[str, Action], world: dict[str, Any]
) -> None:
    acme = world["acme"]
    membership = OrgMembership.objects.get(user=world["maint"], org=acme)
    page = explain(staff_client, user="maint", action=CHANGE, object=world["acme_project"].pk)

    row = visible_text(rule_row(gate(page, "permission"), CHANGE))
    assert row.startswith(f"✓ passed {CHANGE} has_perm('{CHANGE}') or membership via org")
    assert (
        f"Holds the permission {CHANGE} through membership {membership.pk} of organization "
        f"{acme.pk} (group Maintainers)."
    ) in row
    assert "Allowed" in visible_text(page)


def test_explain_of_another_organisations_object_denies_at_gate_one(
    staff_client: Client, scoped: dict[str, Action], world: dict[str, Any]
) -> None:
    # maint only reads in Globex: her Acme membership opens nothing there.
    page = explain(staff_client, user="maint", action=CHANGE, object=world["globex_project"].pk)

    permission = gate(page, "permission")
    assert "gate-decisive" in classes(permission)
    assert (
        f"This needs the permission {CHANGE}, globally or through a membership of the object's "
        "organization, which you do not hold."
    ) in visible_text(permission)


def test_a_gate_one_the_trace_lacks_is_drawn_with_the_scope(
    scoped: dict[str, Action], world: dict[str, Any]
) -> None:
    # An audit record kept without its trace: the declared gate 1 is drawn, not evaluated.
    decision = authorize(world["maint"], CHANGE, world["acme_project"]).replace(trace=())
    (row,) = gates(decision)[0].rules
    assert (row.name, row.outcome) == (CHANGE, "skipped")
    assert row.expression == f"has_perm('{CHANGE}') or membership via org, partner"


# -- the console user's reach, through a scoped view action ---------------------------------------


@pytest.fixture
def org_staff(world: dict[str, Any]) -> User:
    """Staff with the console's permission who reads within Acme only (a membership)."""
    user = User.objects.create_user("orgstaff", password="x", is_staff=True)
    user.user_permissions.add(console_permission())
    OrgMembership.objects.create(user=user, org=world["acme"]).groups.add(
        Group.objects.get(name="Readers")
    )
    return User.objects.get(pk=user.pk)


@pytest.fixture
def console_sees_its_reach(settings: Any) -> None:
    settings.CLEARANCE = {**settings.CLEARANCE, "CONSOLE_SEES_ALL": False}


def test_objects_and_records_follow_the_scoped_view_action(
    console_sees_its_reach: None,
    scoped: dict[str, Action],
    world: dict[str, Any],
    org_staff: User,
) -> None:
    acme_project, globex_project = world["acme_project"], world["globex_project"]
    assert list(visible_objects(org_staff, Project)) == [acme_project]

    for project in (acme_project, globex_project):
        AuditRecord.from_decision(authorize(world["maint"], CHANGE, project)).save()
    seen = visible_records(org_staff, AuditRecord.objects.filter(action=CHANGE))
    assert {r.resource_pk for r in seen} == {str(acme_project.pk)}


def test_explain_suggests_and_explains_only_objects_within_reach(
    console_sees_its_reach: None,
    scoped: dict[str, Action],
    world: dict[str, Any],
    org_staff: User,
) -> None:
    client = Client()
    client.force_login(org_staff)
    page = explain(client, action=CHANGE)
    datalist = element(page, "datalist", "id", "console-objects-testapp-project")
    assert "Acme site" in datalist and "Globex site" not in datalist

    hidden = explain(client, user="maint", action=CHANGE, object=world["globex_project"].pk)
    assert "Allowed" not in visible_text(hidden) and "Gate 1" not in visible_text(hidden)


# -- the example: roles per tenant ----------------------------------------------------------------


@pytest.fixture
def demo() -> None:
    if not apps.is_installed("invoices"):
        pytest.skip("the example is not installed")
    call_command("seed_demo", stdout=io.StringIO())


def test_the_examples_explain_shows_carols_role_in_acme(staff_client: Client, demo: None) -> None:
    from invoices.models import Invoice, Membership

    acme_002 = Invoice.objects.get(number="ACME-002")
    membership = Membership.objects.get(user__username="carol", tenant__slug="acme")
    page = explain(staff_client, user="carol", action="invoices.approve", object=acme_002.pk)
    row = visible_text(rule_row(gate(page, "permission"), "invoices.approve_invoice"))
    assert (
        f"through membership {membership.pk} of tenant {membership.tenant_id} "
        "(role approver, group approver)."
    ) in row


def test_the_examples_matrix_shows_roles_per_tenant(
    staff_client: Client, make_user: Callable[..., User], demo: None
) -> None:
    page = staff_client.get("/clearance/matrix/").content.decode()
    approve = element(page, "tr", "data-action", "invoices.approve")
    view = element(page, "tr", "data-action", "invoices.view")
    assert visible_text(element(approve, "td", "class", "within")) == "tenant: role approver"
    assert visible_text(element(view, "td", "class", "within")) == (
        "tenant: roles approver, clerk, auditor"
    )
    assert "approver → approver" in visible_text(element(page, "tr", "data-scope", "tenant"))
