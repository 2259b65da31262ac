"""``manage.py clearance snapshot [--check]`` and the system check that compares with it.

A change to the rules shows up in ``snapshot --check`` as the smallest readable diff (the line
that changed, and the fingerprint it moves); a change elsewhere does not show up at all.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core import checks
from django.core.management import call_command
from django.test import override_settings

from clearance import Action, model_invariant, predicate, where
from clearance.actions import registry
from clearance.snapshot import render_snapshot, snapshot_diff, snapshot_path
from clearance.testing import override_rules
from tests.testapp.models import Document

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example"
example_installed = pytest.mark.skipif(
    not apps.is_installed("invoices"), reason="the example app is not installed"
)


def snapshot(*args: str) -> tuple[int, str, str]:
    """Run ``manage.py clearance snapshot ARGS``: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("clearance", "snapshot", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff, without the file headers."""
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]


@pytest.fixture
def committed(tmp_path: Path) -> Iterator[Path]:
    """The snapshot of the rules as declared, written to a file the settings point at."""
    path = tmp_path / "clearance.snapshot"
    with override_settings(CLEARANCE={"SNAPSHOT_PATH": str(path)}):
        status, out, _err = snapshot()
        assert (status, out) == (0, f"Wrote {path}.\n")
        yield path


def check_diff(committed: Path) -> list[str]:
    """``snapshot --check`` must fail; the lines its diff changes."""
    status, out, err = snapshot("--check")
    assert status == 1, out
    assert out.startswith(f"--- {committed.name} (committed)\n+++ {committed.name} (running")
    assert f"The running rules differ from {committed}" in err
    return changed_lines(out)


def new_reason(action: str, name: str, reason: str) -> Any:
    """Inside the block, the policy ``name`` of ``action`` gives another reason."""
    (rule,) = [r.rule for r in registry.get(action).policies if r.name == name]
    return override_rules(action, policies={name: rule}, reasons={name: reason})


def fingerprint_lines(action: str, diff: list[str]) -> list[str]:
    return [
        line for line in diff if re.match(rf"^[-+]    {re.escape(action)} +[0-9a-f]{{16}}$", line)
    ]


# -- writing and checking -------------------------------------------------------------------------


def test_check_passes_on_the_rules_it_was_written_from(committed: Path) -> None:
    assert snapshot("--check") == (0, f"The running rules match {committed}.\n", "")
    # Writing again changes nothing, and says so.
    assert snapshot() == (0, f"{committed} is up to date.\n", "")


def test_check_fails_without_a_snapshot_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.snapshot"
    status, out, err = snapshot("--check", "--path", str(missing))
    assert (status, out) == (1, "")
    assert f"No authorization snapshot at {missing}" in err
    assert "manage.py clearance snapshot" in err
    assert not missing.exists()  # --check writes nothing


def test_check_writes_nothing_when_the_rules_differ(committed: Path) -> None:
    before = committed.read_text(encoding="utf-8")
    with new_reason("testapp.approve", "four_eyes", "Changed."):
        check_diff(committed)
    assert committed.read_text(encoding="utf-8") == before


def test_path_option_overrides_the_setting(tmp_path: Path, committed: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "rules.snapshot"
    elsewhere.parent.mkdir()
    assert snapshot("--path", str(elsewhere)) == (0, f"Wrote {elsewhere}.\n", "")
    assert elsewhere.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")


def test_default_path_is_clearance_snapshot_in_base_dir() -> None:
    from django.conf import settings

    with override_settings(CLEARANCE={}):
        assert snapshot_path() == Path(settings.BASE_DIR) / "clearance.snapshot"
    with override_settings(CLEARANCE={"SNAPSHOT_PATH": "/srv/app/authz.snapshot"}):
        assert snapshot_path() == Path("/srv/app/authz.snapshot")


def test_no_path_at_all_is_a_clear_error() -> None:
    with override_settings(CLEARANCE={}):
        from django.conf import settings

        base = settings.BASE_DIR
        del settings.BASE_DIR
        try:
            status, out, err = snapshot("--check")
        finally:
            settings.BASE_DIR = base
    assert (status, out) == (2, "")
    assert "No snapshot path: set CLEARANCE['SNAPSHOT_PATH']" in err


# -- the smallest readable diff -------------------------------------------------------------------


def test_a_changed_reason_is_one_line(committed: Path) -> None:
    with new_reason("testapp.approve", "four_eyes", "Nobody signs off their own."):
        diff = check_diff(committed)
    assert diff == [
        "-        reason      Nobody approves their own document.",
        "+        reason      Nobody signs off their own.",
    ]


def test_a_changed_rule_is_its_line_and_the_actions_fingerprint(committed: Path) -> None:
    with override_rules("testapp.approve", invariants={"within_limit": where(amount__lte=5000)}):
        diff = check_diff(committed)
    assert diff[:2] == [
        "-        rule        where(amount__lte=10000)",
        "+        rule        where(amount__lte=5000)",
    ]
    assert diff[2:] == fingerprint_lines("testapp.approve", diff)
    assert len(diff) == 4


def test_a_changed_permission_is_its_line_and_the_fingerprint(committed: Path) -> None:
    action = registry.get("testapp.approve")
    declared = action.permission
    action.permission = "testapp.submit_document"
    registry.changed()
    try:
        diff = check_diff(committed)
    finally:
        action.permission = declared
        registry.changed()
    assert diff[:2] == [
        "-    permission  testapp.approve_document",
        "+    permission  testapp.submit_document",
    ]
    assert diff[2:] == fingerprint_lines("testapp.approve", diff) and len(diff) == 4
    assert snapshot("--check")[0] == 0


def test_an_added_invariant_is_its_block_and_the_fingerprint(committed: Path) -> None:
    with override_rules(
        "testapp.approve",
        invariants={"not_archived": ~where(state="archived")},
        reasons={"not_archived": "Archived documents are never approved."},
    ):
        diff = check_diff(committed)
    assert diff[:3] == [
        "+    invariant.not_archived",
        "+        rule        ~where(state='archived')",
        "+        reason      Archived documents are never approved.",
    ]
    assert diff[3:] == fingerprint_lines("testapp.approve", diff) and len(diff) == 5


def test_a_removed_invariant_is_its_block_and_the_fingerprint(committed: Path) -> None:
    with override_rules("testapp.approve", invariants={"within_limit": None}):
        diff = check_diff(committed)
    assert diff[:3] == [
        "-    invariant.within_limit",
        "-        rule        where(amount__lte=10000)",
        "-        reason      Documents above 10,000 can never be approved.",
    ]
    assert diff[3:] == fingerprint_lines("testapp.approve", diff) and len(diff) == 5


def test_reordered_policies_show_because_the_first_denial_decides(committed: Path) -> None:
    action = registry.get("testapp.approve")
    state = registry.snapshot()
    action.policies.reverse()
    registry.changed()
    try:
        diff = check_diff(committed)
    finally:
        registry.restore(state)
    moved = [line[1:] for line in diff if line.startswith(("-    policy.", "+    policy."))]
    assert moved and {line[:1] for line in diff if line[1:] in moved} == {"-", "+"}
    assert fingerprint_lines("testapp.approve", diff)


def test_a_model_invariant_shows_with_its_constraint_and_moves_the_fingerprints(
    committed: Path, fresh_registry: Any
) -> None:
    model_invariant(
        Document, "titled", ~where(title=""), reason="A document has a title.", on=("save",)
    )
    diff = check_diff(committed)
    # The blank line around the new section is added before or after it, as difflib aligns
    # the blank lines of the neighbouring sections.
    added = [line for line in diff if not fingerprint_lines("testapp.approve", [line])]
    assert added.count("+") == 1
    assert [line for line in added if line != "+"][:6] == [
        "+model testapp.Document",
        "+    invariant.titled",
        "+        rule        ~where(title='')",
        "+        reason      A document has a title.",
        "+        on          save",
        "+        constraint  clearance_document_titled (missing from Meta.constraints, see "
        "clearance.W003)",
    ]
    # Every action on the model is now decided under another rule set.
    assert len(fingerprint_lines("testapp.approve", diff)) == 2
    assert len(fingerprint_lines("testapp.read", diff)) == 2


def test_a_declared_constraint_is_named_and_one_without_sql_form_says_why(
    fresh_registry: Any,
) -> None:
    from django.db import models

    model_invariant(Document, "non_negative", where(amount__gte=0))
    model_invariant(Document, "own_tenant", where(tenant__memberships__user__isnull=False))
    model_invariant(Document, "kept", where(state="kept"), on=("delete",))
    Document._meta.constraints.append(
        models.CheckConstraint(condition=models.Q(amount__gte=0), name="doc_non_negative")
    )
    try:
        text = render_snapshot()
    finally:
        Document._meta.constraints.pop()
    # Matched by its condition, whatever its name.
    assert "        constraint  doc_non_negative (in Meta.constraints)\n" in text
    assert "        constraint  none (it reads other tables)\n" in text
    assert "        constraint  none (checked on delete only)\n" in text


# -- what does not show ---------------------------------------------------------------------------


def _declare_with(fn: Any) -> None:
    action = Action("testapp.archive", model=Document, permission="testapp.change_document")
    action.policy("office_hours", predicate(fn, uses_object=False), reason="In office hours.")


def test_a_predicate_shows_its_code_not_its_docstring_or_layout(fresh_registry: Any) -> None:
    def office_hours(ctx: Any) -> bool:
        """Open from nine to five."""
        return 9 <= ctx.now.hour < 17

    _declare_with(office_hours)
    first = render_snapshot()
    assert (
        "    policy.office_hours\n"
        "        rule        office_hours()\n"
        "        reason      In office hours.\n"
        "        predicate   office_hours (does not read the object)\n"
        "            def office_hours(ctx: Any) -> bool:\n"
        "                return 9 <= ctx.now.hour < 17\n"
    ) in first
    registry.unregister("testapp.archive")

    def office_hours(ctx: Any) -> bool:  # type: ignore[no-redef]
        """Open during office hours: another docstring, a comment, other layout."""
        # The office opens at nine.
        return (9 <= ctx.now.hour
                < 17)  # fmt: skip

    _declare_with(office_hours)
    assert render_snapshot() == first
    registry.unregister("testapp.archive")

    def office_hours(ctx: Any) -> bool:  # type: ignore[no-redef]
        """Open from nine to five."""
        return 8 <= ctx.now.hour < 17

    _declare_with(office_hours)
    assert changed_lines(snapshot_diff(first, render_snapshot())) == [
        "-                return 9 <= ctx.now.hour < 17",
        "+                return 8 <= ctx.now.hour < 17",
    ]


def test_a_scope_and_an_actions_scope_path_show(fresh_registry: Any) -> None:
    from clearance import Scope
    from tests.testapp.models import Org, OrgMembership, OrgRole, Project

    without = render_snapshot()
    Scope("organization", model=Org, membership=OrgMembership, groups="groups")
    Action("testapp.edit", model=Project, permission="testapp.change_project", scope="org")
    text = render_snapshot()
    assert (
        "scope organization\n"
        "    model       testapp.Org\n"
        "    membership  testapp.OrgMembership\n"
        "    user        user\n"
        "    grants      the groups of groups\n"
    ) in text
    assert (
        "action testapp.edit\n"
        "    label       testapp.edit\n"
        "    model       testapp.Project\n"
        "    permission  testapp.change_project\n"
        "    scope       org\n"
    ) in text
    assert "scope organization" not in render_snapshot(["auth"])
    # Another path is its line and the action's fingerprint.
    registry.unregister("testapp.edit")
    Action("testapp.edit", model=Project, permission="testapp.change_project", scope="partner")
    diff = changed_lines(snapshot_diff(text, render_snapshot()))
    assert diff[:2] == ["-    scope       org", "+    scope       partner"]
    assert diff[2:] == fingerprint_lines("testapp.edit", diff) and len(diff) == 4
    # A role given other groups is a change of who may do what: it shows.
    from clearance.scopes import scope_registry

    scope_registry.unregister("organization")
    roles = {"maintainer": ["Maintainers"], "reader": ["Readers"]}
    Scope("organization", model=Org, membership=OrgRole, role="role", roles=roles)
    before = render_snapshot()
    assert (
        "    grants      the groups of the role in role\n"
        "        role        maintainer: Maintainers\n"
        "        role        reader: Readers\n"
    ) in before
    scope_registry.unregister("organization")
    roles["reader"] = ["Readers", "Maintainers"]
    Scope("organization", model=Org, membership=OrgRole, role="role", roles=roles)
    diff = changed_lines(snapshot_diff(before, render_snapshot()))
    assert diff[:2] == [
        "-        role        reader: Readers",
        "+        role        reader: Readers, Maintainers",
    ]
    # It decides who may do what within the scope: the scoped action's fingerprint moves.
    assert diff[2:] == fingerprint_lines("testapp.edit", diff) and len(diff) == 4
    # Without scopes, the snapshot is what it was.
    scope_registry.unregister("organization")
    registry.unregister("testapp.edit")
    assert render_snapshot() == without


def test_snapshot_is_stable_and_sorted() -> None:
    text = render_snapshot()
    assert render_snapshot() == text
    names = re.findall(r"^action (\S+)$", text, flags=re.MULTILINE)
    assert names == sorted(names) and "testapp.approve" in names
    assert str(ROOT) not in text  # no absolute paths, so it diffs the same on every machine


# -- the system check -----------------------------------------------------------------------------


def snapshot_messages() -> list[checks.CheckMessage]:
    return [
        m
        for m in checks.run_checks(tags=["clearance"])
        if m.id in ("clearance.W601", "clearance.W602")
    ]


def test_w601_warns_when_the_running_rules_differ(committed: Path) -> None:
    assert snapshot_messages() == []
    with override_rules("testapp.approve", policies={"four_eyes": None}):
        (warning,) = snapshot_messages()
    assert warning.id == "clearance.W601" and warning.level == checks.WARNING
    assert f"differ from the authorization snapshot {committed}" in warning.msg
    assert warning.hint is not None and "manage.py clearance snapshot --check" in warning.hint
    assert snapshot_messages() == []


def test_the_check_is_silent_without_a_snapshot_file(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent.snapshot")
    with (
        override_settings(CLEARANCE={"SNAPSHOT_PATH": absent}),
        override_rules("testapp.approve", policies={"four_eyes": None}),
    ):
        assert snapshot_messages() == []


def test_w602_an_unreadable_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "clearance.snapshot"
    path.write_bytes(b"\xff\xfe not text")
    with override_settings(CLEARANCE={"SNAPSHOT_PATH": str(path)}):
        (warning,) = snapshot_messages()
    assert warning.id == "clearance.W602" and str(path) in warning.msg


# -- the example project, as CI checks it ---------------------------------------------------------


@contextmanager
def example_copy(tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "example"
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("*.sqlite3", "__pycache__", "tests")
    )
    yield copy


def manage(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@example_installed
def test_the_examples_committed_snapshot_matches_its_rules() -> None:
    result = manage(EXAMPLE, "clearance", "snapshot", "--check")
    assert result.returncode == 0, (
        f"{result.stdout}\n{result.stderr}\nThe example's rules changed: regenerate its snapshot "
        "with `cd example && ../.venv/bin/python manage.py clearance snapshot`."
    )


@example_installed
def test_example_check_ignores_a_docstring_and_an_unused_field_and_catches_a_reason(
    tmp_path: Path,
) -> None:
    with example_copy(tmp_path) as example:
        authz = example / "invoices" / "authz.py"
        models_py = example / "invoices" / "models.py"
        authz.write_text(
            authz.read_text().replace(
                '"""Who may do what', '"""A docstring, rewritten.\n\nWho may do what'
            )
        )
        models_py.write_text(
            models_py.read_text().replace(
                "    approved_at = models.DateTimeField(null=True, blank=True)\n",
                "    approved_at = models.DateTimeField(null=True, blank=True)\n"
                "    internal_note = models.TextField(blank=True)\n",
            )
        )
        unrelated = manage(example, "clearance", "snapshot", "--check")
        assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr
        assert "clearance.W601" not in unrelated.stderr

        authz.write_text(
            authz.read_text().replace(
                "Nobody approves their own invoice.", "Nobody approves an invoice they wrote."
            )
        )
        changed = manage(example, "clearance", "snapshot", "--check")
        assert changed.returncode == 1
        assert changed_lines(changed.stdout) == [
            "-        reason      Nobody approves their own invoice.",
            "+        reason      Nobody approves an invoice they wrote.",
        ]
        assert "clearance.W601" in changed.stderr  # and the system check said so first
