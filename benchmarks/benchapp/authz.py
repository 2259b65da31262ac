"""The approval rule, declared with clearance (found by clearance's autodiscovery)."""

from __future__ import annotations

from clearance import ACTOR, Action, where

from .models import Invoice

approve = Action(
    "bench.approve",
    model=Invoice,
    permission="bench.approve_invoice",
    label="Approve a submitted invoice",
)
approve.policy(
    "tenant_member",
    where(tenant__memberships__user=ACTOR),
    reason="Only members of the invoice's tenant may approve it.",
)
approve.policy("four_eyes", ~where(owner=ACTOR), reason="Nobody approves their own invoice.")
approve.policy(
    "submitted", where(state="submitted"), reason="Only submitted invoices can be approved."
)
approve.invariant(
    "within_limit",
    where(amount__lte=10_000),
    reason="Invoices above 10,000 can never be approved.",
)
