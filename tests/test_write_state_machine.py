"""Random sequences of writes through random APIs never leave a row that breaks an invariant.

A hypothesis state machine writes accounts, organisations, projects and shops through every
API the matrix test covers (instance saves with and without ``update_fields``, expressions,
stale copies of the same row saved one after the other, querysets, ``_base_manager``, related
managers, many-to-many changes, parent rows, deletes and their ``on_delete`` updates). After
each step, every invariant is compiled to SQL and no row in the database may fall outside it.
A refused step must name one of the declared invariants. Runs on SQLite and PostgreSQL (the
suite runs on both).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.db.models import F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from clearance import InvariantViolation
from tests.test_write_matrix import broken_rows, invariants  # noqa: F401 (the fixture)
from tests.writepaths.models import Account, Org, Person, Place, Project, Shop

pytestmark = pytest.mark.django_db

DECLARED = {"local", "foreign_key", "to_many", "many_to_many", "no_mallory", "inherited", "kept"}
STATES = ["open", "frozen", "locked"]


class Writes(RuleBasedStateMachine):
    """Writes through random APIs, each in its own savepoint; all of it rolled back at the end."""

    def __init__(self) -> None:
        super().__init__()
        self._block = transaction.atomic()
        self._block.__enter__()
        self.orgs = [Org.objects.create(name="acme"), Org.objects.create(name="idle")]
        self.people = [Person.objects.create(name=n) for n in ("alice", "bob", "mallory")]
        self.project = Project.objects.create()
        self.shop = Shop.objects.create(name="corner")
        self.refusals: list[str] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._block.__exit__(None, None, None)

    def attempt(self, write: Any) -> None:
        try:
            with transaction.atomic():
                write()
        except InvariantViolation as refused:
            assert refused.decision.rule in DECLARED, refused.decision
            self.refusals.append(refused.decision.rule or "")

    def account(self, index: int) -> Account | None:
        pks = list(Account.objects.order_by("pk").values_list("pk", flat=True))
        return Account.objects.get(pk=pks[index % len(pks)]) if pks else None

    # -- accounts ---------------------------------------------------------------------------------

    @rule(
        org=st.sampled_from([0, 1, None]),
        balance=st.integers(-3, 20),
        state=st.sampled_from(STATES),
        api=st.sampled_from(["create", "bulk_create", "reverse_create"]),
    )
    def create_account(self, org: int | None, balance: int, state: str, api: str) -> None:
        owner = self.orgs[org] if org is not None else None

        def write() -> None:
            if api == "create" or owner is None:
                Account.objects.create(org=owner, balance=balance, state=state)
            elif api == "bulk_create":
                Account.objects.bulk_create([Account(org=owner, balance=balance, state=state)])
            else:
                owner.accounts.create(balance=balance, state=state)

        self.attempt(write)

    @rule(
        index=st.integers(0, 20),
        balance=st.integers(-3, 20),
        state=st.sampled_from(STATES),
        api=st.sampled_from(["save", "update_fields", "expression", "update", "bulk_update"]),
    )
    def change_account(self, index: int, balance: int, state: str, api: str) -> None:
        account = self.account(index)
        if account is None:
            return

        def write() -> None:
            assert account is not None
            if api == "update":
                Account.objects.filter(pk=account.pk).update(balance=balance, state=state)
                return
            account.state = state
            account.balance = F("balance") + (balance - 10) if api == "expression" else balance
            if api == "update_fields":
                account.save(update_fields=["balance", "state"])
            elif api == "bulk_update":
                Account.objects.bulk_update([account], ["balance", "state"])
            else:
                account.save()

        self.attempt(write)

    @rule(index=st.integers(0, 20), balance=st.integers(-3, 20), state=st.sampled_from(STATES))
    def stale_copies(self, index: int, balance: int, state: str) -> None:
        """Two copies of one row: each saves one field, the second on a stale copy."""
        first, second = self.account(index), self.account(index)
        if first is None or second is None:
            return
        first.balance = balance
        second.state = state
        self.attempt(lambda: first.save(update_fields=["balance"]))
        self.attempt(lambda: second.save(update_fields=["state"]))

    @rule(index=st.integers(0, 20), org=st.sampled_from([0, 1]), add=st.booleans())
    def move_account(self, index: int, org: int, add: bool) -> None:
        account = self.account(index)
        if account is None:
            return
        owner = self.orgs[org]
        if add:
            self.attempt(lambda: owner.accounts.add(account))
        else:
            self.attempt(lambda: Account._base_manager.filter(pk=account.pk).update(org=owner))

    @rule(index=st.integers(0, 20), queryset=st.booleans())
    def delete_account(self, index: int, queryset: bool) -> None:
        account = self.account(index)
        if account is None:
            return
        if queryset:
            self.attempt(lambda: Account.objects.filter(pk=account.pk).delete())
        else:
            self.attempt(account.delete)

    # -- organisations ----------------------------------------------------------------------------

    @rule(
        org=st.sampled_from([0, 1]), active=st.booleans(), api=st.sampled_from(["save", "update"])
    )
    def toggle_org(self, org: int, active: bool, api: str) -> None:
        target = Org.objects.get(pk=self.orgs[org].pk)
        if api == "save":
            target.active = active
            self.attempt(target.save)
        else:
            self.attempt(lambda: Org.objects.filter(pk=target.pk).update(active=active))

    # -- projects ---------------------------------------------------------------------------------

    @rule(
        person=st.integers(0, 2),
        api=st.sampled_from(["add", "reverse_add", "remove", "clear", "reverse_clear"]),
    )
    def change_members(self, person: int, api: str) -> None:
        who = self.people[person]
        project = self.project
        writes = {
            "add": lambda: project.members.add(who),
            "reverse_add": lambda: who.projects.add(project),
            "remove": lambda: project.members.remove(who),
            "clear": project.members.clear,
            "reverse_clear": who.projects.clear,
        }
        self.attempt(writes[api])

    @rule(state=st.sampled_from(["draft", "active"]), api=st.sampled_from(["save", "update"]))
    def project_state(self, state: str, api: str) -> None:
        project = Project.objects.get(pk=self.project.pk)
        if api == "save":
            project.state = state
            self.attempt(project.save)
        else:
            self.attempt(lambda: Project.objects.filter(pk=project.pk).update(state=state))

    # -- the shop and its parent row --------------------------------------------------------------

    @rule(
        name=st.sampled_from(["", "corner", "market"]),
        api=st.sampled_from(["child", "parent", "parent_update"]),
    )
    def rename_shop(self, name: str, api: str) -> None:
        pk = self.shop.pk
        if api == "child":
            shop = Shop.objects.get(pk=pk)
            shop.name = name
            self.attempt(shop.save)
        elif api == "parent":
            place = Place.objects.get(pk=pk)
            place.name = name
            self.attempt(place.save)
        else:
            self.attempt(lambda: Place.objects.filter(pk=pk).update(name=name))

    # -- the law ----------------------------------------------------------------------------------

    @invariant()
    def no_committed_row_breaks_an_invariant(self) -> None:
        assert broken_rows() == {}


@pytest.mark.usefixtures("invariants")
def test_random_writes_never_leave_a_broken_row() -> None:
    run_state_machine_as_test(
        Writes,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
