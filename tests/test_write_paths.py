"""Model invariants hold on the row that is written, whichever way Django writes it.

One test (or a few) per way a row used to slip past its invariants: stale instances saved with
``update_fields``, expressions as field values, ``on_delete`` updates, ``_base_manager`` and
related-manager writes, many-to-many changes, parent rows of child models, ``perform()``'s
re-check, and refusals that named the wrong rule. Each assertion reads the database.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Value

from clearance import (
    Action,
    BulkInvariantViolation,
    GuardedQuerySet,
    InvariantViolation,
    Layer,
    constraints_for,
    model_invariant,
    perform,
    where,
)
from clearance.constraints import missing_constraints
from clearance.testing import DecisionLog
from tests.testapp.models import Document, Tenant
from tests.writepaths.models import (
    RETIRED_BADGE,
    Account,
    Badge,
    Card,
    Grant,
    Org,
    Person,
    Place,
    Project,
    Seat,
    Shop,
)

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


def test_stale_instance_saved_with_update_fields_is_checked_as_written(
    closed_settled: Any, decisions: DecisionLog
) -> None:
    account = Account.objects.create(balance=0)
    first = Account.objects.get(pk=account.pk)
    second = Account.objects.get(pk=account.pk)  # still thinks the balance is 0
    first.balance = 50
    first.save(update_fields=["balance"])
    second.state = "closed"
    with pytest.raises(InvariantViolation) as caught:
        second.save(update_fields=["state"])  # the row would be closed with 50 on it
    assert caught.value.decision.rule == "closed_settled"
    assert caught.value.decision.resource is not None
    assert caught.value.decision.resource.pk == account.pk
    assert stored(account) == ("open", 50)
    assert decisions.denied[-1].rule == "closed_settled"


def test_update_fields_that_keep_the_row_valid_are_saved(closed_settled: Any) -> None:
    account = Account.objects.create(balance=0)
    stale = Account.objects.get(pk=account.pk)
    Account.objects.filter(pk=account.pk).update(state="frozen")
    stale.balance = 30  # stale in memory: "open"; the row says "frozen", and that is fine
    stale.save(update_fields=["balance"])
    assert stored(account) == ("frozen", 30)


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


def test_a_value_expression_is_judged_by_what_it_writes(never_closed: Any) -> None:
    account = Account.objects.create()
    account.state = Value("closed")
    with pytest.raises(InvariantViolation) as caught:
        account.save()
    assert caught.value.decision.rule == "never_closed"
    assert stored(account) == ("open", 0)


def test_an_f_expression_that_breaks_an_invariant_is_refused(non_negative: Any) -> None:
    account = Account.objects.create(balance=50)
    account.balance = F("balance") - 60
    with pytest.raises(InvariantViolation) as caught:
        account.save()
    assert caught.value.decision.rule == "non_negative"
    assert caught.value.decision.error is None  # decided, not a rule that raised
    assert stored(account) == ("open", 50)


def test_an_f_expression_that_keeps_the_invariant_is_saved(non_negative: Any) -> None:
    account = Account.objects.create(balance=50)
    account.balance = F("balance") - 10
    account.save(update_fields=["balance"])
    assert stored(account) == ("open", 40)


# -- on_delete: SET_NULL, SET_DEFAULT, SET(...) ---------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [(Account, "org"), (Card, "home"), (Card, "spare")],
    ids=["SET_NULL", "SET_DEFAULT", "SET"],
)
def test_on_delete_updates_are_verified(fresh_registry: Any, model: Any, field: str) -> None:
    model_invariant(model, f"has_{field}", where(**{f"{field}__isnull": False}))
    org = Org.objects.create(name="acme")
    other = Org.objects.create(name="globex")
    values = {name: org if name == field else other for name in ("org", "home", "spare")}
    row = model.objects.create(**{k: v for k, v in values.items() if hasattr(model, k)})
    with pytest.raises(InvariantViolation) as caught:
        org.delete()
    assert caught.value.decision.rule == f"has_{field}"
    assert Org.objects.filter(pk=org.pk).exists()
    assert getattr(model.objects.get(pk=row.pk), f"{field}_id") == org.pk


def test_on_delete_update_that_keeps_the_invariants_goes_through(fresh_registry: Any) -> None:
    model_invariant(Account, "open_or_orgless", where(state="open") | where(org__isnull=False))
    org = Org.objects.create(name="acme")
    account = Account.objects.create(org=org, state="open")
    org.delete()
    assert Account.objects.get(pk=account.pk).org_id is None


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


@pytest.fixture
def staffed_orgs(fresh_registry: Any) -> None:
    model_invariant(
        Org,
        "active_has_accounts",
        ~where(active=True) | where(accounts__isnull=False),
        reason="An active organisation has an account.",
    )


def active_org_with_an_account(db: str = "default") -> tuple[Org, Account]:
    org = Org.objects.using(db).create(name="acme", active=False)
    account = Account.objects.using(db).create(org=org)
    Org.objects.using(db).filter(pk=org.pk).update(active=True)
    return org, account


def test_an_update_that_takes_the_last_account_from_an_org_is_refused(staffed_orgs: None) -> None:
    # The org is no longer reached from the account after the write: it is verified all the same.
    org, account = active_org_with_an_account()
    with pytest.raises(BulkInvariantViolation) as caught:
        Account.objects.filter(pk=account.pk).update(org=None)
    assert caught.value.decision.rule == "active_has_accounts"
    assert caught.value.pks == (org.pk,)
    assert Account.objects.get(pk=account.pk).org_id == org.pk


@pytest.mark.django_db(databases=["default", "other"])
def test_the_rows_an_update_on_another_database_leaves_or_reaches_are_verified_there(
    staffed_orgs: None,
) -> None:
    model_invariant(Org, "no_frozen", ~where(accounts__state="frozen"))
    org, account = active_org_with_an_account("other")
    accounts = Account.objects.using("other").filter(pk=account.pk)
    with pytest.raises(BulkInvariantViolation) as left:
        accounts.update(org=None)
    assert left.value.decision.rule == "active_has_accounts"
    with pytest.raises(BulkInvariantViolation) as reached:
        accounts.update(state="frozen")
    assert reached.value.decision.rule == "no_frozen"
    assert reached.value.pks == (org.pk,)
    with pytest.raises(BulkInvariantViolation) as created:
        Account.objects.using("other").bulk_create([Account(org=org, state="frozen")])
    assert created.value.decision.rule == "no_frozen"
    assert Account.objects.using("other").get().state == "open"


@pytest.mark.django_db(databases=["default", "other"])
def test_a_bulk_update_on_another_database_ignores_what_its_keys_reach_in_the_default_one(
    fresh_registry: Any,
) -> None:
    # The same keys in both databases: org 1 of "other" already had no account when the
    # invariant came, and only the default database's account 1 points to an org 1.
    here = Org.objects.create(name="here")
    Account.objects.create(pk=1, org=here)
    Org.objects.using("other").create(pk=here.pk, name="empty")
    there = Org.objects.using("other").create(name="there")
    account = Account.objects.using("other").create(pk=1, org=there)
    model_invariant(Org, "active_has_accounts", ~where(active=True) | where(accounts__isnull=False))
    account.balance = 10
    assert Account.objects.using("other").bulk_update([account], ["balance"]) == 1
    assert Account.objects.using("other").get(pk=1).balance == 10


def test_a_bulk_update_that_takes_the_last_account_from_an_org_is_refused(
    staffed_orgs: None,
) -> None:
    org, account = active_org_with_an_account()
    account.org = None
    with pytest.raises(BulkInvariantViolation) as caught:
        Account.objects.bulk_update([account], ["org"])
    assert caught.value.decision.rule == "active_has_accounts"
    assert Account.objects.get(pk=account.pk).org_id == org.pk


# -- a relation to the model itself ----------------------------------------------------------------


@pytest.fixture
def live_parents(fresh_registry: Any) -> Any:
    return model_invariant(
        Document,
        "parent_not_archived",
        where(parent__isnull=True) | ~where(parent__state="archived"),
        reason="A document's parent is not archived.",
    )


def test_archiving_a_parent_row_is_verified_for_its_children(
    live_parents: Any, tenant: Tenant
) -> None:
    # The children read the parent row: writing it verifies them, as for another model's rows.
    parent = Document.objects.create(tenant=tenant, state="draft")
    child = Document.objects.create(tenant=tenant, state="draft", parent=parent)
    with pytest.raises(BulkInvariantViolation) as caught:
        GuardedQuerySet(model=Document).filter(pk=parent.pk).update(state="archived")
    assert caught.value.decision.rule == "parent_not_archived"
    assert caught.value.pks == (child.pk,)
    parent.state = "archived"
    with pytest.raises(InvariantViolation) as refused, transaction.atomic():
        parent.save()
    assert refused.value.decision.rule == "parent_not_archived"
    assert Document.objects.get(pk=parent.pk).state == "draft"
    Document.objects.filter(pk=child.pk).update(parent=None)
    parent.save()
    assert Document.objects.get(pk=parent.pk).state == "archived"


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


# Django changes a many-to-many relation inside a block of its own: a refusal marks the
# surrounding transaction for rollback unless the call is wrapped in atomic(), as here.


def members(project: Project) -> set[str]:
    return set(Person.objects.filter(projects=project).values_list("name", flat=True))


def test_many_to_many_add_is_verified_from_both_sides(staffed: Any) -> None:
    project = Project.objects.create()
    mallory = Person.objects.create(name="mallory")
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        project.members.add(mallory)
    assert caught.value.decision.rule == "no_mallory"
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        mallory.projects.add(project)
    assert caught.value.decision.rule == "no_mallory"
    assert members(project) == set()


def test_many_to_many_remove_set_and_clear_are_verified(staffed: Any) -> None:
    alice = Person.objects.create(name="alice")
    bob = Person.objects.create(name="bob")
    project = Project.objects.create()
    project.members.add(alice)
    Project.objects.filter(pk=project.pk).update(state="active")
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        project.members.remove(alice)
    assert caught.value.decision.rule == "active_is_staffed"
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        project.members.clear()
    assert caught.value.decision.rule == "active_is_staffed"
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        alice.projects.clear()
    assert caught.value.decision.rule == "active_is_staffed"
    with pytest.raises(InvariantViolation) as caught, transaction.atomic():
        project.members.set([])
    assert caught.value.decision.rule == "active_is_staffed"
    assert members(project) == {"alice"}
    # set() removes before it adds, so a relation that must never be empty is changed by
    # adding first: every step keeps the invariant.
    project.members.add(bob)
    project.members.remove(alice)
    assert members(project) == {"bob"}


# -- multi-table inheritance: the parent's row ----------------------------------------------------


@pytest.fixture
def named_shops(fresh_registry: Any) -> Any:
    return model_invariant(Shop, "named", ~where(name=""), reason="A shop has a name.")


def test_saving_the_parent_row_is_verified_for_the_child(named_shops: Any) -> None:
    shop = Shop.objects.create(name="corner")
    place = Place.objects.get(pk=shop.pk)
    place.name = ""
    with pytest.raises(InvariantViolation) as caught:
        place.save()
    assert caught.value.decision.rule == "named"
    assert Shop.objects.get(pk=shop.pk).name == "corner"


def test_updating_parent_rows_is_verified_for_the_children(named_shops: Any) -> None:
    shop = Shop.objects.create(name="corner")
    lone = Place.objects.create(name="field")
    with pytest.raises(BulkInvariantViolation) as caught:
        Place.objects.update(name="")
    assert caught.value.decision.rule == "named"
    assert caught.value.pks == (shop.pk,)
    assert Shop.objects.get(pk=shop.pk).name == "corner"
    Place.objects.filter(pk=lone.pk).update(name="")  # a place that is no shop
    assert Place.objects.get(pk=lone.pk).name == ""


# -- perform(): the re-check reads the relations afresh -------------------------------------------


def test_perform_recheck_reads_relations_after_the_body(
    fresh_registry: Any, alice: User, bob: User, make_doc: Any
) -> None:
    from tests.testapp.models import Document

    act = Action("testapp.watch", model=Document, permission="testapp.approve_document")
    act.policy("member", where(tenant__memberships__user=bob) | where(watchers=bob))
    act.invariant("watched", where(watchers__isnull=False), reason="Someone watches it.")
    doc = make_doc(owner=bob)
    doc.watchers.add(bob)
    with pytest.raises(InvariantViolation) as caught, perform(alice, act, doc) as locked:
        locked.watchers.clear()
    assert caught.value.decision.rule == "watched"
    assert caught.value.decision.performed is False
    assert list(Document.objects.get(pk=doc.pk).watchers.all()) == [bob]


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
    assert caught.value.decision.action == "writepaths.Seat.save"
    assert caught.value.pks == (seat.pk,)
    assert Seat.objects.get(pk=seat.pk).org_id is not None


@pytest.mark.django_db(databases=["default", "other"])
def test_a_constraint_refusal_on_another_database_names_that_databases_rows(
    fresh_registry: Any,
) -> None:
    model_invariant(Seat, "seated", where(org__isnull=False), reason="A seat has an org.")
    org = Org.objects.using("other").create(name="acme")
    seats = [Seat.objects.using("other").create(org=org) for _ in range(2)]
    with pytest.raises(BulkInvariantViolation) as caught:
        Seat.objects.using("other").filter(pk=seats[1].pk).update(org=None)
    assert caught.value.decision.rule == "seated"
    assert caught.value.pks == (seats[1].pk,)
    assert "(1 row: " in caught.value.decision.reason
    assert list(Seat.objects.using("other").filter(org__isnull=True)) == []


def test_a_constraint_refusal_on_a_key_to_a_uuid_row_names_the_rows_that_point_to_it(
    fresh_registry: Any,
) -> None:
    # The rows a refused update would break are found by reading the new values back from
    # the database: a foreign key to a UUID must come back as a UUID (SQLite stores text) for
    # the rule to recognise the retired badge.
    model_invariant(Grant, "not_retired", ~where(badge=RETIRED_BADGE), reason="Not retired.")
    retired, live = Badge.objects.create(id=RETIRED_BADGE), Badge.objects.create(name="live")
    grants = [Grant.objects.create(badge=live), Grant.objects.create(badge=None)]
    for new in (retired, RETIRED_BADGE):
        with pytest.raises(BulkInvariantViolation) as caught:
            Grant.objects.filter(pk=grants[0].pk).update(badge=new)
        assert caught.value.decision.rule == "not_retired"
        assert caught.value.pks == (grants[0].pk,)
    assert Grant.objects.filter(badge=live).count() == 1


# -- the caller's transaction stays usable --------------------------------------------------------


def test_refused_writes_leave_the_callers_transaction_usable(non_negative: Any) -> None:
    with transaction.atomic():
        account = Account.objects.create(balance=5)
        account.balance = F("balance") - 10
        with pytest.raises(InvariantViolation) as refused:
            account.save()
        assert refused.value.decision.rule == "non_negative"
        assert Account.objects.get(pk=account.pk).balance == 5
        with pytest.raises(BulkInvariantViolation) as refused:
            GuardedQuerySet(model=Account).update(balance=-1)
        assert refused.value.decision.rule == "non_negative"
        assert Account.objects.get(pk=account.pk).balance == 5


def test_a_refused_creation_leaves_the_instance_unsaved(never_closed: Any) -> None:
    account = Account(state=Value("closed"))
    with pytest.raises(InvariantViolation) as caught:
        account.save()
    assert caught.value.decision.layer is Layer.INVARIANT
    assert caught.value.decision.rule == "never_closed"
    assert account.pk is None and account._state.adding
    assert not Account.objects.exists()


# -- abstract and swapped models -------------------------------------------------------------------


def test_an_abstract_models_invariant_binds_its_concrete_subclasses(fresh_registry: Any) -> None:
    from django.contrib.auth.models import AbstractUser

    model_invariant(AbstractUser, "no_root", ~where(username="root"), reason="Nobody is root.")
    with pytest.raises(InvariantViolation) as caught:
        User.objects.create_user("root")
    assert caught.value.decision.rule == "no_root"
    assert caught.value.decision.action == "auth.User.save"
    assert not User.objects.filter(username="root").exists()
    User.objects.create_user("groot")
    assert User.objects.filter(username="groot").exists()


def test_an_invariant_on_a_swapped_model_is_refused(fresh_registry: Any, settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from tests.writepaths.models import Gadget

    settings.WRITEPATHS_GADGET = "writepaths.Org"
    with pytest.raises(ImproperlyConfigured, match=r"swapped for writepaths\.Org"):
        model_invariant(Gadget, "named", ~where(name=""))


# -- what a plain save costs -----------------------------------------------------------------------


def test_a_plain_save_with_local_invariants_costs_no_extra_query(
    closed_settled: Any, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        account = Account.objects.create(balance=0)
    account.state = "closed"
    with django_assert_num_queries(1):
        account.save()
    assert stored(account) == ("closed", 0)


def test_saving_a_row_only_on_delete_reaches_costs_no_extra_query(
    closed_settled: Any, django_assert_num_queries: Any
) -> None:
    org = Org.objects.create(name="acme")
    Account.objects.create(org=org)  # Account.org is SET_NULL: deleting the org concerns it
    org.name = "acme inc"
    with django_assert_num_queries(1):
        org.save()


def test_deleting_a_row_no_invariant_reads_through_costs_no_extra_query(
    fresh_registry: Any, tenant: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.testapp.models import Document

    def delete_an_owner() -> int:
        owner = User.objects.create_user(f"owner{User.objects.count()}")
        Document.objects.create(tenant=tenant, owner=owner, amount=5)
        with CaptureQueriesContext(connection) as queries:
            owner.delete()  # Document.owner is SET_NULL
        return len(queries)

    plain = delete_an_owner()
    model_invariant(Document, "positive", where(amount__gt=0))  # does not read the owner
    assert delete_an_owner() == plain
    model_invariant(Document, "owned", where(owner__isnull=False))  # reads it: verified
    with pytest.raises(InvariantViolation) as refused:
        delete_an_owner()
    assert refused.value.decision.rule == "owned"
