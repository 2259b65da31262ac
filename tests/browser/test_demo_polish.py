"""The demo's rough edges, smoothed: what a newcomer meets first, in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Login = Callable[[str], None]
Screenshot = Callable[[str], Path]


def nav(page: Page):  # type: ignore[no-untyped-def]
    """The demo's top navigation bar."""
    return page.locator("nav.topbar")


def test_the_drafts_link_is_shown_only_to_those_the_page_lets_in(page: Page, login: Login) -> None:
    # Alice approves: she edits no drafts, and the drafts page would refuse her (403).
    login("alice")
    expect(nav(page).get_by_role("link", name="Invoices")).to_be_visible()
    expect(nav(page).get_by_role("link", name="Drafts")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()

    # Bob is a clerk: he sees the link, and it opens his drafts.
    login("bob")
    drafts = nav(page).get_by_role("link", name="Drafts")
    expect(drafts).to_be_visible()
    with page.expect_response("**/invoices/drafts/") as answer:
        drafts.click()
    assert answer.value.status == 200
    expect(page.get_by_role("heading", name="Drafts you may edit")).to_be_visible()
    expect(page.locator('tr[data-invoice="ACME-001"]')).to_be_visible()


def test_another_tenants_invoice_and_a_missing_one_show_the_same_styled_404(
    page: Page, login: Login, invoice_pk: dict[str, int], settings: object, screenshot: Screenshot
) -> None:
    settings.DEBUG = True  # type: ignore[attr-defined]  # as make demo serves it
    login("dave")  # Globex only

    foreign = page.goto(f"/invoices/{invoice_pk['ACME-003']}/")
    assert foreign is not None and foreign.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("main")).to_contain_text("There is nothing here that you may see.")
    # The demo's own look (its top bar), not Django's yellow technical page.
    expect(page.locator("nav.topbar")).to_be_visible()
    expect(page.locator("body")).to_have_css("background-color", "rgb(246, 248, 250)")
    foreign_text = page.locator("body").inner_text()
    screenshot("foreign")

    missing = page.goto("/invoices/999999/")
    assert missing is not None and missing.status == 404
    assert page.locator("body").inner_text() == foreign_text
    assert "ACME" not in foreign_text


def test_trying_anyway_against_an_invariant_answers_409_naming_the_invariant(
    page: Page, login: Login, screenshot: Screenshot
) -> None:
    login("alice")
    page.get_by_role("link", name="ACME-004").click()  # 18,500: above the approval limit
    row = page.locator('tr[data-action="approve"]')
    expect(row).to_contain_text("within_limit")

    with page.expect_response("**/approve/") as answer:
        row.get_by_role("button", name="Try anyway").click()

    assert answer.value.status == 409  # as the API answers it: Conflict, not 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    main = page.locator("main")
    expect(main).to_contain_text("Invoices above 10,000 can never be approved.")
    expect(main).to_contain_text("The invariant within_limit refused it")
    expect(main.locator("dl.facts")).to_contain_text("invariant.within_limit")
    expect(main.locator(".gate-invariant")).to_have_text("invariant")
    screenshot("refused")


GATES = ("permission", "policy", "invariant")


def gate_colours(page: Page, selector: str) -> dict[str, str]:
    """The computed text colour of the first element of ``selector`` for each gate."""
    return {
        gate: page.locator(selector.format(gate=gate)).first.evaluate(
            "element => getComputedStyle(element).color"
        )
        for gate in GATES
    }


def test_the_demo_and_the_console_draw_each_gate_in_the_same_colour(
    page: Page, login: Login, invoice_pk: dict[str, int], screenshot: Screenshot
) -> None:
    # On ACME-004 alice meets all three gates: submit (permission), approve (invariant
    # within_limit) and pay (policy approved).
    login("alice")
    page.goto(f"/invoices/{invoice_pk['ACME-004']}/")
    demo = gate_colours(page, "main .gate.gate-{gate}")
    screenshot("demo")
    page.get_by_role("button", name="Log out").click()

    login("admin")
    page.goto("/clearance/actions/")
    console = gate_colours(page, "main .gate-tag.gate-{gate}")

    assert demo == console
    assert len(set(console.values())) == 3  # three gates, three colours


def test_the_admin_says_why_a_submitted_invoice_is_read_only(
    page: Page, login: Login, invoice_pk: dict[str, int], screenshot: Screenshot
) -> None:
    login("admin")
    page.goto(f"/admin/invoices/invoice/{invoice_pk['ACME-002']}/change/")

    expect(page.get_by_role("heading", name="View invoice")).to_be_visible()  # read-only
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    expect(page.locator("ul.messagelist")).to_contain_text(
        "Read only (policy.draft): Only draft invoices can be edited."
    )
    screenshot("read-only")

    # A draft is editable, and nothing is said about read-only.
    page.goto(f"/admin/invoices/invoice/{invoice_pk['ACME-001']}/change/")
    expect(page.get_by_role("button", name="Save", exact=True)).to_be_visible()
    expect(page.locator("ul.messagelist")).to_have_count(0)


def test_the_explain_page_suggests_objects_as_soon_as_the_action_is_chosen(
    page: Page, login: Login, invoice_pk: dict[str, int], screenshot: Screenshot
) -> None:
    login("erin")
    page.goto("/clearance/explain/")  # before any submit
    field = page.get_by_label("Object", exact=True)

    page.get_by_label("Action", exact=True).select_option("invoices.approve")

    expect(field).to_have_attribute("list", "console-objects-invoices-invoice")
    suggestions = page.locator("#console-objects-invoices-invoice option")
    expect(suggestions.filter(has_text="ACME-002")).to_have_attribute(
        "value", str(invoice_pk["ACME-002"])
    )
    # Choosing a suggestion and explaining: the rules that passed say so.
    page.get_by_label("User", exact=True).fill("alice")
    field.fill(str(invoice_pk["ACME-002"]))
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("p.verdict")).to_contain_text("Allowed")
    four_eyes = page.locator('li.gate[data-layer="policy"] tr[data-rule="four_eyes"]')
    expect(four_eyes).to_contain_text("Holds: this rule does not refuse the action.")
    expect(four_eyes).not_to_contain_text("Nobody approves their own invoice.")
    screenshot("explained")
