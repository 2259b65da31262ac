"""Model invariants hold on the row that is written, whichever way Django writes it.

One test (or a few) per way a row used to slip past its invariants: stale instances saved with
``update_fields``, expressions as field values, ``on_delete`` updates, ``_base_manager`` and
related-manager writes, many-to-many changes, parent rows of child models, ``perform()``'s
re-check, and refusals that named the wrong rule. Each assertion reads the database.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from clearance import (
    BulkInvariantViolation,
    InvariantViolation,
    constraints_for,
    model_invariant,
    where,
)
from clearance.constraints import missing_constraints
from clearance.testing import DecisionLog
from tests.writepaths.models import Account, Org, Person, Project, Seat, Shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(clearance_decisions: DecisionLog) -> DecisionLog:
    return clearance_decisions


def stored(account: Account) -> tuple[str, int]:
    row = Account.objects.get(pk=account.pk)
    return row.state, row.balance


# -- save(update_fields=...) on a stale instance --------------------------------------------------


@pytest.fixture
def closed_settled(fresh_registry: Any) -> Any:
    return model_invariant(
        Account,
        "closed_settled",
        ~where(state="closed") | where(balance=0),
        reason="A closed account has a zero balance.",
    )


# -- expressions as field values ------------------------------------------------------------------


@pytest.fixture
def never_closed(fresh_registry: Any) -> Any:
    return model_invariant(
        Account, "never_closed", ~where(state="closed"), reason="Accounts are never closed."
    )


@pytest.fixture
def non_negative(fresh_registry: Any) -> Any:
    return model_invariant(
        Account, "non_negative", where(balance__gte=0), reason="No account is overdrawn."
    )


# -- on_delete: SET_NULL, SET_DEFAULT, SET(...) ---------------------------------------------------


# -- _base_manager and reverse foreign keys -------------------------------------------------------


@pytest.fixture
def no_orphans(fresh_registry: Any) -> Any:
    return model_invariant(
        Account,
        "orphans_stay_alone",
        ~where(state="orphan", org__isnull=False),
        reason="An orphan account belongs to no organisation.",
    )


def test_reverse_foreign_key_add_is_verified(no_orphans: Any) -> None:
    org = Org.objects.create(name="acme")
    orphan = Account.objects.create(state="orphan")
    with pytest.raises(InvariantViolation) as caught:
        org.accounts.add(orphan)  # Django writes this through Account._base_manager
    assert caught.value.decision.rule == "orphans_stay_alone"
    assert Account.objects.get(pk=orphan.pk).org_id is None


def test_reverse_foreign_key_set_is_verified(no_orphans: Any) -> None:
    org = Org.objects.create(name="acme")
    fine = Account.objects.create(state="open")
    orphan = Account.objects.create(state="orphan")
    # Django's related managers write inside a block of their own: wrap them in atomic() to
    # keep using the transaction after a refusal.
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        org.accounts.set([fine, orphan])
    assert caught.value.decision.rule == "orphans_stay_alone"
    assert list(Account.objects.filter(org=org)) == []


def test_base_manager_update_is_verified(no_orphans: Any) -> None:
    org = Org.objects.create(name="acme")
    orphan = Account.objects.create(state="orphan")
    with pytest.raises(BulkInvariantViolation) as caught:
        Account._base_manager.filter(pk=orphan.pk).update(org=org)
    assert caught.value.decision.rule == "orphans_stay_alone"
    assert caught.value.pks == (orphan.pk,)
    assert Account.objects.get(pk=orphan.pk).org_id is None


def test_reverse_foreign_key_remove_is_verified(fresh_registry: Any) -> None:
    model_invariant(Account, "has_org", where(org__isnull=False))
    org = Org.objects.create(name="acme")
    account = Account.objects.create(org=org)
    with pytest.raises(InvariantViolation) as caught:
        org.accounts.remove(account)
    assert caught.value.decision.rule == "has_org"
    assert Account.objects.get(pk=account.pk).org_id == org.pk


# -- many-to-many ---------------------------------------------------------------------------------


@pytest.fixture
def staffed(fresh_registry: Any) -> Any:
    model_invariant(
        Project,
        "active_is_staffed",
        ~where(state="active") | where(members__isnull=False),
        reason="An active project has at least one member.",
    )
    return model_invariant(
        Project, "no_mallory", ~where(members__name="mallory"), reason="Mallory joins nothing."
    )


def members(project: Project) -> set[str]:
    return set(Person.objects.filter(projects=project).values_list("name", flat=True))


# -- multi-table inheritance: the parent's row ----------------------------------------------------


@pytest.fixture
def named_shops(fresh_registry: Any) -> Any:
    return model_invariant(Shop, "named", ~where(name=""), reason="A shop has a name.")


# -- perform(): the re-check reads the relations afresh -------------------------------------------


# -- refusals name the rule that broke ------------------------------------------------------------


@pytest.fixture
def two_rules(fresh_registry: Any) -> Any:
    model_invariant(Account, "non_negative", where(balance__gte=0), reason="Not overdrawn.")
    return model_invariant(
        Account, "not_frozen", ~where(state="frozen"), reason="Accounts are never frozen."
    )


def test_bulk_refusal_names_only_the_broken_invariant(
    two_rules: Any, decisions: DecisionLog
) -> None:
    account = Account.objects.create(balance=5)
    with pytest.raises(BulkInvariantViolation) as caught:
        Account.objects.update(state="frozen")
    decision = caught.value.decision
    assert decision.rule == "not_frozen"
    assert caught.value.violations == {"not_frozen": [account.pk]}
    assert decision.reason == f"Accounts are never frozen. (1 row: {account.pk})"
    assert decision.resource is not None and decision.resource.pk == account.pk
    outcome = {entry.rule: entry.outcome for entry in decision.trace}
    assert outcome == {"non_negative": True, "not_frozen": False}
    assert decisions.denied[-1].rule == "not_frozen"


def test_delete_refusal_names_only_the_broken_invariant(fresh_registry: Any) -> None:
    model_invariant(Account, "not_open", ~where(state="open"), on=("delete",))
    model_invariant(Account, "not_rich", where(balance__lt=100), on=("delete",))
    account = Account.objects.create(state="closed", balance=500)
    with pytest.raises(InvariantViolation) as caught:
        account.delete()
    assert caught.value.decision.rule == "not_rich"
    outcome = {entry.rule: entry.outcome for entry in caught.value.decision.trace}
    assert outcome == {"not_open": True, "not_rich": False}
    with pytest.raises(BulkInvariantViolation) as bulk:
        Account.objects.all().delete()
    assert bulk.value.decision.rule == "not_rich"
    assert bulk.value.violations == {"not_rich": [account.pk]}
    assert Account.objects.filter(pk=account.pk).exists()


# -- a CHECK on a foreign key being set -----------------------------------------------------------


def test_isnull_on_a_foreign_key_is_a_constraint_and_names_the_rule(fresh_registry: Any) -> None:
    model_invariant(Seat, "seated", where(org__isnull=False), reason="A seat has an org.")
    assert [c.name for c in constraints_for(Seat)] == ["clearance_seat_seated"]
    assert missing_constraints(Seat) == []
    seat = Seat.objects.create(org=Org.objects.create(name="acme"))
    try:
        with pytest.raises(BulkInvariantViolation) as caught:
            Seat.objects.update(org=None)
    except IntegrityError:  # pragma: no cover - what used to leak
        pytest.fail("the database's refusal leaked as a raw IntegrityError")
    assert caught.value.decision.rule == "seated"
    assert caught.value.pks == (seat.pk,)
    assert Seat.objects.get(pk=seat.pk).org_id is not None


# -- the caller's transaction stays usable --------------------------------------------------------
