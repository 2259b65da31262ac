"""Every write API against every shape of model invariant, judged by querying the database.

Six invariant shapes are declared at once: a local column, a foreign key read into another
table, a to-many relation (reverse foreign key), a many-to-many relation, a multi-table child
reading its parent's columns, and a foreign key whose ``on_delete`` updates it; plus a delete
invariant. Each scenario makes one write through one API. Afterwards either the write was
refused naming the invariant it would break, or every row in the database satisfies every
invariant: each invariant is compiled to SQL (as ``authorized()`` compiles rules) and no row
may fall outside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from clearance import InvariantViolation, model_invariant, where
from clearance.actions import registry
from clearance.rules import Context
from tests.writepaths.models import Account, Card, Org, Person, Place, Project, Shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def invariants(fresh_registry: Any) -> None:
    """One invariant per shape (rule names say which)."""
    model_invariant(Account, "local", where(balance__gte=0), reason="No account is overdrawn.")
    model_invariant(
        Account,
        "foreign_key",
        where(org__isnull=True) | where(org__active=True),
        reason="An account belongs to no inactive organisation.",
    )
    model_invariant(
        Org, "to_many", ~where(accounts__state="frozen"), reason="No org has a frozen account."
    )
    model_invariant(
        Project,
        "many_to_many",
        ~where(state="active") | where(members__isnull=False),
        reason="An active project has a member.",
    )
    model_invariant(Project, "no_mallory", ~where(members__name="mallory"))
    model_invariant(Shop, "inherited", ~where(name=""), reason="A shop has a name.")
    model_invariant(Card, "on_delete", where(home__isnull=False), reason="A card has a home.")
    model_invariant(
        Account, "kept", ~where(state="locked"), reason="Locked accounts stay.", on=("delete",)
    )


def broken_rows() -> dict[str, list[Any]]:
    """Every save invariant, compiled to SQL: the rows of its model that break it."""
    ctx = Context(None, None, now=timezone.now())
    broken: dict[str, list[Any]] = {}
    for model, found in registry.model_invariants.items():
        for invariant in found:
            if "save" not in invariant.on:
                continue
            q = invariant.rule.to_q(ctx, model)
            rows: models.QuerySet[Any] = models.QuerySet(model=model)
            bad = [] if q is True else list(rows.exclude(q).values_list("pk", flat=True))
            if q is False:
                bad = list(rows.values_list("pk", flat=True))
            if bad:
                broken[invariant.name] = bad
    return broken


@dataclass
class World:
    """The rows every scenario starts from: all invariants hold."""

    org: Org
    idle: Org  # inactive, no accounts
    account: Account
    locked: Account
    orphan: Account  # no org, frozen
    alice: Person
    mallory: Person
    project: Project  # active, alice is its member
    shop: Shop
    card: Card


@pytest.fixture
def world(invariants: None) -> World:
    org = Org.objects.create(name="acme")
    idle = Org.objects.create(name="idle", active=False)
    alice = Person.objects.create(name="alice")
    project = Project.objects.create(state="draft")
    project.members.add(alice)
    Project.objects.filter(pk=project.pk).update(state="active")
    built = World(
        org=org,
        idle=idle,
        account=Account.objects.create(org=org, balance=10),
        locked=Account.objects.create(org=org, state="locked", balance=5),
        orphan=Account.objects.create(state="frozen"),
        alice=alice,
        mallory=Person.objects.create(name="mallory"),
        project=Project.objects.get(pk=project.pk),
        shop=Shop.objects.create(name="corner"),
        card=Card.objects.create(home=org),
    )
    assert broken_rows() == {}
    return built


@dataclass
class Scenario:
    """One write through one API; ``rule`` is the invariant it breaks (None: it breaks none)."""

    api: str
    rule: str | None
    write: Callable[[World], Any]


def _set(obj: Any, **values: Any) -> Any:
    for name, value in values.items():
        setattr(obj, name, value)
    return obj


def _run(make: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async twin from this (synchronous) test, on its connection."""

    async def call() -> Any:
        return await make()

    return async_to_sync(call)()


SCENARIOS = [
    # -- a local column ---------------------------------------------------------------------------
    Scenario("save", "local", lambda w: _set(w.account, balance=-1).save()),
    Scenario(
        "save(update_fields)",
        "local",
        lambda w: _set(w.account, balance=-1).save(update_fields=["balance"]),
    ),
    Scenario("save(F())", "local", lambda w: _set(w.account, balance=F("balance") - 11).save()),
    Scenario("save(F()) kept", None, lambda w: _set(w.account, balance=F("balance") - 10).save()),
    Scenario("create", "local", lambda w: Account.objects.create(balance=-1)),
    Scenario(
        "get_or_create", "local", lambda w: Account.objects.get_or_create(balance=-1, state="x")
    ),
    Scenario(
        "update_or_create",
        "local",
        lambda w: Account.objects.update_or_create(pk=w.account.pk, defaults={"balance": -1}),
    ),
    Scenario("update()", "local", lambda w: Account.objects.update(balance=F("balance") - 6)),
    Scenario("_base_manager.update()", "local", lambda w: Account._base_manager.update(balance=-1)),
    Scenario("bulk_create", "local", lambda w: Account.objects.bulk_create([Account(balance=-1)])),
    Scenario(
        "bulk_create(ignore_conflicts)",
        "local",
        lambda w: Account.objects.bulk_create([Account(balance=-1)], ignore_conflicts=True),
    ),
    Scenario(
        "bulk_create(update_conflicts)",
        "local",
        lambda w: Account.objects.bulk_create(
            [Account(pk=w.account.pk, org=w.org, balance=-1)],
            update_conflicts=True,
            unique_fields=["id"],
            update_fields=["balance"],
        ),
    ),
    Scenario(
        "bulk_update",
        "local",
        lambda w: Account.objects.bulk_update([_set(w.account, balance=-1)], ["balance"]),
    ),
    Scenario("asave", "local", lambda w: _run(_set(w.account, balance=-1).asave)),
    Scenario("acreate", "local", lambda w: _run(lambda: Account.objects.acreate(balance=-1))),
    Scenario("aupdate", "local", lambda w: _run(lambda: Account.objects.aupdate(balance=-1))),
    Scenario(
        "abulk_create",
        "local",
        lambda w: _run(lambda: Account.objects.abulk_create([Account(balance=-1)])),
    ),
    Scenario(
        "abulk_update",
        "local",
        lambda w: _run(
            lambda: Account.objects.abulk_update([_set(w.account, balance=-1)], ["balance"])
        ),
    ),
    Scenario(
        "aupdate_or_create",
        "local",
        lambda w: _run(
            lambda: Account.objects.aupdate_or_create(pk=w.account.pk, defaults={"balance": -1})
        ),
    ),
    # -- a foreign key read into another table ----------------------------------------------------
    Scenario("save (the other row)", "foreign_key", lambda w: _set(w.org, active=False).save()),
    Scenario(
        "update() (the other rows)",
        "foreign_key",
        lambda w: Org.objects.filter(pk=w.org.pk).update(active=False),
    ),
    Scenario(
        "bulk_update (the other rows)",
        "foreign_key",
        lambda w: Org.objects.bulk_update([_set(w.org, active=False)], ["active"]),
    ),
    Scenario("save (the key)", "foreign_key", lambda w: _set(w.account, org=w.idle).save()),
    Scenario(
        "update() (the key)",
        "foreign_key",
        lambda w: Account.objects.filter(pk=w.account.pk).update(org=w.idle),
    ),
    Scenario("reverse add()", "foreign_key", lambda w: w.idle.accounts.add(w.account)),
    Scenario("reverse set()", "foreign_key", lambda w: w.idle.accounts.set([w.account])),
    Scenario("reverse create()", "foreign_key", lambda w: w.idle.accounts.create(balance=1)),
    Scenario("a kept save", None, lambda w: _set(w.org, name="acme inc").save()),
    # -- a to-many relation (reverse foreign key) -------------------------------------------------
    Scenario("save (the related row)", "to_many", lambda w: _set(w.account, state="frozen").save()),
    Scenario(
        "update() (the related rows)",
        "to_many",
        lambda w: Account.objects.filter(org=w.org).update(state="frozen"),
    ),
    Scenario("reverse add() of a frozen row", "to_many", lambda w: w.org.accounts.add(w.orphan)),
    Scenario(
        "create (a related row)",
        "to_many",
        lambda w: Account.objects.create(org=w.org, state="frozen"),
    ),
    Scenario(
        "bulk_create (related rows)",
        "to_many",
        lambda w: Account.objects.bulk_create([Account(org=w.org, state="frozen")]),
    ),
    Scenario("remove the frozen row", None, lambda w: w.org.accounts.remove(w.account)),
    # -- a many-to-many relation ------------------------------------------------------------------
    Scenario("m2m add()", "no_mallory", lambda w: w.project.members.add(w.mallory)),
    Scenario("m2m reverse add()", "no_mallory", lambda w: w.mallory.projects.add(w.project)),
    Scenario("m2m remove()", "many_to_many", lambda w: w.project.members.remove(w.alice)),
    Scenario("m2m clear()", "many_to_many", lambda w: w.project.members.clear()),
    Scenario("m2m reverse clear()", "many_to_many", lambda w: w.alice.projects.clear()),
    Scenario("m2m set([])", "many_to_many", lambda w: w.project.members.set([])),
    Scenario("m2m through rows", "no_mallory", lambda w: _through_row(w)),
    Scenario("delete a member", "many_to_many", lambda w: w.alice.delete()),
    Scenario("update() an unstaffed project", "many_to_many", lambda w: _unstaffed(w)),
    Scenario("m2m add() kept", None, lambda w: w.project.members.add(Person.objects.create())),
    # -- a child of multi-table inheritance -------------------------------------------------------
    Scenario("child save", "inherited", lambda w: _set(w.shop, name="").save()),
    Scenario(
        "parent save",
        "inherited",
        lambda w: _set(Place.objects.get(pk=w.shop.pk), name="").save(),
    ),
    Scenario("parent update()", "inherited", lambda w: Place.objects.update(name="")),
    Scenario("child update()", "inherited", lambda w: Shop.objects.update(name="")),
    Scenario(
        "parent _base_manager.update()",
        "inherited",
        lambda w: Place._base_manager.update(name=""),
    ),
    Scenario(
        "parent bulk_update",
        "inherited",
        lambda w: Place.objects.bulk_update(
            [_set(Place.objects.get(pk=w.shop.pk), name="")], ["name"]
        ),
    ),
    # -- on_delete --------------------------------------------------------------------------------
    Scenario("delete (SET_DEFAULT)", "on_delete", lambda w: w.org.delete()),
    Scenario(
        "queryset delete (SET_DEFAULT)",
        "on_delete",
        lambda w: Org.objects.filter(pk=w.org.pk).delete(),
    ),
    # -- a delete invariant -----------------------------------------------------------------------
    Scenario("delete", "kept", lambda w: w.locked.delete()),
    Scenario("queryset delete", "kept", lambda w: Account.objects.filter(org=w.org).delete()),
    Scenario("_base_manager delete", "kept", lambda w: Account._base_manager.all().delete()),
    Scenario("adelete", "kept", lambda w: _run(w.locked.adelete)),
    Scenario("delete kept", None, lambda w: w.account.delete()),
]


def _through_row(w: World) -> Any:
    through = Project.members.through
    return through.objects.create(project_id=w.project.pk, person_id=w.mallory.pk)


def _unstaffed(w: World) -> None:
    """A draft project without members (valid), then made active in bulk (not)."""
    empty = Project.objects.create(state="draft")
    Project.objects.filter(pk=empty.pk).update(state="active")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s.api}-{s.rule}" for s in SCENARIOS])
def test_every_write_keeps_every_invariant_or_is_refused_by_name(
    world: World, scenario: Scenario
) -> None:
    try:
        with transaction.atomic():
            scenario.write(world)
    except InvariantViolation as refused:
        assert refused.decision.rule == scenario.rule, refused.decision.reason
    else:
        assert scenario.rule is None, f"{scenario.api} went through"
    assert broken_rows() == {}
