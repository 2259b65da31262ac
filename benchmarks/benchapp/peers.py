"""The same approval rule written without clearance: by hand, with django-rules, with
bridgekeeper and as a Django REST framework permission class.

The rule: the actor holds the Django permission ``bench.approve_invoice`` (through a group), is
a member of the invoice's tenant, is not its owner, the invoice is submitted, and its amount is
at most 10,000. Every version caches the actor's tenant ids on the user object for the request
(:func:`member_tenant_ids`), as Django caches ``_perm_cache``, so a warm check is query-free
wherever the library allows it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import rules
from bridgekeeper import perms as bridgekeeper_perms
from bridgekeeper.rules import R, Rule, blanket_rule, current_user
from django.db.models import Q
from rest_framework.permissions import BasePermission

from .models import Membership

#: The Django permission every version checks first (granted to the "approvers" group).
PERMISSION = "bench.approve_invoice"
#: The approval limit (the invariant).
LIMIT = Decimal(10_000)

_TENANT_IDS = "_bench_tenant_ids"


def member_tenant_ids(user: Any) -> frozenset[int]:
    """The ids of the tenants ``user`` belongs to, queried once per user object."""
    ids: frozenset[int] | None = user.__dict__.get(_TENANT_IDS)
    if ids is None:
        ids = frozenset(
            Membership.objects.filter(user_id=user.pk).values_list("tenant_id", flat=True)
        )
        setattr(user, _TENANT_IDS, ids)
    return ids


# --------------------------------------------------------------------------------------------
# By hand
# --------------------------------------------------------------------------------------------


def can_approve(user: Any, invoice: Any) -> bool:
    """The hand-written inline check a view would contain."""
    return bool(
        user.has_perm(PERMISSION)
        and invoice.tenant_id in member_tenant_ids(user)
        and invoice.owner_id != user.pk
        and invoice.state == "submitted"
        and invoice.amount <= LIMIT
    )


def approvable_q(user: Any) -> Q:
    """The hand-written filter for "invoices this user may approve" (after ``has_perm``)."""
    return (
        Q(tenant__in=Membership.objects.filter(user_id=user.pk).values("tenant_id"))
        & ~Q(owner_id=user.pk)
        & Q(state="submitted")
        & Q(amount__lte=LIMIT)
    )


# --------------------------------------------------------------------------------------------
# django-rules
# --------------------------------------------------------------------------------------------


@rules.predicate
def holds_approve_permission(user: Any) -> bool:
    """The Django permission (answered by ModelBackend)."""
    return bool(user.has_perm(PERMISSION))


@rules.predicate
def is_tenant_member(user: Any, invoice: Any) -> bool:
    """A member of the invoice's tenant."""
    return invoice.tenant_id in member_tenant_ids(user)


@rules.predicate
def is_invoice_owner(user: Any, invoice: Any) -> bool:
    """The invoice's author."""
    return bool(invoice.owner_id == user.pk)


@rules.predicate
def is_submitted(user: Any, invoice: Any) -> bool:
    """The invoice is submitted."""
    return bool(invoice.state == "submitted")


@rules.predicate
def is_within_limit(user: Any, invoice: Any) -> bool:
    """The amount is at most the limit."""
    return bool(invoice.amount <= LIMIT)


rules_can_approve = (
    holds_approve_permission & is_tenant_member & ~is_invoice_owner & is_submitted & is_within_limit
)

#: The object permission django-rules answers through ``user.has_perm(RULES_PERMISSION, obj)``
#: (another name than the Django permission, which the predicate itself asks for).
RULES_PERMISSION = "bench.rules_approve_invoice"
#: The rule name for ``rules.test_rule(RULES_RULE, user, obj)``.
RULES_RULE = "bench_approve_invoice"

rules.add_perm(RULES_PERMISSION, rules_can_approve)
rules.add_rule(RULES_RULE, rules_can_approve)


# --------------------------------------------------------------------------------------------
# bridgekeeper
# --------------------------------------------------------------------------------------------


@blanket_rule
def bk_holds_approve_permission(user: Any) -> bool:
    """The Django permission (answered by ModelBackend)."""
    return bool(user.has_perm(PERMISSION))


class AmountAtMost(Rule):  # type: ignore[misc]
    """``amount <= limit``: bridgekeeper's ``R`` compares with equality only."""

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit

    def query(self, user: Any) -> Q:
        return Q(amount__lte=self.limit)

    def check(self, user: Any, instance: Any = None) -> bool:
        return instance is not None and bool(instance.amount <= self.limit)


bk_can_approve = (
    bk_holds_approve_permission
    & R(tenant__memberships=R(user=current_user))
    & ~R(owner=current_user)
    & R(state="submitted")
    & AmountAtMost(LIMIT)
)

#: The object permission bridgekeeper answers through ``user.has_perm(BK_PERMISSION, obj)``.
BK_PERMISSION = "bench.bk_approve_invoice"
bridgekeeper_perms[BK_PERMISSION] = bk_can_approve


# --------------------------------------------------------------------------------------------
# Django REST framework
# --------------------------------------------------------------------------------------------


class CanApproveInvoice(BasePermission):
    """The rule as a DRF permission class (``has_permission`` then ``has_object_permission``)."""

    message = "You may not approve this invoice."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user.has_perm(PERMISSION))

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        user = request.user
        return bool(
            obj.tenant_id in member_tenant_ids(user)
            and obj.owner_id != user.pk
            and obj.state == "submitted"
            and obj.amount <= LIMIT
        )
