"""Rules of the GitHub-like app: roles held within an organisation or a repository.

Two scopes: ``github_organization`` (a :class:`~.models.Membership` grants the permissions of
the groups of the user's teams) and ``github_repository`` (an outside
:class:`~.models.Collaborator` is granted the groups its role names). Gate 1 of most actions
holds globally *or* through one of them; the policies refine it (private repositories, locked
issues, what outside collaborators may edit), and "an archived repository is read-only" is an
invariant that binds everyone, superusers included.
"""

from __future__ import annotations

from clearance import ACTOR, ANYONE, Action, Scope, where

from .models import Collaborator, Issue, Membership, Organization, Repository

#: The groups each collaborator role grants (Django ``auth.Group`` names). A role that is not
#: listed grants nothing.
COLLABORATOR_ROLES = {
    "read": ["github: collaborators (read)"],
    "triage": ["github: collaborators (read)", "github: collaborators (triage)"],
    "write": [
        "github: collaborators (read)",
        "github: collaborators (triage)",
        "github: collaborators (write)",
    ],
    "admin": [
        "github: collaborators (read)",
        "github: collaborators (triage)",
        "github: collaborators (write)",
        "github: collaborators (admin)",
    ],
}

# Scope names are project-wide: prefixed, so that other tests may declare "organization".
Scope(
    "github_organization",
    model=Organization,
    membership=Membership,
    groups="groups",
)
Scope(
    "github_repository",
    model=Repository,
    membership=Collaborator,
    role="role",
    roles=COLLABORATOR_ROLES,
)

# -- shared rules ---------------------------------------------------------------------------

#: A repository the actor can see: public, or the actor is in its organisation or collaborates.
visible = (
    where(visibility="public")
    | where(organization__memberships__user=ACTOR)
    | where(collaborators__user=ACTOR)
)
VISIBLE_REASON = (
    "A private repository is visible to the members of its organisation and its collaborators only."
)
#: Archived repositories are read-only, whoever asks.
not_archived = where(archived=False)
ARCHIVED_REASON = "An archived repository is read-only."

#: Both scopes of an issue: its repository's organisation, or the repository itself.
ISSUE_SCOPES = ("repository__organization", "repository")
#: Both scopes of a repository: its organisation, or the repository itself.
REPOSITORY_SCOPES = ("organization", "pk")

# -- repositories ---------------------------------------------------------------------------

browse = Action(
    "github.browse",
    model=Repository,
    permission=ANYONE,
    label="See a repository's page",
)
browse.policy("visible", visible, reason=VISIBLE_REASON)

read = Action(
    "github.read",
    model=Repository,
    permission="github.view_repository",
    scope=REPOSITORY_SCOPES,
    label="Clone a repository",
)
read.policy("visible", visible, reason=VISIBLE_REASON)

push = Action(
    "github.push",
    model=Repository,
    permission="github.push_repository",
    scope=REPOSITORY_SCOPES,
    label="Push to a repository",
)
push.policy("visible", visible, reason=VISIBLE_REASON)
push.invariant("not_archived", not_archived, reason=ARCHIVED_REASON)

archive = Action(
    "github.archive",
    model=Repository,
    permission="github.archive_repository",
    scope="organization",
    label="Archive a repository",
)
archive.policy("not_yet_archived", not_archived, reason="This repository is already archived.")

create_repository = Action(
    "github.create_repository",
    model=Repository,
    permission="github.add_repository",
    scope="organization",
    label="Create a repository in an organisation",
)
create_repository.policy(
    "organization_not_suspended",
    where(organization__suspended=False),
    reason="A suspended organisation creates no repositories.",
)

# -- issues ---------------------------------------------------------------------------------

open_issue = Action(
    "github.open_issue",
    model=Issue,
    permission="github.add_issue",
    scope=ISSUE_SCOPES,
    label="Open an issue",
)
open_issue.policy("visible", visible.through("repository"), reason=VISIBLE_REASON)
open_issue.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

comment = Action(
    "github.comment",
    model=Issue,
    permission="github.add_comment",
    permission_model="github.Comment",
    scope=ISSUE_SCOPES,
    label="Comment on an issue",
)
comment.policy("visible", visible.through("repository"), reason=VISIBLE_REASON)
comment.policy(
    "locked_for_outsiders",
    ~where(state="locked")
    | where(author=ACTOR)
    | where(repository__organization__memberships__user=ACTOR),
    reason="A locked issue takes comments from its author and the organisation's members only.",
)
comment.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

edit_issue = Action(
    "github.edit_issue",
    model=Issue,
    permission="github.change_issue",
    scope=ISSUE_SCOPES,
    label="Edit an issue's title and description",
)
edit_issue.policy(
    "outsiders_edit_their_own",
    where(author=ACTOR) | where(repository__organization__memberships__user=ACTOR),
    reason="Outside collaborators edit only the issues they opened.",
)
edit_issue.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

close_issue = Action(
    "github.close_issue",
    model=Issue,
    permission="github.close_issue",
    scope=ISSUE_SCOPES,
    label="Close an issue",
)
close_issue.policy("open", where(state="open"), reason="Only an open issue can be closed.")
close_issue.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

reopen_issue = Action(
    "github.reopen_issue",
    model=Issue,
    permission="github.close_issue",
    scope=ISSUE_SCOPES,
    label="Reopen a closed issue",
)
reopen_issue.policy("closed", where(state="closed"), reason="Only a closed issue can be reopened.")
reopen_issue.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

delete_issue = Action(
    "github.delete_issue",
    model=Issue,
    permission="github.delete_issue",
    scope="repository__organization",
    label="Delete an issue (organisation members only)",
)
delete_issue.policy(
    "not_locked", ~where(state="locked"), reason="A locked issue is kept for the record."
)
delete_issue.invariant("not_archived", not_archived.through("repository"), reason=ARCHIVED_REASON)

# -- organisations --------------------------------------------------------------------------

manage_organization = Action(
    "github.manage_organization",
    model=Organization,
    permission="github.change_organization",
    scope="pk",
    label="Change an organisation's settings",
)
manage_organization.policy(
    "not_suspended",
    where(suspended=False),
    reason="A suspended organisation's settings are frozen.",
)
