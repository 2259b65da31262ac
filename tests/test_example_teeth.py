"""The example's authorization tests have teeth: negate any one rule and they fail."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from clearance.actions import registry
from clearance.testing import assert_matrix, negate_rule

ROOT = Path(__file__).resolve().parent.parent
AUTHORIZATION_TESTS = "example/invoices/tests/test_authorization.py"

pytestmark = pytest.mark.skipif(
    not apps.is_installed("invoices"), reason="the example is not installed"
)


def example_rules() -> list[tuple[str, str]]:
    if not apps.is_installed("invoices"):
        return []
    return [
        (action.name, rule.name)
        for action in registry.actions
        if action.app_label == "invoices"
        for rule in action.rules
    ]


def run_authorization_tests(*options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            AUTHORIZATION_TESTS,
            "--ds=tests.settings",
            "-p",
            "no:cacheprovider",
            *options,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_negating_four_eyes_fails_the_example_tests() -> None:
    intact = run_authorization_tests()
    assert intact.returncode == 0, intact.stdout + intact.stderr

    negated = run_authorization_tests("--clearance-negate=invoices.approve:four_eyes")
    out = negated.stdout
    assert negated.returncode == 1, out + negated.stderr
    assert "clearance: negated invoices.approve:four_eyes" in out
    assert "FAILED example/invoices/tests/test_authorization.py::test_authorization_table" in out
    assert (
        "FAILED example/invoices/tests/test_authorization.py::"
        "test_nobody_approves_their_own_invoice" in out
    )
    assert "expected denied by policy.four_eyes, but it was allowed." in out


@pytest.mark.django_db(databases="__all__")
@pytest.mark.parametrize(("action", "rule"), example_rules())
def test_the_table_catches_every_negated_rule(action: str, rule: str) -> None:
    from invoices.tests.test_authorization import expectations

    call_command("seed_demo", stdout=io.StringIO())
    users = get_user_model()._default_manager
    from invoices.models import Invoice

    def user(name: str) -> object:
        return users.get(username=name)

    def invoice(number: str) -> Invoice:
        return Invoice.objects.get(number=number)

    assert_matrix(expectations(user, invoice))  # type: ignore[arg-type]
    with negate_rule(action, rule), pytest.raises(AssertionError) as info:
        assert_matrix(expectations(user, invoice))  # type: ignore[arg-type]
    assert f"{action} " in str(info.value)
