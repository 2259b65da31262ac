"""Models the library's own tests run against."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Tenant(models.Model):
    """An organisation; users belong to tenants through memberships."""

    name = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's membership of a tenant, with a role."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, default="member")

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}"


class Document(models.Model):
    """Something to act on: owned, in a tenant, with a state, an amount and watchers."""

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="documents"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_documents",
    )
    title = models.CharField(max_length=100, default="")
    state = models.CharField(max_length=20, default="draft")
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    priority = models.IntegerField(null=True, blank=True)
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="watched_documents"
    )
    # A nullable chain of foreign keys for the filtering tests: parent__owner__last_login.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # A nullable date and time for rule expressions (CTX.now - timedelta(days=30)).
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("approve_document", "Can approve documents"),
            ("submit_document", "Can submit documents"),
        ]

    def __str__(self) -> str:
        return self.title or f"Document {self.pk}"


class Note(models.Model):
    """A model of another kind (for wrong-model checks)."""

    text = models.CharField(max_length=100, default="")

    def __str__(self) -> str:
        return self.text


# -- scopes: roles held within an organisation (tests/test_scopes.py) ---------------------------


class Org(models.Model):
    """A scope: users hold roles within an organisation through memberships."""

    name = models.CharField(max_length=50)

    class Meta:
        verbose_name = "organization"

    def __str__(self) -> str:
        return self.name


class OrgMembership(models.Model):
    """A user's membership of an organisation; its groups say what it grants."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_memberships"
    )
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="memberships")
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="org_memberships")

    def __str__(self) -> str:
        return f"{self.user_id}@{self.org_id}"


class OrgRole(models.Model):
    """A user's role within an organisation (the role form of a scope)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_roles"
    )
    org = models.ForeignKey(Org, on_delete=models.CASCADE, related_name="roles")
    role = models.CharField(max_length=20)

    def __str__(self) -> str:
        return f"{self.user_id}@{self.org_id}:{self.role}"


class Project(models.Model):
    """Belongs to an organisation (nullable), and may be shared with a partner organisation."""

    org = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.CASCADE, related_name="projects"
    )
    partner = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.SET_NULL, related_name="partner_projects"
    )
    name = models.CharField(max_length=50, default="")
    archived = models.BooleanField(default=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="member_projects"
    )

    class Meta:
        permissions = [("publish_project", "Can publish projects")]

    def __str__(self) -> str:
        return self.name or f"Project {self.pk}"


class Task(models.Model):
    """Reaches its organisation through its project."""

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks"
    )
    title = models.CharField(max_length=50, default="")
    done = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.title or f"Task {self.pk}"


class Nameplate(models.Model):
    """Refers to its holder by username, not by key (a foreign key with ``to_field``)."""

    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        to_field="username",
        on_delete=models.CASCADE,
        related_name="nameplates",
    )
    label = models.CharField(max_length=50, default="")

    def __str__(self) -> str:
        return self.label or f"Nameplate {self.pk}"
