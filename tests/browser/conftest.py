"""Browser tests: Debian's chromium, driven by Playwright, against the demo on a live server.

The demo runs in pytest-django's live server (a thread of the test process, on the test
database, which it shares) with the example's URLs and its authentication settings; the demo
data is seeded by ``manage.py seed_demo`` before the browser starts.

Chromium is the system package (``apt-get install chromium``), never a downloaded browser, and
it is kept off the network. Without it the tests skip with the reason shown, except under CI
(``CI=true``), where a missing browser is a failure.

Playwright's sync API runs an event loop in the test's thread, and Django refuses database
queries from a thread with a running event loop: every query of a test therefore happens in
the fixtures, before the browser starts.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside CI, skip the browser tests visibly when the browser is missing."""
    problem = _missing()
    if problem is None or IN_CI:
        return
    skip = pytest.mark.skip(reason=f"browser tests: {problem}")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def demo_site(live_server: Any, settings: Any) -> str:
    """The demo, seeded and served; returns its base URL."""
    from demo import settings as demo_settings

    settings.ROOT_URLCONF = "demo.urls"
    settings.LOGIN_URL = demo_settings.LOGIN_URL
    settings.LOGIN_REDIRECT_URL = demo_settings.LOGIN_REDIRECT_URL
    settings.LOGOUT_REDIRECT_URL = demo_settings.LOGOUT_REDIRECT_URL
    settings.AUTHENTICATION_BACKENDS = demo_settings.AUTHENTICATION_BACKENDS
    call_command("seed_demo", stdout=io.StringIO())
    return str(live_server.url)


@pytest.fixture
def invoice_pk(demo_site: str) -> dict[str, int]:
    """The seeded invoices' primary keys, by number (read before the browser starts)."""
    from invoices.models import Invoice

    return dict(Invoice.objects.values_list("number", "pk"))


@pytest.fixture
def page(
    request: pytest.FixtureRequest, demo_site: str, invoice_pk: dict[str, int]
) -> Iterator[Page]:
    """A chromium page on the demo; the final state is saved as a screenshot.

    Started after the fixtures that query the database (``invoice_pk``).
    """
    problem = _missing()
    if problem is not None:
        pytest.fail(f"CI runs the browser tests and {problem}")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            base_url=demo_site, viewport={"width": 1280, "height": 900}, locale="en-US"
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(SCREENSHOTS / f"{_name(request)}.png"), full_page=True)
            context.close()
            browser.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, page: Page) -> Callable[[str], Path]:
    """Save the page as ``tests/screenshots/<test>-<step>.png``."""

    def save(step: str) -> Path:
        path = SCREENSHOTS / f"{_name(request)}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def login(page: Page) -> Callable[[str], None]:
    """Log in through the demo's login form (password ``demo``)."""

    def log_in(username: str) -> None:
        page.goto("/accounts/login/?next=/invoices/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill("demo")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url("**/invoices/")

    return log_in


def _name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
