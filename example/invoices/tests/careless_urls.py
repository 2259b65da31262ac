"""The demo's URLs, plus an API endpoint written carelessly, for the unguarded-view tests.

``summary`` is a detail ``@action`` that reads the invoice itself instead of calling
``get_object()``: ``ClearancePermission`` then decides the permission gate alone, and nothing
about the invoice it serves.
"""

from django.urls import include, path
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from demo.urls import handler403
from demo.urls import urlpatterns as demo_urlpatterns
from invoices.api import InvoiceViewSet
from invoices.models import Invoice


class CarelessInvoiceViewSet(InvoiceViewSet):
    """The demo's invoice API with one endpoint that skips ``get_object()``."""

    clearance_actions = {**InvoiceViewSet.clearance_actions, "summary": "invoices.view"}

    @action(detail=True)
    def summary(self, request: Request, pk: str | None = None) -> Response:
        """The invoice's number and description, read without ``get_object()``."""
        invoice = Invoice.objects.get(pk=pk)
        return Response({"number": invoice.number, "description": invoice.description})


router = SimpleRouter()
router.register("invoices", CarelessInvoiceViewSet, basename="careless-invoice")

urlpatterns = [*demo_urlpatterns, path("careless/", include(router.urls))]

__all__ = ["handler403", "urlpatterns"]
