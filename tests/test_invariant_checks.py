"""System checks for model invariants: where they bind nothing, and write paths they cannot see."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import AbstractUser
from django.core import checks
from django.core.checks import CheckMessage

from clearance import ACTOR, model_invariant, predicate, where
from tests.testapp.models import Document
from tests.writepaths.models import Account, Gadget, Place, Shop, Stamped

NEW_IDS = ["clearance.E010", "clearance.W010", "clearance.W011", "clearance.W012"]


def run(app_labels: list[str] | None = None) -> list[CheckMessage]:
    configs = [apps.get_app_config(label) for label in app_labels] if app_labels else None
    return checks.run_checks(app_configs=configs, tags=["clearance"])


def by_id(check_id: str, app_labels: list[str] | None = None) -> list[CheckMessage]:
    return [m for m in run(app_labels) if m.id == check_id]


@pytest.mark.skipif(not apps.is_installed("invoices"), reason="the example is not installed")
@pytest.mark.parametrize("check_id", NEW_IDS)
def test_the_example_project_is_silent(check_id: str) -> None:
    assert by_id(check_id, ["invoices"]) == []


def test_invariant_on_a_swapped_model_is_an_error(fresh_registry: Any, settings: Any) -> None:
    model_invariant(Gadget, "named", ~where(name=""))
    assert by_id("clearance.E010") == []
    settings.WRITEPATHS_GADGET = "writepaths.Org"
    (error,) = by_id("clearance.E010")
    assert error.obj is Gadget
    assert "'named'" in error.msg and "swapped for writepaths.Org" in error.msg


def test_invariant_on_an_abstract_model_nothing_inherits_is_a_warning(fresh_registry: Any) -> None:
    model_invariant(Stamped, "stamped", ~where(stamp=""))
    (warning,) = by_id("clearance.W010")
    assert warning.obj is Stamped and "'stamped'" in warning.msg
    model_invariant(AbstractUser, "no_root", ~where(username="root"))
    assert [m.obj for m in by_id("clearance.W010")] == [Stamped]  # auth.User inherits


def test_lookups_of_an_abstract_models_invariant_are_resolved_on_its_subclasses(
    fresh_registry: Any,
) -> None:
    model_invariant(AbstractUser, "typo", where(usernme="root"))
    (error,) = [m for m in by_id("clearance.E003") if "typo" in m.msg]
    assert "auth.User" in error.msg and "usernme" in error.msg


def test_unguarded_managers_of_a_model_with_invariants_are_named(fresh_registry: Any) -> None:
    model_invariant(Document, "positive", where(amount__gt=0) | where(owner__isnull=True))
    (warning,) = [m for m in by_id("clearance.W011") if m.obj is Document]
    assert "testapp.Document has the model invariants 'positive'" in warning.msg
    assert "_default_manager and _base_manager are not a GuardedQuerySet" in warning.msg


def test_guarded_managers_and_constraints_silence_it(fresh_registry: Any) -> None:
    model_invariant(Account, "non_negative", where(balance__gte=0))
    assert [m for m in by_id("clearance.W011") if m.obj is Account] == []


def test_unguarded_rows_that_other_invariants_read_are_named(fresh_registry: Any) -> None:
    from django.contrib.auth.models import User

    model_invariant(Document, "owner_active", where(owner__is_active=True))
    (warning,) = [m for m in by_id("clearance.W011") if m.obj is User]
    assert "has rows that the invariants of testapp.Document read" in warning.msg
    model_invariant(Shop, "named", ~where(name=""))
    assert [m for m in by_id("clearance.W011") if m.obj is Place] == []  # Place is guarded


def test_an_invariant_that_reads_who_is_asking_is_a_policy_in_disguise(fresh_registry: Any) -> None:
    @predicate
    def staff_only(ctx: Any) -> bool:
        return bool(ctx.actor.is_staff)

    @predicate
    def from_the_office(ctx: Any) -> bool:
        return ctx.request is not None

    model_invariant(Document, "mine", where(owner=ACTOR))
    model_invariant(Document, "staff", staff_only)
    model_invariant(Document, "office", from_the_office)
    model_invariant(Document, "positive", where(amount__gt=0))
    warnings = by_id("clearance.W012")
    assert sorted(m.msg.split("'")[1] for m in warnings) == ["mine", "office", "staff"]
    assert "policy in disguise" in warnings[0].msg
