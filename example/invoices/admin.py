"""Admin registration of the invoices models.

The invoice admin takes its permissions from clearance actions (``ClearanceAdminMixin``): the
changelist lists only the invoices ``authorized()`` gives for ``invoices.view``, the change,
delete and add pages decide ``invoices.change``, ``invoices.delete`` and ``invoices.create`` on
the object, and the bulk actions run only when the action is allowed on every selected invoice.
A superuser is bound by the policies and invariants here too.
"""

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest
from django.utils import timezone

from clearance.contrib.admin import ClearanceAdminMixin, guarded_action
from clearance.perform import perform

from .models import Invoice, Membership, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    """Tenants, searchable by name."""

    list_display = ["name", "slug"]
    search_fields = ["name", "slug"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Who belongs to which tenant, in which role."""

    list_display = ["user", "tenant", "role"]
    list_filter = ["tenant", "role"]


@admin.register(Invoice)
class InvoiceAdmin(ClearanceAdminMixin, admin.ModelAdmin):
    """Invoices, as clearance allows: scoped by tenant, edited only as drafts, bulk-approved."""

    list_display = ["number", "tenant", "owner", "amount", "state", "approved_by"]
    # Only the tenants present in the (already scoped) changelist are offered as filters.
    list_filter = [("tenant", admin.RelatedOnlyFieldListFilter), "state"]
    search_fields = ["number", "description"]
    fields = ["tenant", "number", "owner", "description", "amount", "state"]
    clearance_actions = {
        "view": "invoices.view",
        "change": "invoices.change",
        "delete": "invoices.delete",
        "add": "invoices.create",
    }
    actions = ["approve_selected", "pay_selected"]

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        """Offer only the user's own tenants (the create and change actions insist anyway)."""
        if db_field.name == "tenant":
            kwargs["queryset"] = Tenant.objects.filter(memberships__user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @guarded_action("invoices.approve", description="Approve the selected invoices")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        """Approve each selected invoice on its locked row (all or nothing)."""
        for invoice in queryset:
            with perform(request.user, "invoices.approve", invoice, request=request) as locked:
                locked.state = Invoice.State.APPROVED
                locked.approved_by = request.user
                locked.approved_at = timezone.now()
                locked.save()
        self.message_user(request, f"Approved {len(queryset)} invoice(s).")

    @guarded_action("invoices.pay", description="Mark the selected invoices as paid")
    def pay_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        """One guarded bulk update: the model invariants are checked on every row it writes."""
        count = queryset.update(state=Invoice.State.PAID)
        self.message_user(request, f"Marked {count} invoice(s) as paid.")
