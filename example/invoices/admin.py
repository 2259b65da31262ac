"""Admin registration of the invoices models."""

from django.contrib import admin

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
class InvoiceAdmin(admin.ModelAdmin):
    """Invoices; saving one here still goes through the model invariants."""

    list_display = ["number", "tenant", "owner", "amount", "state", "approved_by"]
    list_filter = ["tenant", "state"]
    search_fields = ["number", "description"]
