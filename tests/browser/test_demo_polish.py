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
