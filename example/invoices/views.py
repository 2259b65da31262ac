"""Views of the invoices app.

Every question "may this user do that?" is answered by clearance: the list and detail pages
show each decision with the gate, rule and reason behind a denial, and the POST endpoints
change an invoice only inside ``clearance.perform()``: on the locked row, with the gates run
on it first and the invariants re-checked before commit.

The POST endpoints are protected with ``@action_required``, like the REST API with its
permission class: another tenant's invoice answers 404, a refusal answers the 403 page with
its gate, rule and reason, or 409 Conflict when an invariant refused
(``CLEARANCE["INVARIANT_STATUS"]``), also when ``perform()``'s re-check refuses.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

import clearance
from clearance.contrib.views import action_required

from .models import Invoice

# The state-changing actions offered on an invoice's page, in workflow order.
WORKFLOW = [
    ("invoices.submit", "Submit", "invoices:submit"),
    ("invoices.approve", "Approve", "invoices:approve"),
    ("invoices.pay", "Pay", "invoices:pay"),
]


def visible_invoices(request: HttpRequest) -> QuerySet[Invoice]:
    """Return the invoices the current user may view, in one SQL query."""
    invoices = Invoice.objects.select_related("tenant", "owner", "approved_by")
    return clearance.authorized(request.user, "invoices.view", invoices)


def get_visible_invoice(request: HttpRequest, pk: int) -> Invoice:
    """Return the invoice ``pk``, or raise Http404 if the user may not view it."""
    return get_object_or_404(visible_invoices(request), pk=pk)


@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    """List the invoices the user may view, each with the decision to approve it.

    The decisions only say what to show (a probe, not an attempt): they are decided for the
    whole page at once and are not recorded in the audit trail.
    """
    invoices = list(visible_invoices(request).order_by("tenant__name", "number"))
    decisions = clearance.authorize_many(
        request.user, "invoices.approve", invoices, request=request, probe=True
    )
    rows = list(zip(invoices, decisions, strict=True))
    return render(request, "invoices/invoice_list.html", {"rows": rows})


@login_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Show one invoice and, for each workflow action, whether the user may take it."""
    invoice = get_visible_invoice(request, pk)
    actions = [
        {
            "label": label,
            "url_name": url_name,
            # Which buttons to offer: a probe, not recorded (the POST is the attempt).
            "decision": clearance.authorize(
                request.user, action, invoice, request=request, probe=True
            ),
        }
        for action, label, url_name in WORKFLOW
    ]
    return render(request, "invoices/invoice_detail.html", {"invoice": invoice, "actions": actions})


@login_required
@require_POST
@action_required("invoices.submit")
def submit(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """Submit a draft invoice for approval (on the locked row, re-checked before commit)."""
    with clearance.perform(request.user, "invoices.submit", invoice, request=request) as locked:
        locked.state = Invoice.State.SUBMITTED
        locked.save()
    messages.success(request, f"Invoice {invoice.number} submitted for approval.")
    return redirect(invoice)


@login_required
@require_POST
@action_required("invoices.approve")
def approve(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """Approve a submitted invoice; two approvers clicking at once approve it once."""
    with clearance.perform(request.user, "invoices.approve", invoice, request=request) as locked:
        locked.state = Invoice.State.APPROVED
        locked.approved_by = request.user
        locked.approved_at = timezone.now()
        locked.save()
    messages.success(request, f"Invoice {invoice.number} approved.")
    return redirect(invoice)


@login_required
@require_POST
@action_required("invoices.pay")
def pay(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    """Mark an approved invoice as paid (on the locked row, re-checked before commit)."""
    with clearance.perform(request.user, "invoices.pay", invoice, request=request) as locked:
        locked.state = Invoice.State.PAID
        locked.save()
    messages.success(request, f"Invoice {invoice.number} paid.")
    return redirect(invoice)


def permission_denied(request: HttpRequest, exception: PermissionDenied) -> HttpResponse:
    """Render the 403 page; for a clearance denial, show its gate, rule and reason.

    The project's ``handler403``. Its template is namespaced (``invoices/403.html``) so that
    installing this app never replaces another project's own ``403.html``.
    """
    context = {
        "exception": str(exception),
        "decision": getattr(exception, "decision", None),
    }
    return render(request, "invoices/403.html", context, status=403)
