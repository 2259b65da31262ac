"""The models of the GitHub-like app the scope tests run against.

- An :class:`Organization` has :class:`Team` s; each team is one ``auth.Group`` (its
  permissions are the team's role). A :class:`Membership` links a user to an organisation and
  carries the groups of the teams the user is on: it grants those permissions *within that
  organisation only* (scope ``github_organization``).
- A :class:`Repository` belongs to an organisation, or to nobody (a personal repository:
  ``organization`` is NULL). It is public or private, and may be archived (read-only for
  everyone, superusers included).
- An :class:`Issue` belongs to a repository and has an author (NULL once the author's account
  is gone) and a state; a :class:`Comment` belongs to an issue.
- A :class:`Collaborator` is an outside collaborator on one repository with a role
  (``read``, ``triage``, ``write``, ``admin``), mapped to groups by the scope
  ``github_repository``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class Organization(models.Model):
    """An organisation: it owns repositories and has teams; a suspended one is frozen."""

    name = models.CharField(max_length=50)
    suspended = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """A team within an organisation; its permissions are those of its own ``auth.Group``."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=50)
    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="team")

    def __str__(self) -> str:
        return f"{self.organization_id}/{self.name}"


class Membership(models.Model):
    """A user's membership of an organisation; ``groups`` are the groups of the user's teams."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="github_memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="github_memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="github_membership_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organization_id}"


class Repository(models.Model):
    """A repository of an organisation (or a personal one, without organisation)."""

    VISIBILITIES = [("public", "Public"), ("private", "Private")]

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="repositories",
    )
    name = models.CharField(max_length=50)
    visibility = models.CharField(max_length=10, choices=VISIBILITIES, default="private")
    archived = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "repositories"
        permissions = [
            ("push_repository", "Can push to a repository"),
            ("archive_repository", "Can archive a repository"),
        ]

    def __str__(self) -> str:
        return self.name


class Collaborator(models.Model):
    """An outside collaborator on one repository, with a role."""

    ROLES = [("read", "Read"), ("triage", "Triage"), ("write", "Write"), ("admin", "Admin")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations"
    )
    repository = models.ForeignKey(
        Repository, on_delete=models.CASCADE, related_name="collaborators"
    )
    role = models.CharField(max_length=10, choices=ROLES, default="read")

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} on {self.repository_id}"


class Issue(models.Model):
    """An issue in a repository."""

    STATES = [("open", "Open"), ("closed", "Closed"), ("locked", "Locked")]

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="issues")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="github_issues",
    )
    title = models.CharField(max_length=100, default="")
    state = models.CharField(max_length=10, choices=STATES, default="open")

    class Meta:
        permissions = [("close_issue", "Can close and reopen issues")]

    def __str__(self) -> str:
        return self.title or f"Issue {self.pk}"


class Comment(models.Model):
    """A comment on an issue (its ``add_comment`` permission is the right to comment)."""

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="github_comments",
    )
    body = models.TextField(default="")

    def __str__(self) -> str:
        return f"Comment {self.pk}"
