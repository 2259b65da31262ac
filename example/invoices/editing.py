"""Pages built on clearance's view integrations: a decorated function view, class-based views
with the action mixins, and an async view.

- ``/invoices/<pk>/print/``: a printable invoice (``@action_required("invoices.view")``); its
  template asks ``{% authorize %}`` whether the reader may approve it.
- ``/invoices/drafts/``: the drafts the user may edit (``AuthorizedListMixin``, one query).
- ``/invoices/<pk>/edit/``: edit a draft (``ActionRequiredMixin``; the edit is decided again on
  what the form would save, so an invoice cannot be moved to another tenant).
- ``/invoices/<pk>/status.json``: an async view with the same protection.
- ``/invoices/<pk>/delete/``: delete a draft (``ActionRequiredMixin``: GET shows the
  confirmation with ``invoices.view``, POST deletes with ``invoices.delete``; any other unsafe
  method, DELETE included, answers 405).
- ``/invoices/number/<number>/`` and ``/invoices/number/<number>/page/``: an invoice looked up
  by its number, which is unique per tenant only: the lookup runs among the invoices the user
  may view, so another tenant's invoice of the same number changes nothing.

An invoice of another tenant answers 404 everywhere, as if it did not exist; a refusal on an
invoice the user can see answers 403 with the reason (409 for an invariant).
"""

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.views.generic import DeleteView, DetailView, ListView, UpdateView

from clearance.contrib.views import ActionRequiredMixin, AuthorizedListMixin, action_required

from .models import Invoice
from .notfound import not_found_page


@action_required("invoices.view")
def invoice_print(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """A printable page for one invoice."""
    return render(request, "invoices/invoice_print.html", {"invoice": invoice})


@action_required("invoices.view", lookup_field="number", url_kwarg="number")
def invoice_by_number(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """The printable page of the invoice with this number (numbers are unique per tenant)."""
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


class InvoiceByNumberView(ActionRequiredMixin, DetailView):
    """The same page as a class-based view: the number is the slug."""

    model = Invoice
    action = "invoices.view"
    slug_field = "number"
    slug_url_kwarg = "number"
    context_object_name = "invoice"
    template_name = "invoices/invoice_print.html"


class InvoiceDeleteView(ActionRequiredMixin, DeleteView):
    """Delete a draft: GET asks for confirmation (``invoices.view``), POST deletes."""

    model = Invoice
    action = "invoices.view"
    action_by_method = {"POST": "invoices.delete"}
    template_name = "invoices/invoice_confirm_delete.html"

    def get_success_url(self) -> str:
        """Back to the list."""
        return reverse("invoices:list")


app_name = "editing"

urlpatterns = [
    path("drafts/", not_found_page(DraftListView.as_view()), name="drafts"),
    path("<int:pk>/print/", not_found_page(invoice_print), name="print"),
    path("<int:pk>/edit/", not_found_page(InvoiceEditView.as_view()), name="edit"),
    path("<int:pk>/status.json", not_found_page(invoice_status), name="status"),
    path("<int:pk>/delete/", not_found_page(InvoiceDeleteView.as_view()), name="delete"),
    path("number/<str:number>/", not_found_page(invoice_by_number), name="by-number"),
    path(
        "number/<str:number>/page/",
        not_found_page(InvoiceByNumberView.as_view()),
        name="by-number-page",
    ),
]
