"""The invoices REST API (Django REST framework), under ``/api/``.

``ClearancePermission`` runs the three gates for each endpoint, ``ClearanceFilterBackend``
scopes every queryset with ``authorized()`` in one query, and ``ClearanceAPIMixin`` answers a
denial raised inside a view (an invariant on ``save()``, a re-check in ``perform()``) with its
code, gate and reason: 403, or 409 Conflict for an invariant. An invoice of a tenant the user
does not belong to answers 404, exactly like one that does not exist.

    GET    /api/invoices/                  the invoices you may see
    GET    /api/invoices/approvable/       the invoices you may approve now
    GET    /api/invoices/<pk>/
    PATCH  /api/invoices/<pk>/             edit a draft (invoices.change)
    POST   /api/invoices/<pk>/submit/      invoices.submit
    POST   /api/invoices/<pk>/approve/     invoices.approve
    POST   /api/invoices/<pk>/pay/         invoices.pay
"""

from typing import Any

from django.utils import timezone
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from clearance.contrib.drf import ClearanceAPIMixin, ClearanceFilterBackend, ClearancePermission
from clearance.perform import perform

from .models import Invoice


class InvoiceSerializer(serializers.ModelSerializer):
    """An invoice as the API shows it; the workflow fields change only through the actions."""

    tenant = serializers.CharField(source="tenant.name", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, default=None)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "tenant",
            "owner",
            "description",
            "amount",
            "state",
            "approved_by",
            "approved_at",
        ]
        read_only_fields = ["number", "state", "approved_at"]


class InvoiceViewSet(
    ClearanceAPIMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Invoices: read, edit drafts, and move them through the workflow."""

    queryset = Invoice.objects.select_related("tenant", "owner", "approved_by").order_by("number")
    serializer_class = InvoiceSerializer
    permission_classes = [ClearancePermission]
    filter_backends = [ClearanceFilterBackend]
    # list and retrieve use the model's view action (invoices.view).
    clearance_actions = {
        "update": "invoices.change",
        "partial_update": "invoices.change",
        "submit": "invoices.submit",
        "approve": "invoices.approve",
        "approvable": "invoices.approve",
        "pay": "invoices.pay",
    }

    def perform_update(self, serializer: Any) -> None:
        """Save the edit on the locked row; the rules are checked again on what it leaves."""
        with perform(self.request.user, "invoices.change", serializer.instance) as locked:
            serializer.instance = locked
            serializer.save()

    def _workflow(self, name: str, **changes: Any) -> Response:
        invoice = self.get_object()  # 404 if hidden; 403/409 with the reason if refused
        with perform(self.request.user, name, invoice, request=self.request) as locked:
            for field, value in changes.items():
                setattr(locked, field, value)
            locked.save()
        return Response(self.get_serializer(locked).data)

    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None) -> Response:
        """Submit a draft for approval."""
        return self._workflow("invoices.submit", state=Invoice.State.SUBMITTED)

    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Approve a submitted invoice."""
        return self._workflow(
            "invoices.approve",
            state=Invoice.State.APPROVED,
            approved_by=request.user,
            approved_at=timezone.now(),
        )

    @action(detail=True, methods=["post"])
    def pay(self, request: Request, pk: str | None = None) -> Response:
        """Mark an approved invoice as paid."""
        return self._workflow("invoices.pay", state=Invoice.State.PAID)

    @action(detail=False)
    def approvable(self, request: Request) -> Response:
        """The invoices the user may approve now (one query)."""
        invoices = self.filter_queryset(self.get_queryset())
        return Response(self.get_serializer(invoices, many=True).data)


router = SimpleRouter()
router.register("invoices", InvoiceViewSet, basename="invoice-api")

app_name = "api"
urlpatterns = router.urls
