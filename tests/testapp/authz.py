"""Rules the library's tests rely on: the approval scenario from the design."""

from __future__ import annotations

from clearance import ACTOR, ANYONE, Action, where

from .models import Document

approve = Action(
    "testapp.approve",
    model=Document,
    permission="testapp.approve_document",
    label="Approve a submitted document",
)
approve.policy(
    "tenant_member",
    where(tenant__memberships__user=ACTOR),
    reason="Only members of the document's tenant may approve it.",
)
approve.policy("four_eyes", ~where(owner=ACTOR), reason="Nobody approves their own document.")
approve.policy(
    "submitted", where(state="submitted"), reason="Only submitted documents can be approved."
)
approve.invariant(
    "within_limit",
    where(amount__lte=10_000),
    reason="Documents above 10,000 can never be approved.",
)

read = Action("testapp.read", model=Document, permission=ANYONE, label="Read a document")
read.policy("not_archived", ~where(state="archived"), reason="Archived documents are gone.")
