"""Concurrency on PostgreSQL: perform() serializes an approval; check-then-save does not."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connections
from django.utils import timezone

from clearance import Decision, PolicyDenied, authorize, perform
from clearance.signals import decision_made

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, databases="__all__"),
    pytest.mark.skipif(
        not apps.is_installed("invoices"), reason="the example project is not installed"
    ),
]

THREADS = 16


@pytest.fixture
def scenario() -> tuple[Any, list[User]]:
    """One submitted invoice of tenant Acme, and sixteen approvers who are members of Acme."""
    from invoices.models import Invoice, Membership, Tenant

    tenant = Tenant.objects.create(name="Acme", slug="acme")
    group = Group.objects.create(name="approvers")
    group.permissions.add(
        Permission.objects.get(codename="approve_invoice", content_type__app_label="invoices")
    )
    owner = User.objects.create_user("owner")
    approvers = []
    for i in range(THREADS):
        user = User.objects.create_user(f"approver{i}")
        user.groups.add(group)
        Membership.objects.create(user=user, tenant=tenant, role="approver")
        approvers.append(user)
    invoice = Invoice.objects.create(
        tenant=tenant, owner=owner, number="A-1", amount=Decimal("100"), state="submitted"
    )
    return invoice, approvers


@pytest.fixture
def decisions() -> Iterator[list[Decision]]:
    """Every decision made in any thread while the test runs."""
    seen: list[Decision] = []
    lock = threading.Lock()

    def receive(decision: Decision, **kwargs: Any) -> None:
        with lock:
            seen.append(decision)

    decision_made.connect(receive, dispatch_uid="test_perform_postgres")
    try:
        yield seen
    finally:
        decision_made.disconnect(dispatch_uid="test_perform_postgres")


def run_in_threads(count: int, work: Callable[[int], str]) -> list[str]:
    """Run ``work(i)`` in ``count`` threads; each closes its own database connections."""
    results = [""] * count

    def target(i: int) -> None:
        try:
            results[i] = work(i)
        except Exception as exc:  # reported in the assertion below, not lost in the thread
            results[i] = f"error: {exc!r}"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results


def test_sixteen_concurrent_performs_approve_once(
    scenario: tuple[Any, list[User]], decisions: list[Decision]
) -> None:
    from invoices.models import Invoice

    invoice, approvers = scenario
    barrier = threading.Barrier(THREADS)

    def approve(i: int) -> str:
        user = User.objects.get(pk=approvers[i].pk)
        mine = Invoice.objects.get(pk=invoice.pk)  # each thread read "submitted"
        barrier.wait(timeout=30)
        try:
            with perform(user, "invoices.approve", mine) as locked:
                locked.state = Invoice.State.APPROVED
                locked.approved_by = user
                locked.approved_at = timezone.now()
                locked.save()
        except PolicyDenied as denied:
            return f"denied: {denied.decision.rule}"
        return "approved"

    results = run_in_threads(THREADS, approve)

    assert results.count("approved") == 1, results
    assert results.count("denied: submitted") == THREADS - 1, results
    winner = approvers[results.index("approved")]
    invoice.refresh_from_db()
    assert invoice.state == "approved" and invoice.approved_by_id == winner.pk
    performed = [d for d in decisions if d.action == "invoices.approve" and d.performed]
    assert len(performed) == 1 and performed[0].actor.pk == winner.pk
    refused = [d for d in decisions if d.action == "invoices.approve" and not d.allowed]
    assert len(refused) == THREADS - 1
    assert all(d.rule == "submitted" and d.performed is False for d in refused)


def test_check_then_save_lets_two_approvals_through(scenario: tuple[Any, list[User]]) -> None:
    """The race perform() prevents: both check, both pass, both save."""
    from invoices.models import Invoice

    invoice, approvers = scenario
    barrier = threading.Barrier(2)

    def approve(i: int) -> str:
        user = User.objects.get(pk=approvers[i].pk)
        mine = Invoice.objects.get(pk=invoice.pk)
        decision = authorize(user, "invoices.approve", mine)
        barrier.wait(timeout=30)  # both have checked before either saves
        if not decision.allowed:
            return f"denied: {decision.rule}"
        mine.state = Invoice.State.APPROVED
        mine.approved_by = user
        mine.approved_at = timezone.now()
        mine.save()
        return "approved"

    results = run_in_threads(2, approve)

    assert results == ["approved", "approved"]  # the invoice was approved twice
    invoice.refresh_from_db()
    assert invoice.state == "approved"
    assert invoice.approved_by_id in {approvers[0].pk, approvers[1].pk}
