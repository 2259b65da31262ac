"""The actions and matrix pages show the rule set the engine enforces."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from clearance import ACTOR, Action, where

from .html import classes, element, visible_text

pytestmark = pytest.mark.django_db


def test_actions_page_lists_each_gate_with_rules_and_reasons_in_order(
    staff_client: Client,
) -> None:
    page = staff_client.get("/clearance/actions/").content.decode()
    section = visible_text(element(page, "section", "id", "action-testappapprove"))

    assert "testapp.approve Approve a submitted document" in section
    assert "Acts on testapp.Document objects" in section
    assert "1 permission testapp.approve_document has_perm('testapp.approve_document')" in section
    policies = section[section.index("2 policies") : section.index("3 invariants")]
    order = [policies.index(f" {name} ") for name in ("tenant_member", "four_eyes", "submitted")]
    assert order == sorted(order)
    assert "four_eyes ~where(owner=ACTOR) Nobody approves their own document." in section
    assert (
        "3 invariants within_limit where(amount__lte=10000) "
        "Documents above 10,000 can never be approved."
    ) in section


def test_an_action_anyone_may_attempt_says_so(staff_client: Client) -> None:
    page = staff_client.get("/clearance/actions/").content.decode()
    section = visible_text(element(page, "section", "id", "action-testappread"))

    assert "ANYONE Anyone may attempt it, anonymous visitors included." in section
    assert "not_archived ~where(state='archived') Archived documents are gone." in section


def test_actions_page_links_to_explain_each_action(staff_client: Client) -> None:
    page = staff_client.get("/clearance/actions/").content.decode()

    assert 'href="/clearance/explain/?action=testapp.approve"' in page


def test_model_invariants_are_listed_with_what_they_guard(
    staff_client: Client, fresh_registry: Any
) -> None:
    from clearance import model_invariant
    from tests.testapp.models import Note

    model_invariant(Note, "not_blank", ~where(text=""), reason="A note says something.")
    page = staff_client.get("/clearance/actions/").content.decode()
    row = visible_text(element(page, "tr", "id", "invariant-testappnote-not_blank"))

    assert row == "not_blank ~where(text='') A note says something. delete, save"


def test_matrix_marks_the_groups_holding_each_permission(staff_client: Client) -> None:
    auditors = Group.objects.create(name="auditors")
    approvers = Group.objects.create(name="approvers")
    approvers.permissions.add(Permission.objects.get(codename="approve_document"))

    page = staff_client.get("/clearance/matrix/").content.decode()
    approve = element(page, "tr", "data-action", "testapp.approve")
    read = element(page, "tr", "data-action", "testapp.read")

    assert "holds" in classes(element(approve, "td", "data-group", "approvers"))
    assert "lacks" in classes(element(approve, "td", "data-group", "auditors"))
    assert visible_text(element(approve, "td", "data-group", "auditors")).endswith(
        "auditors does not hold it"
    )
    # ANYONE: every group may attempt it.
    assert "holds" in classes(element(read, "td", "data-group", "auditors"))
    assert auditors.name in visible_text(page)


def test_matrix_names_the_rules_that_refine_the_capability(staff_client: Client) -> None:
    page = staff_client.get("/clearance/matrix/").content.decode()
    row = visible_text(element(page, "tr", "data-action", "testapp.approve"))

    assert "policies tenant_member, four_eyes, submitted" in row
    assert "invariants within_limit" in row


def test_matrix_shows_an_action_declared_at_runtime(
    staff_client: Client, fresh_registry: Any
) -> None:
    act = Action("testapp.archive", model="testapp.Document", permission="testapp.change_document")
    act.policy("owner", where(owner=ACTOR), reason="Only the owner archives.")

    page = staff_client.get("/clearance/matrix/").content.decode()

    row = visible_text(element(page, "tr", "data-action", "testapp.archive"))
    assert "testapp.change_document" in row
    assert "policies owner" in row
