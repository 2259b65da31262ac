"""Who may do what with an invoice: the actions and rules clearance enforces.

Gate 1 (permission) comes from Django's permissions, granted through the groups that
``manage.py seed_demo`` creates, and held per tenant: a membership's role names the groups
whose permissions it grants in its tenant (the scope ``tenant``), so carol approves in Acme and
only reads in Globex. Gate 2 (policy) and gate 3 (invariant) are declared here.
"""

from clearance import ACTOR, Action, Scope, model_invariant, where

from .models import PAID_IS_FINAL, PAID_IS_FINAL_REASON, Invoice, Membership, Tenant

# A role is held within a tenant: Membership.role -> the auth groups whose permissions it grants.
Scope(
    "tenant",
    model=Tenant,
    membership=Membership,
    role="role",
    roles={"approver": ["approver"], "clerk": ["clerk"], "auditor": ["auditor"]},
)

# Gate 1 through the scope already needs a membership of the invoice's tenant; this policy
# keeps those who hold a permission globally (the superuser) to their own tenants too.
tenant_member = where(tenant__memberships__user=ACTOR)

view = Action(
    "invoices.view",
    model=Invoice,
    permission="invoices.view_invoice",
    label="See an invoice",
    scope="tenant",
)
view.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may see it."
)

submit = Action(
    "invoices.submit",
    model=Invoice,
    permission="invoices.submit_invoice",
    label="Submit a draft invoice for approval",
    scope="tenant",
)
submit.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may submit it."
)
submit.policy("owner", where(owner=ACTOR), reason="Only the invoice's author may submit it.")
submit.policy("draft", where(state="draft"), reason="Only draft invoices can be submitted.")

approve = Action(
    "invoices.approve",
    model=Invoice,
    permission="invoices.approve_invoice",
    label="Approve a submitted invoice",
    scope="tenant",
)
approve.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may approve it."
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

pay = Action(
    "invoices.pay",
    model=Invoice,
    permission="invoices.pay_invoice",
    label="Pay an approved invoice",
    scope="tenant",
)
pay.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may pay it."
)
pay.policy("approved", where(state="approved"), reason="Only approved invoices can be paid.")

# The same rule is a CHECK constraint in Invoice.Meta (invariant_constraint), so that not even
# raw SQL can break it.
model_invariant(Invoice, "paid_is_final", PAID_IS_FINAL, reason=PAID_IS_FINAL_REASON)

change = Action(
    "invoices.change",
    model=Invoice,
    permission="invoices.change_invoice",
    label="Edit a draft invoice",
    scope="tenant",
)
change.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may edit it."
)
change.policy("draft", where(state="draft"), reason="Only draft invoices can be edited.")

create = Action(
    "invoices.create",
    model=Invoice,
    permission="invoices.add_invoice",
    label="Create an invoice",
    scope="tenant",
)
create.policy(
    "tenant_member", tenant_member, reason="Invoices can be created only in your own tenants."
)

delete = Action(
    "invoices.delete",
    model=Invoice,
    permission="invoices.delete_invoice",
    label="Delete a draft invoice",
    scope="tenant",
)
delete.policy(
    "tenant_member", tenant_member, reason="Only members of the invoice's tenant may delete it."
)
delete.policy("draft", where(state="draft"), reason="Only draft invoices can be deleted.")
