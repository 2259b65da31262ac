"""An admin site for the tests, with the clearance mixin on the documents."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from clearance.contrib.admin import ClearanceAdminMixin, guarded_action
from tests.testapp.models import Document

site = admin.AdminSite(name="contrib_admin")


@admin.register(Document, site=site)
class DocumentAdmin(ClearanceAdminMixin, admin.ModelAdmin):
    list_display = ["title", "state", "amount"]
    fields = ["title", "state", "amount", "tenant"]
    clearance_actions = {
        "view": "testapp.view",
        "change": "testapp.change",
        "delete": "testapp.delete",
    }
    actions = ["approve_selected", "double_amount"]

    @guarded_action("testapp.approve", description="Approve the selected documents")
    def approve_selected(self, request: HttpRequest, queryset: Any) -> None:
        for document in queryset:
            document.state = "approved"
            document.save()
        self.message_user(request, f"Approved {len(queryset)} documents.")

    @guarded_action("testapp.change", description="Double the amounts")
    def double_amount(self, request: HttpRequest, queryset: Any) -> None:
        from clearance import enforce

        for document in queryset.order_by("amount"):
            document.amount *= 2
            document.save()
            # The change is decided again on the new amount: the first refusal undoes all.
            enforce(request.user, "testapp.change", document, request=request)
        self.message_user(request, "Doubled.")
