"""The demo in a real browser: approve, see why not, explain it, find it in the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Login = Callable[[str], None]
Screenshot = Callable[[str], Path]

DENY_RED = "rgb(180, 35, 24)"  # --deny in the console's stylesheet


def action_row(page: Page, label: str):  # type: ignore[no-untyped-def]
    """The detail page's row for an action ("submit", "approve", "pay")."""
    return page.locator(f'tr[data-action="{label}"]')


def test_an_approver_approves_a_submitted_invoice(
    page: Page, login: Login, screenshot: Screenshot
) -> None:
    login("alice")
    expect(page.get_by_role("heading", name="Invoices")).to_be_visible()
    page.get_by_role("link", name="ACME-002").click()

    approve = action_row(page, "approve").get_by_role("button", name="Approve")
    expect(approve).to_be_enabled()
    screenshot("before")
    approve.click()

    expect(page.get_by_text("Invoice ACME-002 approved.")).to_be_visible()
    expect(page.locator("h1 .state")).to_have_text("Approved")
    expect(page.locator("dl.facts")).to_contain_text("Approved by")
    # Approved now: approving again is refused, and the page says why.
    expect(action_row(page, "approve").get_by_role("button", name="Approve")).to_be_disabled()
    expect(action_row(page, "approve")).to_contain_text("Only submitted invoices can be approved.")


def test_on_her_own_invoice_the_approve_button_is_disabled_with_the_reason(
    page: Page, login: Login
) -> None:
    login("alice")
    page.get_by_role("link", name="ACME-003").click()

    row = action_row(page, "approve")
    approve = row.get_by_role("button", name="Approve")
    expect(approve).to_be_disabled()
    expect(row).to_contain_text("denied")
    expect(row).to_contain_text("policy")
    expect(row).to_contain_text("four_eyes")
    expect(row).to_contain_text("Nobody approves their own invoice.")
    # The reason is the disabled button's description for assistive technologies.
    described_by = approve.get_attribute("aria-describedby")
    assert described_by
    expect(page.locator(f"#{described_by}")).to_contain_text("Nobody approves their own invoice.")


def test_trying_anyway_is_refused_by_the_server_with_the_same_reason(
    page: Page, login: Login
) -> None:
    login("alice")
    page.get_by_role("link", name="ACME-003").click()
    action_row(page, "approve").get_by_role("button", name="Try anyway").click()

    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Nobody approves their own invoice.")
    expect(page.locator("main")).to_contain_text("policy.four_eyes")


def test_the_console_explains_the_denial_and_highlights_the_failing_gate(
    page: Page, login: Login, screenshot: Screenshot, invoice_pk: dict[str, int]
) -> None:
    login("erin")
    page.get_by_role("link", name="Console").click()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Explain").click()

    page.get_by_label("User", exact=True).fill("alice")
    page.get_by_label("Action", exact=True).select_option("invoices.approve")
    page.get_by_label("Object", exact=True).fill(str(invoice_pk["ACME-003"]))
    page.get_by_label("Object", exact=True).press("Enter")  # the keyboard submits the form

    failing = page.locator("li.gate.gate-decisive")
    expect(failing).to_have_count(1)
    expect(failing).to_have_attribute("data-layer", "policy")
    expect(failing).to_contain_text("this gate decided")
    decisive = failing.locator("tr.rule-decisive")
    expect(decisive).to_contain_text("four_eyes")
    expect(decisive).to_contain_text("Nobody approves their own invoice.")
    expect(failing).to_have_css("border-top-color", DENY_RED)
    expect(page.locator('li.gate[data-layer="permission"]')).to_contain_text("passed")
    expect(page.locator('li.gate[data-layer="invariant"]')).to_contain_text("passed")
    expect(page.locator("p.verdict")).to_contain_text(
        "Denied by the policy gate, rule four_eyes: Nobody approves their own invoice."
    )
    screenshot("explain")

    # The permalink reproduces the explanation.
    permalink = page.get_by_role("link", name="Permalink to this explanation")
    href = permalink.get_attribute("href")
    assert href == (
        f"/clearance/explain/?user=alice&action=invoices.approve&object={invoice_pk['ACME-003']}"
    )
    page.goto(href)
    expect(page.locator("li.gate.gate-decisive")).to_have_attribute("data-layer", "policy")


def test_the_denial_is_found_on_the_audit_page(
    page: Page, login: Login, screenshot: Screenshot
) -> None:
    # Alice opens her own invoice: the approve decision shown to her is a denial, recorded.
    login("alice")
    page.get_by_role("link", name="ACME-003").click()
    expect(action_row(page, "approve")).to_contain_text("four_eyes")
    page.get_by_role("button", name="Log out").click()

    login("admin")
    page.get_by_role("link", name="Console").click()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit").click()
    expect(page.locator("figure.chart svg rect").first).to_be_visible()
    screenshot("audit")

    page.get_by_label("Outcome", exact=True).select_option("denied")
    page.get_by_label("Gate", exact=True).select_option("policy")
    page.get_by_label("Action", exact=True).select_option("invoices.approve")
    page.get_by_label("Actor", exact=True).fill("alice")
    page.get_by_role("button", name="Filter").click()

    rows = page.locator("table.records tbody tr")
    expect(rows.first).to_be_visible()
    for text in rows.all_inner_texts():
        assert "alice" in text and "invoices.approve" in text and "POLICY" in text.upper()
    denial = rows.filter(has_text="four_eyes").first
    expect(denial).to_contain_text("Nobody approves their own invoice.")
    screenshot("filtered")

    denial.locator("td.when a").click()
    expect(page.get_by_role("heading", name="The gates as they were")).to_be_visible()
    expect(page.locator("li.gate.gate-decisive")).to_have_attribute("data-layer", "policy")
    expect(page.locator('li.gate[data-layer="invariant"]')).to_contain_text("not evaluated")


def test_the_console_is_for_staff_only(page: Page, login: Login) -> None:
    login("alice")
    expect(page.get_by_role("link", name="Console")).to_have_count(0)

    response = page.goto("/clearance/")

    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("The clearance console is for staff members only.")


def test_the_rule_pages_show_the_demo_rules(
    page: Page, login: Login, screenshot: Screenshot
) -> None:
    login("admin")
    page.goto("/clearance/actions/")
    approve = page.locator("#action-invoicesapprove")
    expect(approve).to_contain_text("invoices.approve_invoice")
    expect(approve).to_contain_text("Nobody approves their own invoice.")
    expect(approve).to_contain_text("Invoices above 10,000 can never be approved.")
    screenshot("actions")

    page.get_by_role("link", name="Matrix").click()
    row = page.locator('tr[data-action="invoices.approve"]')
    expect(row.locator('td[data-group="approver"]')).to_contain_text("approver holds it")
    expect(row.locator('td[data-group="clerk"]')).to_contain_text("clerk does not hold it")
    screenshot("matrix")


def test_the_console_works_from_the_keyboard(page: Page, login: Login) -> None:
    login("admin")
    page.goto("/clearance/")

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Clearance console")).to_be_focused()
    page.keyboard.press("Tab")
    actions = page.get_by_role("navigation", name="Console").get_by_role("link", name="Actions")
    expect(actions).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Actions", exact=True)).to_be_visible()
