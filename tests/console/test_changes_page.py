"""The rule changes page: the snapshot diff of the running rules, and the last replay report."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from clearance import authorize, where
from clearance.testing import override_rules
from tests.testapp.models import Document

from .html import element, visible_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    snapshot, report = tmp_path / "clearance.snapshot", tmp_path / "replay.json"
    with override_settings(
        CLEARANCE={
            "SNAPSHOT_PATH": str(snapshot),
            "REPLAY_REPORT_PATH": str(report),
            "RECORD_ALLOWED": True,
        }
    ):
        yield snapshot, report


def section(client: Client, name: str) -> str:
    page = client.get("/clearance/changes/").content.decode()
    return visible_text(element(page, "section", "id", name))


def test_without_a_snapshot_or_report_the_page_says_what_to_run(
    staff_client: Client, files: tuple[Path, Path]
) -> None:
    snapshot, report = files
    assert f"There is no snapshot at {snapshot} yet" in section(staff_client, "snapshot")
    assert f"No replay report yet (it would be kept in {report})" in section(staff_client, "replay")


def test_the_page_shows_the_diff_of_the_running_rules(
    staff_client: Client, files: tuple[Path, Path]
) -> None:
    call_command("clearance", "snapshot", stdout=io.StringIO())
    assert "The running rules match the snapshot" in section(staff_client, "snapshot")

    with override_rules("testapp.approve", invariants={"within_limit": where(amount__lte=5)}):
        page = staff_client.get("/clearance/changes/").content.decode()
    text = visible_text(element(page, "section", "id", "snapshot"))
    assert "The running rules differ from the snapshot" in text
    assert '<span class="remove">-        rule        where(amount__lte=10000)</span>' in page
    assert '<span class="add">+        rule        where(amount__lte=5)</span>' in page


def test_the_page_shows_the_last_replay_report(
    staff_client: Client, files: tuple[Path, Path], alice: object, make_doc: object
) -> None:
    doc = make_doc(owner=None, amount=500)  # type: ignore[operator]
    assert isinstance(doc, Document)
    assert authorize(alice, "testapp.approve", doc).allowed
    with override_rules("testapp.approve", invariants={"within_limit": where(amount__lte=5)}):
        call_command("clearance", "replay", stdout=io.StringIO(), stderr=io.StringIO())

    text = section(staff_client, "replay")
    assert "1 would flip" in text
    assert "testapp.approve: now denied by invariant.within_limit 1" in text
    assert f"alice testapp.approve on testapp.Document:{doc.pk}" in text
    assert "may explain a flip as well as a change to the rules" in text


def test_the_page_is_for_staff_only(member_client: Client, files: tuple[Path, Path]) -> None:
    assert member_client.get("/clearance/changes/").status_code == 403


def test_the_index_and_the_menu_link_to_it(staff_client: Client) -> None:
    page = staff_client.get("/clearance/").content.decode()
    assert page.count('href="/clearance/changes/"') == 2
