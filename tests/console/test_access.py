"""Who may open the console: staff members read it; everyone else is kept out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from clearance import authorize
from clearance.audit.models import AuditRecord

from .html import visible_text

PAGES = [
    ("/clearance/", "Authorization at a glance"),
    ("/clearance/actions/", "Actions"),
    ("/clearance/matrix/", "Capability matrix"),
    ("/clearance/explain/", "Explain a decision"),
    ("/clearance/audit/", "Audit trail"),
]


@pytest.fixture
def record(make_user: Callable[..., User], make_doc: Callable[..., object]) -> AuditRecord:
    """One audit record of a real denial."""
    user = make_user("outsider", approver=False)
    decision = authorize(user, "testapp.approve", make_doc())
    saved = AuditRecord.from_decision(decision)
    saved.save()
    return saved


@pytest.mark.parametrize(("url", "heading"), PAGES)
def test_every_page_renders_for_a_staff_member(
    staff_client: Client, url: str, heading: str
) -> None:
    response = staff_client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert f"<h1>{heading}" in page
    assert "Signed in as <strong>staffer</strong>" in page
    assert response.templates[0].name.startswith("clearance/console/")


@pytest.mark.parametrize(("url", "heading"), PAGES)
def test_a_signed_in_user_who_is_not_staff_gets_403(
    member_client: Client, url: str, heading: str
) -> None:
    response = member_client.get(url)

    assert response.status_code == 403
    assert heading not in response.content.decode()


@pytest.mark.parametrize(("url", "heading"), PAGES)
def test_an_anonymous_visitor_is_sent_to_the_login_page(url: str, heading: str) -> None:
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_a_superuser_needs_the_staff_flag_too(db: None) -> None:
    client = Client()
    client.force_login(User.objects.create_user("root", password="x", is_superuser=True))

    assert client.get("/clearance/").status_code == 403


def test_a_recorded_decision_opens_for_staff_only(
    staff_client: Client, member_client: Client, record: AuditRecord
) -> None:
    url = f"/clearance/audit/{record.pk}/"

    assert member_client.get(url).status_code == 403
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "Audit record" in visible_text(response.content.decode())


def test_a_missing_record_is_404(staff_client: Client) -> None:
    assert staff_client.get("/clearance/audit/999999999/").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_the_console_only_reads(staff_client: Client, method: str) -> None:
    for url, _ in PAGES:
        response = getattr(staff_client, method)(url)
        assert response.status_code == 405, url
        assert response["Allow"] == "GET, HEAD"


def test_pages_are_not_kept_in_caches(staff_client: Client) -> None:
    response = staff_client.get("/clearance/audit/")

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_pages_need_no_context_processor(staff_client: Client, settings: Any) -> None:
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": []},
        }
    ]

    page = staff_client.get("/clearance/").content.decode()

    assert "Signed in as <strong>staffer</strong>" in page


@pytest.mark.parametrize(("url", "heading"), PAGES)
def test_a_staff_member_without_the_consoles_permission_gets_403(
    make_user: Callable[..., User], url: str, heading: str
) -> None:
    client = Client()
    client.force_login(make_user("plainstaff", approver=False, is_staff=True))

    response = client.get(url)

    assert response.status_code == 403
    assert heading not in response.content.decode()


def test_a_superuser_with_the_staff_flag_holds_the_permission(db: None) -> None:
    client = Client()
    root = User.objects.create_user("root", password="x", is_superuser=True, is_staff=True)
    client.force_login(root)

    assert client.get("/clearance/").status_code == 200
