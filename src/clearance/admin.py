"""The audit trail in Django's admin: read-only, filterable by outcome, layer, action, actor, date.

Staff see it with the ``clearance.view_auditrecord`` permission (superusers always). Nobody can
add, change or delete a record here; old rows are removed with
``manage.py clearance prune-audit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .audit.models import AuditRecord

__all__ = ["AuditRecordAdmin"]

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[AuditRecord]
else:
    _ModelAdmin = admin.ModelAdmin


class OutcomeFilter(admin.SimpleListFilter):
    """Allowed or denied."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The two outcomes."""
        return [("denied", "Denied"), ("allowed", "Allowed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        """Filter on ``allowed``."""
        value = self.value()
        if value == "denied":
            return cast("QuerySet[Any]", queryset.filter(allowed=False))
        if value == "allowed":
            return cast("QuerySet[Any]", queryset.filter(allowed=True))
        return None


@admin.register(AuditRecord)
class AuditRecordAdmin(_ModelAdmin):
    """Read-only view of ``clearance.AuditRecord``."""

    list_display = (
        "at",
        "outcome",
        "action",
        "actor_label",
        "resource",
        "code",
        "reason",
        "request_id",
    )
    list_filter = (
        OutcomeFilter,
        "layer",
        "action",
        "actor_label",
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("actor_label", "action", "code", "resource_pk", "request_id", "path")
    date_hierarchy = "at"
    list_per_page = 50
    show_full_result_count = False
    actions = None

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        """Every field."""
        return [f.name for f in AuditRecord._meta.fields]

    @admin.display(description="outcome")
    def outcome(self, obj: AuditRecord) -> str:
        """Allowed or denied."""
        return obj.outcome

    @admin.display(description="resource")
    def resource(self, obj: AuditRecord) -> str:
        """``app_label.Model:pk``, or empty."""
        return f"{obj.resource_model}:{obj.resource_pk}" if obj.resource_model else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Never: records are written by clearance only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: records are append-only."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: use ``manage.py clearance prune-audit``."""
        return False
