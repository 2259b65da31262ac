"""The demo's URLs, plus API endpoints written as other projects write them, for the IDOR tests.

- ``/plain-api/invoices/``: a ``ModelViewSet`` exactly as ``docs/how-to/drf.md`` shows it, with a
  plain ``ModelSerializer`` whose ``tenant`` field is writable (create, update, delete).
- ``/careless/invoices/<pk>/summary/``: a detail ``@action`` that reads the invoice itself
  instead of calling ``get_object()``: ``ClearancePermission`` then decides the permission gate
  alone, and nothing about the invoice it serves.
"""

from django.urls import include, path
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from clearance.contrib.drf import ClearanceAPIMixin, ClearanceFilterBackend, ClearancePermission
from demo.urls import handler403
from demo.urls import urlpatterns as demo_urlpatterns
from invoices.api import InvoiceViewSet
from invoices.models import Invoice


class PlainInvoiceSerializer(serializers.ModelSerializer):
    """Every field as the model has it; ``tenant`` is a writable primary key."""

    class Meta:
        model = Invoice
        fields = ["id", "tenant", "number", "description", "amount", "state"]
        read_only_fields = ["state"]


class PlainInvoiceViewSet(ClearanceAPIMixin, viewsets.ModelViewSet):
    """The viewset of the DRF how-to, over invoices."""

    queryset = Invoice.objects.select_related("tenant").order_by("number")
    serializer_class = PlainInvoiceSerializer
    permission_classes = [ClearancePermission]
    filter_backends = [ClearanceFilterBackend]
    clearance_actions = {
        "create": "invoices.create",
        "update": "invoices.change",
        "partial_update": "invoices.change",
        "destroy": "invoices.delete",
    }


class CarelessInvoiceViewSet(InvoiceViewSet):
    """The demo's invoice API with one endpoint that skips ``get_object()``."""

    clearance_actions = {**InvoiceViewSet.clearance_actions, "summary": "invoices.view"}

    @action(detail=True)
    def summary(self, request: Request, pk: str | None = None) -> Response:
        """The invoice's number and description, read without ``get_object()``."""
        invoice = Invoice.objects.get(pk=pk)
        return Response({"number": invoice.number, "description": invoice.description})


router = SimpleRouter()
router.register("plain-api/invoices", PlainInvoiceViewSet, basename="plain-invoice")
router.register("careless/invoices", CarelessInvoiceViewSet, basename="careless-invoice")

urlpatterns = [*demo_urlpatterns, path("", include(router.urls))]

__all__ = ["handler403", "urlpatterns"]
