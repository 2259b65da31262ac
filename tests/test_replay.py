"""``manage.py clearance replay``: recorded decisions decided again against today's rules.

The example project records a day of decisions; a policy is tightened (or loosened); the
replay lists exactly the attempts that flip, by the rule that decides them now, and writes
nothing at all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.core.management import CommandError, call_command
from django.db import connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clearance import ANYONE, Action, SystemActor, authorize, where
from clearance.audit.models import AuditRecord
from clearance.replay import load_report, parse_when, replay
from clearance.signals import decision_made
from clearance.testing import override_rules
from tests.replayapp.models import Ticket

example = pytest.mark.skipif(
    not apps.is_installed("invoices"), reason="the example app is not installed"
)
pytestmark = pytest.mark.django_db(databases="__all__")

#: What the demo's users do in a day: every one of them tries these on every invoice.
DAY_ACTIONS = ("invoices.view", "invoices.submit", "invoices.approve", "invoices.pay")


def run_replay(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("clearance", "replay", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def report_file(tmp_path: Path) -> Iterator[Path]:
    """Replay keeps its last report in a temporary file; everything is recorded."""
    path = tmp_path / "clearance.replay.json"
    with override_settings(CLEARANCE={"REPLAY_REPORT_PATH": str(path), "RECORD_ALLOWED": True}):
        yield path


@pytest.fixture
def demo() -> None:
    call_command("seed_demo", stdout=io.StringIO())


def record_a_day() -> dt.datetime:
    """Every demo user attempts every day action on every invoice; returns when it started."""
    from invoices.models import Invoice

    start = timezone.now()
    for user in User.objects.order_by("username"):
        for invoice in Invoice.objects.order_by("number"):
            for action in DAY_ACTIONS:
                authorize(user, action, invoice)
    return start


def attempts(report: dict[str, Any], kind: str) -> dict[tuple[str, str, str], set[str]]:
    """``{(action, was, now): {"actor invoice-number", ...}}`` for the flips of ``kind``."""
    from invoices.models import Invoice

    numbers = {f"invoices.Invoice:{i.pk}": i.number for i in Invoice.objects.all()}
    found: dict[tuple[str, str, str], set[str]] = {}
    for group in report["flips"]:
        if group["kind"] == kind:
            assert group["count"] == len(group["examples"])  # all listed (--examples 1000)
            found[(group["action"], group["was"], group["now"])] = {
                f"{e['actor']} {numbers[e['resource']]}" for e in group["examples"]
            }
    return found


def json_replay(since: dt.datetime, *args: str) -> dict[str, Any]:
    status, out, _err = run_replay(
        "--since", since.isoformat(), "--format", "json", "--examples", "1000", *args
    )
    assert status == 0
    data: dict[str, Any] = json.loads(out)
    return data


# -- the acceptance scenario ----------------------------------------------------------------------


@example
def test_tightening_a_policy_lists_exactly_the_attempts_that_flip(demo: None) -> None:
    start = record_a_day()
    recorded = AuditRecord.objects.filter(at__gte=start).count()
    assert recorded == User.objects.count() * 12 * len(DAY_ACTIONS)

    with override_rules(
        "invoices.approve",
        policies={"small": where(amount__lte=500)},
        reasons={"small": "Only invoices up to 500 are approved here."},
    ):
        report = json_replay(start)

    assert report["replayed"] == recorded and report["not_replayed"] == 0
    # Approved by a tenant member who did not write it, above 500: now refused by the new rule.
    # (carol only reads in Globex: GLX-002 was refused at gate 1 already.)
    assert attempts(report, "allowed_to_denied") == {
        ("invoices.approve", "allowed", "policy.small"): {
            "alice ACME-002",
            "carol ACME-002",
            "admin ACME-002",
        }
    }
    # Refused by the invariant before; the new policy comes first now.
    assert attempts(report, "other_rule") == {
        ("invoices.approve", "invariant.within_limit", "policy.small"): {
            "alice ACME-004",
            "carol ACME-004",
            "admin ACME-004",
        }
    }
    assert attempts(report, "denied_to_allowed") == {}
    assert report["flipped"] == 6 and report["unchanged"] == recorded - 6
    (tightened, _) = report["flips"]
    assert tightened["rule"] == "policy.small"
    assert tightened["title"] == "invoices.approve: now denied by policy.small"


@example
def test_loosening_shows_the_reverse(demo: None) -> None:
    with override_rules(
        "invoices.approve",
        policies={"small": where(amount__lte=500)},
        reasons={"small": "Only invoices up to 500 are approved here."},
    ):
        start = record_a_day()

    report = json_replay(start)  # the declared rules: without "small"

    assert attempts(report, "denied_to_allowed") == {
        ("invoices.approve", "policy.small", "allowed"): {
            "alice ACME-002",
            "carol ACME-002",
            "admin ACME-002",
        }
    }
    assert attempts(report, "other_rule") == {
        ("invoices.approve", "policy.small", "invariant.within_limit"): {
            "alice ACME-004",
            "carol ACME-004",
            "admin ACME-004",
        }
    }
    assert attempts(report, "allowed_to_denied") == {}
    (loosened, _) = report["flips"]
    assert loosened["rule"] == "policy.small"
    assert loosened["title"] == "invoices.approve: no longer denied by policy.small"


@example
def test_removing_a_policy_lets_through_what_it_alone_refused(demo: None) -> None:
    start = record_a_day()
    with override_rules("invoices.approve", policies={"four_eyes": None}):
        report = json_replay(start, "--action", "invoices.approve")
    # alice's own submitted invoice; her own drafts and approved ones fail the next policy.
    assert attempts(report, "denied_to_allowed") == {
        ("invoices.approve", "policy.four_eyes", "allowed"): {"alice ACME-003"}
    }
    assert attempts(report, "other_rule") == {
        ("invoices.approve", "policy.four_eyes", "policy.submitted"): {
            "alice ACME-006",
            "alice ACME-008",
        }
    }


@example
def test_replay_writes_nothing_and_sends_no_signal(demo: None, report_file: Path) -> None:
    start = record_a_day()
    rows = {alias: AuditRecord.objects.using(alias).count() for alias in connections}
    heard: list[Any] = []

    def listener(**kwargs: Any) -> None:
        heard.append(kwargs["decision"])

    decision_made.connect(listener)
    captured = [CaptureQueriesContext(connections[alias]) for alias in connections]
    try:
        for capture in captured:
            capture.__enter__()
        with override_rules("invoices.approve", policies={"small": where(amount__lte=500)}):
            status, out, _err = run_replay("--since", start.isoformat())
    finally:
        for capture in captured:
            capture.__exit__(None, None, None)
        decision_made.disconnect(listener)

    assert status == 0 and "would flip" in out
    assert heard == []
    assert {alias: AuditRecord.objects.using(alias).count() for alias in connections} == rows
    statements = [
        q["sql"].lstrip().split()[0].upper() for c in captured for q in c.captured_queries
    ]
    # Reads only (DECLARE: PostgreSQL's server-side cursor over a SELECT).
    assert statements and set(statements) <= {"SELECT", "DECLARE"}, set(statements)
    # The report the console shows is the one file it keeps.
    assert load_report(report_file) is not None


@example
def test_text_report_groups_by_rule_with_counts_and_examples(demo: None) -> None:
    start = record_a_day()
    with override_rules("invoices.approve", policies={"small": where(amount__lte=500)}):
        status, out, err = run_replay("--since", start.isoformat(), "--examples", "2")
    assert status == 0
    assert "Only attempts are replayed: probes (decisions that only decided what to show)" in out
    assert "would flip" in out and "6 would flip" in out
    assert "allowed → denied: 3\n  invoices.approve: now denied by policy.small: 3\n" in out
    assert "    ... and 1 more\n" in out
    assert "denied by another rule: 3\n" in out
    assert "invoices.approve: denied by policy.small instead of invariant.within_limit: 3" in out
    assert "may explain a flip as well as a change to the rules" in out
    assert "The console shows this report" in err


@example
def test_fail_on_flips_sets_the_exit_status_for_ci(demo: None) -> None:
    start = record_a_day()
    assert run_replay("--since", start.isoformat(), "--fail-on-flips")[0] == 0
    with override_rules("invoices.approve", policies={"small": where(amount__lte=500)}):
        assert run_replay("--since", start.isoformat(), "--fail-on-flips")[0] == 1


@example
def test_filters_by_window_action_and_actor(demo: None) -> None:
    start = record_a_day()
    end = timezone.now()
    after = record_a_day()
    with override_rules("invoices.approve", policies={"small": where(amount__lte=500)}):
        everything = replay(since=start)
        first_day = replay(since=start, until=end)
        carol = replay(since=start, until=end, actor="carol")
        views = replay(since=start, until=end, actions=["invoices.view"])
    assert everything.replayed == 2 * first_day.replayed and after > end
    assert first_day.flipped == 6
    assert carol.flipped == 2 and carol.replayed == 12 * len(DAY_ACTIONS)
    assert views.flipped == 0 and views.replayed == User.objects.count() * 12


def test_probes_are_not_replayed(fresh_registry: Any, closer: User) -> None:
    close = Action("replayapp.close", model=Ticket, permission="replayapp.close_ticket")
    ticket = Ticket.objects.create(title="t")
    start = timezone.now()
    with override_settings(CLEARANCE={"RECORD_ALLOWED": True, "RECORD_PROBES": True}):
        assert authorize(closer, close, ticket, probe=True).allowed  # a button was shown
        assert authorize(closer, close, ticket).allowed  # the ticket was closed
    recorded = AuditRecord.objects.filter(at__gte=start)
    assert (recorded.probes().count(), recorded.attempts().count()) == (1, 1)

    with override_rules(close, policies={"never": where(title="never")}):
        report = replay(since=start)

    assert report.replayed == 1
    (group,) = report.flips
    (example,) = group.examples
    assert example.record == recorded.attempts().get().pk


# -- what cannot be replayed is reported ----------------------------------------------------------


@example
def test_deleted_objects_actors_and_undeclared_actions_are_reported(
    demo: None, fresh_registry: Any
) -> None:
    from invoices.models import Invoice

    start = timezone.now()
    alice = User.objects.get(username="alice")
    gone = User.objects.create_user("gone")
    draft = Invoice.objects.get(number="ACME-001")
    authorize(alice, "invoices.view", draft)
    authorize(gone, "invoices.view", Invoice.objects.get(number="ACME-002"))
    authorize(AnonymousUser(), "invoices.view", draft)
    job = SystemActor("nightly", permissions=["invoices.view_invoice"])
    authorize(job, "invoices.view", draft)
    authorize(alice, "invoices.create", Invoice(tenant=draft.tenant, amount=1, number="NEW"))
    temporary = Action("invoices.archive", model=Invoice, permission=ANYONE)
    authorize(alice, temporary, draft)
    fresh_registry.unregister("invoices.archive")
    gone.delete()
    draft.delete()

    report = replay(since=start)

    skipped = {g.reason: g.count for g in report.skipped}
    assert skipped == {
        "object_deleted": 2,  # alice's and the anonymous visitor's view of the draft
        "actor_deleted": 1,
        "actor_job": 1,
        "object_unsaved": 1,
        "action_undeclared": 1,
    }
    assert report.replayed == 0
    text = report.to_text()
    assert "Not decided again: 6" in text
    assert "the object no longer exists: 2" in text
    assert "the action is no longer declared: 1" in text


# -- an object that changed after the decision ----------------------------------------------------


@pytest.fixture
def closer(db: None) -> User:
    user = User.objects.create_user("closer")
    user.user_permissions.add(Permission.objects.get(codename="close_ticket"))
    return User.objects.get(pk=user.pk)


def test_a_flip_shows_when_the_object_changed_after_the_decision(
    fresh_registry: Any, closer: User
) -> None:
    close = Action("replayapp.close", model=Ticket, permission="replayapp.close_ticket")
    close.policy("open", where(state="open"), reason="Only open tickets can be closed.")
    touched = Ticket.objects.create(title="touched")
    untouched = Ticket.objects.create(title="untouched")
    start = timezone.now()
    assert authorize(closer, close, touched).allowed
    assert authorize(closer, close, untouched).allowed
    touched.title = "renamed"
    touched.save()  # updated_at moves past the decision

    with override_rules(close, policies={"short": where(title__in=["renamed"])}):
        report = replay(since=start)

    (group,) = report.flips
    assert (group.kind, group.rule, group.count) == ("allowed_to_denied", "policy.short", 1)
    assert group.changed_objects == 0
    (example,) = group.examples
    assert example.resource == f"replayapp.Ticket:{untouched.pk}"
    assert example.object_change_known and example.object_changed_at is None

    with override_rules(close, policies={"short": where(title="untouched")}):
        report = replay(since=start)
    (group,) = report.flips
    (example,) = group.examples
    assert example.resource == f"replayapp.Ticket:{touched.pk}"
    assert example.object_changed_at is not None and example.object_changed_at > example.at
    assert group.changed_objects == 1
    assert "(the object changed at " in report.to_text()


def test_replay_uses_the_clock_of_the_recorded_decision(fresh_registry: Any, closer: User) -> None:
    from clearance import predicate

    close = Action("replayapp.close", model=Ticket, permission="replayapp.close_ticket")
    ticket = Ticket.objects.create(title="t")
    start = timezone.now()
    authorize(closer, close, ticket)
    seen: list[dt.datetime] = []

    @predicate(uses_object=False)
    def clock(ctx: Any) -> bool:
        seen.append(ctx.now)
        return True

    with override_rules(close, policies={"clock": clock}):
        replay(since=start)
    (recorded,) = AuditRecord.objects.filter(at__gte=start, action="replayapp.close")
    assert seen == [recorded.at]


# -- reading the arguments ------------------------------------------------------------------------


def test_parse_when_reads_ages_dates_and_all() -> None:
    now = timezone.now()
    assert parse_when("7d", now) == now - dt.timedelta(days=7)
    assert parse_when("all", now) is None
    midnight = parse_when("2026-12-01", now)
    assert midnight is not None and timezone.localtime(midnight).hour == 0
    with pytest.raises(ValueError, match="Cannot read the time 'yesterday'"):
        parse_when("yesterday", now)


def test_an_unreadable_time_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="Cannot read the time 'soon'"):
        call_command("clearance", "replay", "--since", "soon", stdout=io.StringIO())
