"""Tenants, their members and the invoices they approve."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from clearance import GuardedQuerySet, invariant_constraint, where

#: A paid invoice keeps a positive amount. Declared as a model invariant in ``authz.py`` and
#: as a database constraint below, so that not even raw SQL can break it.
PAID_IS_FINAL = ~where(state="paid") | where(amount__gt=0)
PAID_IS_FINAL_REASON = "A paid invoice keeps a positive amount."


class Tenant(models.Model):
    """A customer organisation; every invoice belongs to exactly one tenant."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's membership of a tenant, with the role they hold there."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=30)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.tenant}"


class Invoice(models.Model):
    """An invoice that goes draft -> submitted -> approved -> paid."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        APPROVED = "approved", "Approved"
        PAID = "paid", "Paid"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invoices")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_invoices",
    )
    number = models.CharField(max_length=30)
    description = models.TextField(blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="approved_invoices",
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    # Bulk writes (update, delete, bulk_create, bulk_update) keep the model invariants too.
    objects = GuardedQuerySet.as_manager()

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="invoice_number_per_tenant"),
            invariant_constraint("paid_is_final", PAID_IS_FINAL, reason=PAID_IS_FINAL_REASON),
        ]
        permissions = [
            ("submit_invoice", "Can submit invoice"),
            ("approve_invoice", "Can approve invoice"),
            ("pay_invoice", "Can pay invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.get_state_display()})"

    def get_absolute_url(self) -> str:
        """Return the URL of the invoice's detail page."""
        return reverse("invoices:detail", args=[self.pk])
