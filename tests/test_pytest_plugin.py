"""The pytest plugin, run as users run it: a separate pytest process on a small test suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clearance import ANYONE, Action
from clearance.actions import Registry, registry
from clearance.testing import DecisionLog

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import pytest
from django.contrib.auth.models import Group, Permission, User

from clearance import InvariantViolation, model_invariant, where
from clearance.testing import assert_allowed, assert_denied
from tests.testapp.models import Document, Membership, Note, Tenant

pytestmark = pytest.mark.django_db

model_invariant(Note, "has_text", ~where(text=""), reason="A note says something.")


@pytest.fixture
def world():
    tenant = Tenant.objects.create(name="Acme")
    group = Group.objects.create(name="approvers")
    group.permissions.add(Permission.objects.get(codename="approve_document"))

    def user(name):
        created = User.objects.create_user(name)
        created.groups.add(group)
        Membership.objects.create(user=created, tenant=tenant)
        return User.objects.get(pk=created.pk)

    return tenant, user


def test_four_eyes(world, clearance_decisions):
    tenant, user = world
    alice, bob = user("alice"), user("bob")
    doc = Document.objects.create(tenant=tenant, owner=alice, state="submitted", amount=5)
    assert_denied(alice, "testapp.approve", doc, rule="four_eyes")
    assert_allowed(bob, "testapp.approve", doc)
    assert clearance_decisions.codes == ["policy.four_eyes", "allowed"]


def test_notes_say_something():
    Note.objects.create(text="hello")
    with pytest.raises(InvariantViolation):
        Note(text="").save()


def test_registry_fixture(clearance_registry):
    from clearance import ANYONE, Action

    Action("testapp.scribble", model=Note, permission=ANYONE)
    assert "testapp.scribble" in clearance_registry


def test_registry_fixture_restored():
    from clearance.actions import registry

    assert "testapp.scribble" not in registry
"""

EXPECTED_TABLE = """\
2 of 7 rules seen both passing and denying (apps: testapp)

action / model   gate             rule                      passed  denied  errors  status
testapp.approve  permission       testapp.approve_document       2       0       0  never denied
testapp.approve  policy           tenant_member                  2       0       0  never denied
testapp.approve  policy           four_eyes                      1       1       0  ok
testapp.approve  policy           submitted                      1       0       0  never denied
testapp.approve  invariant        within_limit                   1       0       0  never denied
testapp.read     policy           not_archived                   0       0       0  never evaluated
testapp.Note     model invariant  has_text                       1       1       0  ok
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CLEARANCE_SKIP_EXAMPLE", "1")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess(
        "-p", "clearance.pytest_plugin", "--ds=tests.settings", "-p", "no:cacheprovider", *args
    )


def test_the_suite_passes_without_options(suite: pytest.Pytester) -> None:
    result = run(suite)
    result.assert_outcomes(passed=4)
    assert "clearance rule coverage" not in result.stdout.str()


def test_coverage_report_gives_exact_counts_per_rule(suite: pytest.Pytester) -> None:
    result = run(suite, "--clearance-coverage", "--clearance-coverage-app=testapp")
    result.assert_outcomes(passed=4)
    assert result.ret == 0
    out = result.stdout.str()
    assert "clearance: rule coverage on" in out
    report = out.split("clearance rule coverage -", 1)[1].split("\n", 1)[1]
    assert report.startswith(EXPECTED_TABLE)
    assert "%" not in report.split("\n=")[0]


def test_coverage_threshold_fails_the_run_when_not_reached(suite: pytest.Pytester) -> None:
    # 2 of 7 is 28.57...%: 28.57 is reached, 28.58 is not (no rounding).
    only = "--clearance-coverage-app=testapp"
    reached = run(suite, only, "--clearance-coverage-fail-under=28.57")
    assert reached.ret == 0
    reached.stdout.fnmatch_lines(["Required rule coverage of 28.57% reached."])
    failed = run(suite, only, "--clearance-coverage-fail-under=28.58")
    failed.assert_outcomes(passed=4)
    assert failed.ret == 1
    failed.stdout.fnmatch_lines(
        [
            "2 of 7 rules seen both passing and denying (apps: testapp)",
            "FAIL: fewer than 28.58% of the rules were seen both passing and denying*",
        ]
    )


def test_negating_a_rule_makes_the_test_that_protects_it_fail(suite: pytest.Pytester) -> None:
    result = run(suite, "--clearance-negate=testapp.approve:four_eyes")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "clearance: negated testapp.approve:four_eyes" in out
    assert "FAILED test_suite.py::test_four_eyes" in out
    assert "but it was allowed." in out


NON_BOOL_SUITE = """
import pytest
from django.contrib.auth.models import User

from clearance import ANYONE, Action, authorize, predicate
from clearance.testing import assert_denied
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


def test_a_reason_string_instead_of_false(clearance_registry):
    action = Action("testapp.sloppy", model=Document, permission=ANYONE)

    @action.policy(reason="Only the owner.")
    def owner_only(ctx):
        return "not yours"

    user = User.objects.create_user("u")
    assert_denied(user, action, Document.objects.create(), rule="owner_only")


def test_booleans_only(clearance_registry):
    action = Action("testapp.tidy", model=Document, permission=ANYONE)
    action.policy("fine", predicate(lambda ctx: True), reason="Fine.")
    assert authorize(User.objects.create_user("v"), action, Document.objects.create())
"""


def test_predicates_returning_non_bools_are_warned_about(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CLEARANCE_SKIP_EXAMPLE", "1")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    pytester.makepyfile(test_non_bool=NON_BOOL_SUITE)
    result = run(pytester)
    result.assert_outcomes(passed=2, warnings=1)
    out = result.stdout.str()
    assert "NonBoolPredicateWarning" in out
    assert "owner_only" in out and "'not yours'" in out
    assert "test_booleans_only" not in out.split("warnings summary", 1)[1]


@pytest.mark.parametrize(
    ("option", "complaint"),
    [
        ("--clearance-negate=testapp.approve", "expected ACTION:RULE"),
        ("--clearance-negate=testapp.aprove:four_eyes", "no action named 'testapp.aprove'"),
        ("--clearance-coverage-fail-under=lots", "not a number"),
    ],
)
def test_bad_options_are_usage_errors(suite: pytest.Pytester, option: str, complaint: str) -> None:
    result = run(suite, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert complaint in result.stderr.str()


# -- the fixtures, in this very suite (the plugin is in the project's addopts) --------------------


@pytest.mark.django_db
def test_decisions_fixture_sees_this_tests_decisions(
    clearance_decisions: DecisionLog, alice: Any, bob: Any, make_doc: Any
) -> None:
    from clearance import authorize

    authorize(alice, "testapp.approve", make_doc(owner=alice))
    assert clearance_decisions.codes == ["policy.four_eyes"]


def test_registry_fixture_is_the_registry(clearance_registry: Registry) -> None:
    assert clearance_registry is registry
    Action("testapp.doodle", model="testapp.Note", permission=ANYONE)
    assert "testapp.doodle" in registry
