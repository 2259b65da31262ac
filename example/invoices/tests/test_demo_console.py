"""The demo's completion: navigation to the console, API and admin, and an audit history."""

import datetime as dt
import io
import re
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from clearance.audit.models import AuditRecord
from invoices.models import Invoice

from .pages import action_row, visible_text

pytestmark = [pytest.mark.django_db(databases="__all__"), pytest.mark.urls("demo.urls")]

ClientFor = Callable[[str], Client]
InvoiceGetter = Callable[[str], Invoice]


def nav(page: str) -> str:
    start = page.index('<nav class="topbar">')
    return visible_text(page[start : page.index("</nav>", start)])


@pytest.mark.parametrize(
    ("username", "links"),
    [
        ("admin", "Invoices Drafts API Admin Console"),
        ("erin", "Invoices API Admin Console"),  # an auditor edits no drafts
    ],
)
def test_staff_find_the_console_and_the_admin_in_the_navigation(
    client_for: ClientFor, username: str, links: str
) -> None:
    client = client_for(username)
    page = client.get("/invoices/").content.decode()

    assert links in nav(page)
    assert 'href="/clearance/"' in page and 'href="/admin/"' in page
    assert client.get("/clearance/").status_code == 200


def test_other_users_see_the_api_but_not_the_console(client_for: ClientFor) -> None:
    client = client_for("alice")
    page = client.get("/invoices/").content.decode()

    assert "Invoices API" in nav(page)  # no Drafts: she edits none (403)
    assert "Console" not in nav(page)
    assert 'href="/api/invoices/"' in page
    assert client.get("/clearance/").status_code == 403


def test_a_denied_action_is_a_disabled_button_described_by_its_reason(
    client_for: ClientFor, invoice: InvoiceGetter
) -> None:
    own = invoice("ACME-003")
    page = client_for("alice").get(f"/invoices/{own.pk}/").content.decode()

    button = re.search(r"<button\b([^>]*)>Approve</button>", page)
    assert button, "no Approve button"
    assert " disabled" in button.group(1)
    assert 'aria-describedby="decision-approve"' in button.group(1)
    assert '<td id="decision-approve">' in page
    assert "Nobody approves their own invoice." in action_row(page, "approve")


def test_seed_demo_records_a_fortnight_of_denials_by_every_gate(demo: str) -> None:
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    history = AuditRecord.objects.filter(
        at__gte=today - dt.timedelta(days=13),
        actor_label__in=["alice", "bob", "carol", "dave", "erin", "admin"],
    )

    assert not history.filter(allowed=True).exists()
    assert {r.layer for r in history} == {"permission", "policy", "invariant"}
    assert len({timezone.localtime(r.at).date() for r in history}) >= 10
    assert history.filter(at__gte=today).exists()  # decided and recorded today
    assert "recorded denials over the last 14 days" in demo


def test_seeding_again_adds_no_second_history(demo: str) -> None:
    before = AuditRecord.objects.filter(at__lt=timezone.now() - dt.timedelta(days=1)).count()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    assert (
        AuditRecord.objects.filter(at__lt=timezone.now() - dt.timedelta(days=1)).count() == before
    )
    assert "Audit history" not in out.getvalue()


def test_the_seeded_history_has_a_role_held_in_another_tenant_only(demo: str) -> None:
    glx_002 = Invoice.objects.get(number="GLX-002")
    refused = AuditRecord.objects.filter(
        actor_label="carol", action="invoices.approve", resource_pk=str(glx_002.pk)
    )
    assert refused.exists()
    assert {(r.allowed, r.code) for r in refused} == {
        (False, "permission.invoices.approve_invoice")
    }
    assert all("through a membership of the object's tenant" in r.reason for r in refused)


def test_the_seeded_history_is_on_the_console(client_for: ClientFor) -> None:
    page = client_for("erin").get("/clearance/audit/?actor=alice&layer=policy").content.decode()

    assert "four_eyes" in page and "Nobody approves their own invoice." in page
    assert 'class="series-policy"' in page
