"""The approval rule, declared with clearance (found by clearance's autodiscovery).

``bench.approve`` holds its permission globally (through the user's groups). The scope
benchmark (:mod:`benchmarks.scopes`) also declares the scope ``tenant`` (a membership's
``groups`` grant permissions within its tenant) and ``bench.approve_in_tenant``: the same rules,
with the permission held globally or through a membership of the invoice's tenant.
"""

from __future__ import annotations

from clearance import ACTOR, Action, Scope, where

from .models import Invoice, Membership, Tenant

Scope("tenant", model=Tenant, membership=Membership, groups="groups")


def _approval(action: Action) -> Action:
    """The approval's policies and invariant on ``action``."""
    action.policy(
        "tenant_member",
        where(tenant__memberships__user=ACTOR),
        reason="Only members of the invoice's tenant may approve it.",
    )
    action.policy("four_eyes", ~where(owner=ACTOR), reason="Nobody approves their own invoice.")
    action.policy(
        "submitted", where(state="submitted"), reason="Only submitted invoices can be approved."
    )
    action.invariant(
        "within_limit",
        where(amount__lte=10_000),
        reason="Invoices above 10,000 can never be approved.",
    )
    return action


approve = _approval(
    Action(
        "bench.approve",
        model=Invoice,
        permission="bench.approve_invoice",
        label="Approve a submitted invoice",
    )
)
approve_in_tenant = _approval(
    Action(
        "bench.approve_in_tenant",
        model=Invoice,
        permission="bench.approve_invoice",
        scope="tenant",
        label="Approve a submitted invoice (the permission held within the invoice's tenant)",
    )
)
