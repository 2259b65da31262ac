"""``manage.py clearance matrix`` and ``actions`` for scoped actions: which groups or roles
grant a permission within which scope, besides the groups that hold it everywhere.

The golden files ``tests/golden/scopes_*`` are the test app's output with an organisation scope
(memberships carrying groups) and actions held within it, and ``tests/golden/github_*`` the
GitHub-like app's (``tests.githubapp``: an organisation scope whose memberships carry the groups
of teams, and a repository scope whose outside collaborators have a role); regenerate them after
a deliberate change with::

    CLEARANCE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_cli_scopes.py -k golden
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from clearance import Action, Scope
from tests.testapp.models import Org, OrgMembership, OrgRole, Project, Task

pytestmark = pytest.mark.django_db

CHANGE = "testapp.change_project"
VIEW = "testapp.view_project"
EDIT_TASK = "testapp.change_task"


def clearance(*args: str) -> str:
    out = io.StringIO()
    call_command("clearance", *args, stdout=out)
    return out.getvalue()


def perm(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@pytest.fixture
def groups(db: None) -> dict[str, Group]:
    maintainers = Group.objects.create(name="Maintainers")
    maintainers.permissions.add(perm(CHANGE), perm(VIEW), perm(EDIT_TASK))
    readers = Group.objects.create(name="Readers")
    readers.permissions.add(perm(VIEW))
    return {"Maintainers": maintainers, "Readers": readers}


@pytest.fixture
def by_groups(fresh_registry: Any, groups: dict[str, Group]) -> None:
    """A scope whose memberships carry groups, and actions held within it."""
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action("testapp.view_project", model=Project, permission=VIEW, scope="org")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope=("org", "partner"))
    Action("testapp.edit_task", model=Task, permission=EDIT_TASK, scope="project__org")


@pytest.fixture
def by_roles(fresh_registry: Any, groups: dict[str, Group]) -> None:
    """A scope whose memberships have a role naming groups (one role maps to none existing)."""
    Scope(
        "organization",
        model=Org,
        membership=OrgRole,
        role="role",
        roles={"owner": ["Maintainers"], "reader": ["Readers"], "guest": ["Nobody"]},
    )
    Action("testapp.view_project", model=Project, permission=VIEW, scope="org")
    Action("testapp.change_project", model=Project, permission=CHANGE, scope="org")


GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("CLEARANCE_UPDATE_GOLDEN") == "1"
GOLDEN_CASES = [
    ("scopes_matrix.txt", ["matrix"]),
    ("scopes_matrix.md", ["matrix", "--format", "markdown"]),
    ("scopes_matrix.csv", ["matrix", "--format", "csv"]),
    ("scopes_matrix.json", ["matrix", "--format", "json"]),
    ("scopes_actions.txt", ["actions"]),
]


@pytest.mark.parametrize(("filename", "args"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden_output_of_the_scoped_test_app(
    by_groups: None, filename: str, args: list[str]
) -> None:
    output = clearance(*args, "--app", "testapp")
    path = GOLDEN / filename
    if UPDATE:
        path.write_text(output, encoding="utf-8")
    assert path.exists(), f"missing {path}: run with CLEARANCE_UPDATE_GOLDEN=1"
    assert output == path.read_text(encoding="utf-8"), (
        f"`manage.py clearance {' '.join(args)} --app testapp` differs from {path}; if the "
        "change is meant: CLEARANCE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_cli_scopes.py "
        "-k golden"
    )


GITHUB_CASES = [
    ("github_matrix.txt", ["matrix"]),
    ("github_matrix.md", ["matrix", "--format", "markdown"]),
    ("github_matrix.csv", ["matrix", "--format", "csv"]),
    ("github_matrix.json", ["matrix", "--format", "json"]),
    ("github_actions.txt", ["actions"]),
]


@pytest.fixture
def github_groups(db: None) -> None:
    """The GitHub-like app's groups: the collaborator roles', the global support group and the
    teams of one organisation."""
    if not apps.is_installed("tests.githubapp"):
        pytest.skip("the GitHub-like test app is not installed")
    from tests.githubapp import data

    data.role_groups()
    data.group(*data.SUPPORT_GROUP)
    data.organization("acme")


@pytest.mark.parametrize(("filename", "args"), GITHUB_CASES, ids=[c[0] for c in GITHUB_CASES])
def test_golden_output_of_the_github_app(
    github_groups: None, filename: str, args: list[str]
) -> None:
    output = clearance(*args, "--app", "github")
    path = GOLDEN / filename
    if UPDATE:
        path.write_text(output, encoding="utf-8")
    assert path.exists(), f"missing {path}: run with CLEARANCE_UPDATE_GOLDEN=1"
    assert output == path.read_text(encoding="utf-8"), (
        f"`manage.py clearance {' '.join(args)} --app github` differs from {path}; if the "
        "change is meant: CLEARANCE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_cli_scopes.py "
        "-k golden"
    )


def row(output: str, action: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith(f"{action} ")]
    return line


def test_the_matrix_names_the_groups_granting_within_the_scope(by_groups: None) -> None:
    output = clearance("matrix", "--app", "testapp")

    assert "organization: group Maintainers" in row(output, "testapp.change_project")
    assert "organization: groups Maintainers, Readers" in row(output, "testapp.view_project")
    assert "organization: group Maintainers" in row(output, "testapp.edit_task")
    # An unscoped action of the same app holds its permission globally only.
    assert "organization:" not in row(output, "testapp.approve")
    assert "Within scope: the roles (or the groups a membership carries)" in output
    assert (
        "  organization: testapp.Org, memberships testapp.OrgMembership (user, org) carrying "
        "groups (groups)"
    ) in output.splitlines()


def test_the_matrix_names_the_roles_granting_within_the_scope(by_roles: None) -> None:
    output = clearance("matrix", "--app", "testapp")

    assert "organization: role owner" in row(output, "testapp.change_project")
    assert "organization: roles owner, reader" in row(output, "testapp.view_project")
    assert (
        "  organization: testapp.Org, memberships testapp.OrgRole (user, org) with a role "
        "(role): owner -> Maintainers; reader -> Readers; guest -> Nobody"
    ) in output.splitlines()


def test_a_permission_no_group_holds_is_granted_within_no_scope(by_roles: None) -> None:
    Group.objects.get(name="Maintainers").permissions.remove(perm(CHANGE))
    assert "organization: no role" in row(clearance("matrix"), "testapp.change_project")


def test_csv_and_markdown_have_the_column(by_groups: None) -> None:
    rows = list(csv.DictReader(io.StringIO(clearance("matrix", "--format", "csv"))))
    by_name = {r["action"]: r for r in rows}
    assert by_name["testapp.change_project"]["within scope"] == "organization: group Maintainers"
    assert by_name["testapp.approve"]["within scope"] == "-"

    markdown = clearance("matrix", "--format", "markdown", "--app", "testapp")
    assert "| within scope |" in markdown
    assert "| organization: group Maintainers |" in markdown
    assert "- organization: testapp.Org, memberships testapp.OrgMembership" in markdown


def test_json_lists_the_scopes_and_each_actions_grants(by_groups: None) -> None:
    data = json.loads(clearance("matrix", "--format", "json", "--app", "testapp"))
    change = next(a for a in data["actions"] if a["name"] == "testapp.change_project")

    assert change["scope"] == ["org", "partner"]
    # Both paths reach the one scope: one entry, both paths.
    assert change["within"] == [
        {
            "scope": "organization",
            "paths": ["org", "partner"],
            "grants": "groups",
            "groups": ["Maintainers"],
            "roles": [],
        }
    ]
    assert data["scopes"] == [
        {
            "name": "organization",
            "label": "organization",
            "model": "testapp.Org",
            "membership": "testapp.OrgMembership",
            "user_field": "user",
            "scope_field": "org",
            "groups": "groups",
            "role": None,
            "roles": {},
        }
    ]
    approve = next(a for a in data["actions"] if a["name"] == "testapp.approve")
    assert (approve["scope"], approve["within"]) == ([], [])


def test_a_project_without_scoped_actions_keeps_its_matrix(fresh_registry: Any) -> None:
    output = clearance("matrix", "--app", "testapp")
    assert "within scope" not in output and "Scopes (" not in output
    assert json.loads(clearance("matrix", "--format", "json", "--app", "testapp"))["scopes"] == []


def test_a_path_that_reaches_no_scope_is_listed_not_a_traceback(by_groups: None) -> None:
    Action("testapp.rename_project", model=Project, permission=CHANGE, scope="name")
    assert "name: no scope (see manage.py check)" in row(
        clearance("matrix", "--app", "testapp"), "testapp.rename_project"
    )


def test_actions_lists_an_actions_scope_paths(by_groups: None) -> None:
    text = clearance("actions", "--app", "testapp")
    block = text.split("testapp.change_project\n", 1)[1].split("\n\n", 1)[0]
    assert "  scope       org, partner (or held globally)\n" in block + "\n"
    markdown = clearance("actions", "--format", "markdown", "--app", "testapp")
    assert "- Held within scope: `org`, `partner` (or globally)" in markdown
    data = json.loads(clearance("actions", "--format", "json", "--app", "testapp"))
    assert {a["name"]: a["scope"] for a in data["actions"]}["testapp.edit_task"] == ["project__org"]
