"""Generated data for the GitHub-like app: a few hundred rows from a seed and a shape.

:func:`build_world` makes organisations with teams of different permission sets, members on
some teams of some organisations (a membership may carry no team at all, or, misconfigured,
the group of another organisation's team), repositories (public or private, some archived,
some personal ones without organisation), outside collaborators with every role and one that
names no role, issues (some without author) in every state, and some suspended
organisations. Every world also has a fixed cast: a superuser, an inactive owner, a user with a
*global* permission, a stranger, an organisation maintainer and an outside collaborator.

:data:`shapes` is the hypothesis strategy that draws the seed and the shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from hypothesis import strategies as st

from .authz import COLLABORATOR_ROLES
from .models import Collaborator, Issue, Membership, Organization, Repository, Team

#: The permissions (codenames of the app ``github``) of each team an organisation has.
TEAMS: dict[str, list[str]] = {
    "readers": ["view_repository", "add_issue", "add_comment"],
    "triage": ["view_repository", "add_issue", "add_comment", "change_issue", "close_issue"],
    "developers": [
        "view_repository",
        "push_repository",
        "add_issue",
        "add_comment",
        "change_issue",
    ],
    "owners": [
        "view_repository",
        "push_repository",
        "archive_repository",
        "add_repository",
        "change_organization",
        "add_issue",
        "add_comment",
        "change_issue",
        "close_issue",
        "delete_issue",
    ],
    # a deploy bot's team: it pushes, and may not even read (gate 1 per permission)
    "bots": ["push_repository"],
}

#: The permissions of the groups the collaborator roles name (see ``authz.COLLABORATOR_ROLES``).
COLLABORATOR_GROUPS: dict[str, list[str]] = {
    "github: collaborators (read)": ["view_repository", "add_issue", "add_comment"],
    "github: collaborators (triage)": ["close_issue", "change_issue"],
    "github: collaborators (write)": ["push_repository"],
    "github: collaborators (admin)": ["archive_repository", "delete_issue"],
}
#: Roles drawn for collaborators: the declared ones, and one the scope does not know.
ROLE_CHOICES = [*COLLABORATOR_ROLES, "maintain"]

#: A global group (``user.groups``): support staff read and comment everywhere.
SUPPORT_GROUP = ("github: support", ["view_repository", "add_comment"])

STATES = ["open", "closed", "locked"]

shapes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "orgs": st.integers(3, 5),
        "members": st.integers(8, 14),
        "repos": st.integers(3, 5),
        "issues": st.integers(10, 24),
        "archived": st.sampled_from([0.0, 0.25, 0.5]),
    }
)


@dataclass
class World:
    """The rows of one generated world, and the users by name."""

    users: dict[str, User] = field(default_factory=dict)
    orgs: list[Organization] = field(default_factory=list)
    teams: dict[tuple[int, str], Group] = field(default_factory=dict)
    repos: list[Repository] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def rows(self) -> int:
        """How many rows the world's tables hold (users, groups and their permissions included)."""
        tables: list[Any] = [
            User,
            Group,
            Group.permissions.through,
            Organization,
            Team,
            Membership,
            Membership.groups.through,
            Repository,
            Collaborator,
            Issue,
        ]
        return sum(table.objects.count() for table in tables)


def permissions(*codenames: str) -> list[Permission]:
    """The permissions of the app ``github`` with these codenames."""
    found = list(
        Permission.objects.filter(content_type__app_label="github", codename__in=codenames)
    )
    assert len(found) == len(set(codenames)), f"unknown codenames in {codenames}"
    return found


def group(name: str, codenames: list[str]) -> Group:
    """A group holding these permissions of the app ``github``."""
    made = Group.objects.create(name=name)
    made.permissions.set(permissions(*codenames))
    return made


def role_groups() -> None:
    """The groups the collaborator roles name, each with its permissions."""
    for name, codenames in COLLABORATOR_GROUPS.items():
        group(name, codenames)


def organization(name: str, world: World | None = None) -> Organization:
    """An organisation with one team (and its group) per entry of :data:`TEAMS`."""
    org = Organization.objects.create(name=name)
    for team, codenames in TEAMS.items():
        made = group(f"{name}/{team}", codenames)
        Team.objects.create(organization=org, name=team, group=made)
        if world is not None:
            world.teams[org.pk, team] = made
    return org


def member(user: User, org: Organization, *teams: str, extra: tuple[Group, ...] = ()) -> Membership:
    """``user``'s membership of ``org``, carrying the groups of ``teams`` (and ``extra``)."""
    membership = Membership.objects.create(user=user, organization=org)
    groups = [Team.objects.get(organization=org, name=t).group for t in teams]
    membership.groups.set([*groups, *extra])
    return membership


def build_world(shape: dict[str, Any]) -> World:
    """A world of a few hundred rows, drawn from ``shape["seed"]``."""
    rng = random.Random(shape["seed"])
    world = World()
    role_groups()
    support = group(*SUPPORT_GROUP)
    world.orgs = [organization(f"org{i}", world) for i in range(shape["orgs"])]
    suspended = [org.pk for org in world.orgs[1:] if rng.random() < 0.3]
    for org in world.orgs:
        for r in range(rng.randint(2, shape["repos"])):
            world.repos.append(
                Repository.objects.create(
                    organization=org,
                    name=f"{org.name}-repo{r}",
                    visibility=rng.choice(["public", "private"]),
                )
            )
    for p in range(rng.randint(1, 2)):  # personal repositories: no organisation
        world.repos.append(
            Repository.objects.create(
                organization=None, name=f"personal{p}", visibility=rng.choice(["public", "private"])
            )
        )
    org_repos = [r for r in world.repos if r.organization_id is not None]

    users = world.users
    users["root"] = User.objects.create_superuser("root", password="x")
    users["stranger"] = User.objects.create_user("stranger")
    users["support"] = User.objects.create_user("support")
    users["support"].groups.add(support)
    users["ghost"] = User.objects.create_user("ghost", is_active=False)
    member(users["ghost"], world.orgs[0], "owners")
    users["maintainer"] = User.objects.create_user("maintainer")
    member(users["maintainer"], world.orgs[0], "owners", "developers")
    users["outsider"] = User.objects.create_user("outsider")
    Collaborator.objects.create(
        user=users["outsider"], repository=rng.choice(org_repos), role="write"
    )
    Collaborator.objects.create(
        user=users["outsider"], repository=world.repos[-1], role=rng.choice(ROLE_CHOICES)
    )
    for m in range(shape["members"]):
        user = users[f"m{m}"] = User.objects.create_user(f"m{m}")
        for org in world.orgs:
            if rng.random() < 0.5:
                teams = rng.sample(sorted(TEAMS), rng.randint(0, 2))
                extra: tuple[Group, ...] = ()
                if rng.random() < 0.1:  # misconfigured: another organisation's team group
                    extra = (rng.choice(list(world.teams.values())),)
                member(user, org, *teams, extra=extra)
        for repo in rng.sample(world.repos, rng.randint(0, 2)):
            Collaborator.objects.create(user=user, repository=repo, role=rng.choice(ROLE_CHOICES))

    authors: list[User | None] = [*users.values(), None]
    Issue.objects.bulk_create(
        Issue(
            repository=repo,
            author=rng.choice(authors),
            title=f"{repo.name}#{i}",
            state=rng.choice(STATES),
        )
        for repo in world.repos
        for i in range(rng.randint(0, shape["issues"]))
    )
    # Archived after their issues were opened, as on GitHub.
    archived = [r.pk for r in world.repos if rng.random() < shape["archived"]]
    Repository.objects.filter(pk__in=archived).update(archived=True)
    Organization.objects.filter(pk__in=suspended).update(suspended=True)
    world.orgs = list(Organization.objects.order_by("pk"))
    world.repos = list(Repository.objects.order_by("pk"))
    world.issues = list(Issue.objects.select_related("repository").order_by("pk"))
    return world
