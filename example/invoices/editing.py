"""Pages built on clearance's view integrations: a decorated function view, class-based views
with the action mixins, and an async view.

- ``/invoices/<pk>/print/``: a printable invoice (``@action_required("invoices.view")``); its
  template asks ``{% authorize %}`` whether the reader may approve it.
- ``/invoices/drafts/``: the drafts the user may edit (``AuthorizedListMixin``, one query).
- ``/invoices/<pk>/edit/``: edit a draft (``ActionRequiredMixin``; the edit is decided again on
  what the form would save, so an invoice cannot be moved to another tenant).
- ``/invoices/<pk>/status.json``: an async view with the same protection.

An invoice of another tenant answers 404 everywhere, as if it did not exist; a refusal on an
invoice the user can see answers 403 with the reason (409 for an invariant).
"""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.generic import ListView, UpdateView

from clearance.contrib.views import ActionRequiredMixin, AuthorizedListMixin, action_required

from .models import Invoice


@action_required("invoices.view")
def invoice_print(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """A printable page for one invoice."""
    return render(request, "invoices/invoice_print.html", {"invoice": invoice})


@action_required("invoices.view")
async def invoice_status(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """The invoice's number and state, as JSON (an async view)."""
    return JsonResponse({"number": invoice.number, "state": invoice.state})


class DraftListView(AuthorizedListMixin, ListView):
    """The draft invoices the user may edit: ``authorized(user, "invoices.change", ...)``."""

    model = Invoice
    action = "invoices.change"
    template_name = "invoices/draft_list.html"

    def get_queryset(self) -> Any:
        """Drafts with their tenant and owner, scoped by the change action."""
        return super().get_queryset().select_related("tenant", "owner").order_by("number")


class InvoiceEditView(ActionRequiredMixin, UpdateView):
    """Edit a draft's description and amount (``invoices.change``)."""

    model = Invoice
    fields = ["description", "amount"]
    action = "invoices.change"
    template_name = "invoices/invoice_form.html"

    def get_success_url(self) -> str:
        """Back to the invoice."""
        return reverse("invoices:detail", args=[self.object.pk])


app_name = "editing"

urlpatterns = [
    path("drafts/", DraftListView.as_view(), name="drafts"),
    path("<int:pk>/print/", invoice_print, name="print"),
    path("<int:pk>/edit/", InvoiceEditView.as_view(), name="edit"),
    path("<int:pk>/status.json", invoice_status, name="status"),
]
