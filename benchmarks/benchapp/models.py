"""Tenants, memberships and invoices: the models of the approval scenario."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models


class Tenant(models.Model):
    """A customer organisation; every invoice belongs to one."""

    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's membership of a tenant; ``groups`` grant permissions within that tenant only
    (the scope ``tenant``, :mod:`benchmarks.scopes`)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    groups = models.ManyToManyField(Group, blank=True, related_name="bench_memberships")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="bench_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}"


class Invoice(models.Model):
    """An invoice to approve: in a tenant, owned by its author, with a state and an amount."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invoices")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_invoices",
    )
    number = models.CharField(max_length=30)
    state = models.CharField(max_length=10, default="draft")
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        permissions = [("approve_invoice", "Can approve invoice")]

    def __str__(self) -> str:
        return self.number
