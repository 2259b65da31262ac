"""The example's list, detail and approve views with the authorization written by hand.

The rules are the example's (``invoices/authz.py``): the view permission and tenant
membership to see an invoice; to approve it, the approve permission, membership, not its
author, submitted, and at most 10,000. No decision is recorded: that is the difference measured.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from invoices.models import Invoice

LIMIT = Decimal("10000")


class Verdict:
    """What the templates read of a decision."""

    def __init__(self, allowed: bool, reason: str = "") -> None:
        self.allowed = allowed
        self.reason = reason
        self.layer = None
        self.rule = ""
        self.code = "allowed" if allowed else "denied"

    def __bool__(self) -> bool:
        return self.allowed


def _tenant_ids(user: Any) -> set[int]:
    cached: set[int] | None = getattr(user, "_tenant_ids", None)
    if cached is None:
        cached = set(user.memberships.values_list("tenant_id", flat=True))
        user._tenant_ids = cached
    return cached


def _visible(request: HttpRequest) -> Any:
    user = request.user
    if not user.has_perm("invoices.view_invoice"):
        return Invoice.objects.none()
    return Invoice.objects.select_related("tenant", "owner", "approved_by").filter(
        tenant__memberships__user=user
    )


def _may_approve(user: Any, invoice: Invoice) -> Verdict:
    if not user.has_perm("invoices.approve_invoice"):
        return Verdict(False, "This needs the permission invoices.approve_invoice.")
    if invoice.tenant_id not in _tenant_ids(user):
        return Verdict(False, "Only members of the invoice's tenant may approve it.")
    if invoice.owner_id == user.pk:
        return Verdict(False, "Nobody approves their own invoice.")
    if invoice.state != "submitted":
        return Verdict(False, "Only submitted invoices can be approved.")
    if invoice.amount > LIMIT:
        return Verdict(False, "Invoices above 10,000 can never be approved.")
    return Verdict(True)


def _may(user: Any, perm: str, invoice: Invoice, ok: bool, reason: str) -> Verdict:
    if not user.has_perm(perm):
        return Verdict(False, f"This needs the permission {perm}.")
    if invoice.tenant_id not in _tenant_ids(user):
        return Verdict(False, "Only members of the invoice's tenant may do this.")
    return Verdict(ok, "" if ok else reason)


@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    """The list page, checked by hand."""
    invoices = _visible(request).order_by("tenant__name", "number")
    rows = [(invoice, _may_approve(request.user, invoice)) for invoice in invoices]
    return render(request, "invoices/invoice_list.html", {"rows": rows})


@login_required
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page, checked by hand."""
    invoice = get_object_or_404(_visible(request), pk=pk)
    user = request.user
    actions = [
        {
            "label": "Submit",
            "url_name": "invoices:submit",
            "decision": _may(
                user,
                "invoices.submit_invoice",
                invoice,
                invoice.owner_id == user.pk and invoice.state == "draft",
                "Only the author may submit a draft.",
            ),
        },
        {
            "label": "Approve",
            "url_name": "invoices:approve",
            "decision": _may_approve(user, invoice),
        },
        {
            "label": "Pay",
            "url_name": "invoices:pay",
            "decision": _may(
                user,
                "invoices.pay_invoice",
                invoice,
                invoice.state == "approved",
                "Only approved invoices can be paid.",
            ),
        },
    ]
    return render(request, "invoices/invoice_detail.html", {"invoice": invoice, "actions": actions})


@login_required
@require_POST
def approve(request: HttpRequest, pk: int) -> HttpResponse:
    """Approve on the locked row, checked by hand."""
    invoice = get_object_or_404(_visible(request), pk=pk)
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        verdict = _may_approve(request.user, locked)
        if not verdict:
            raise PermissionDenied(verdict.reason)
        locked.state = Invoice.State.APPROVED
        locked.approved_by = request.user  # type: ignore[assignment]
        locked.approved_at = timezone.now()
        locked.save()
    return HttpResponse(f"approved {invoice.number}")
