"""Concurrency on PostgreSQL: 8 threads of 500 denials each, some in rolled-back transactions.

Every denial must be in the audit table afterwards: exactly 4,000 rows, none lost to a
rollback, none written twice, none mixed up between threads. Records are buffered: half of the
threads run as one job in one recording scope (the buffer is written every 64 records, often
while a transaction that will roll back is open), the other half as requests of 50 decisions
each, written when each ends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.db.models import Count, Max
from django.test import override_settings

from clearance import authorize
from clearance.audit import recording
from clearance.audit.models import AuditRecord
from tests.testapp.models import Document, Note, Tenant

THREADS = 8
DENIALS = 500
BATCH = 64
PER_REQUEST = 50


class Rollback(Exception):
    """Raised to roll a transaction back."""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_threads_of_500_denials_leave_exactly_4000_rows(
    make_user: Callable[..., User], tenant: Tenant
) -> None:
    before = AuditRecord.objects.aggregate(last=Max("id"))["last"] or 0
    workers = [make_user(f"worker-{n}", tenants=(tenant,)) for n in range(THREADS)]
    # Above the 10,000 limit: the invariant denies every approval, whoever asks.
    doc = Document.objects.create(tenant=tenant, state="submitted", amount=Decimal("50000"))
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    committed_notes = Counter[int]()

    def decide(user: User, i: int, n: int) -> None:
        if i % 3 == 0:  # a third inside transactions that roll back
            with pytest.raises(Rollback), transaction.atomic():
                Note.objects.create(text=f"{n}-{i}")
                assert not authorize(user, "testapp.approve", doc)
                raise Rollback
        elif i % 3 == 1:  # a third inside transactions that commit
            with transaction.atomic():
                Note.objects.create(text=f"{n}-{i}")
                assert not authorize(user, "testapp.approve", doc)
            committed_notes[n] += 1
        else:
            assert not authorize(user, "testapp.approve", doc)

    def work(n: int) -> None:
        user = User.objects.get(pk=workers[n].pk)
        try:
            start.wait()
            if n % 2:  # a job: one scope for the whole run
                with recording() as scope:
                    for i in range(DENIALS):
                        decide(user, i, n)
                        if i == 9:
                            assert scope.pending == 10  # buffered, not written yet
            else:  # requests of PER_REQUEST decisions each
                for first in range(0, DENIALS, PER_REQUEST):
                    with recording():
                        for i in range(first, first + PER_REQUEST):
                            decide(user, i, n)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    with override_settings(CLEARANCE={"AUDIT_BATCH_SIZE": BATCH}):
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert errors == []
    rows = AuditRecord.objects.filter(pk__gt=before, actor_label__startswith="worker-")
    assert rows.count() == THREADS * DENIALS == 4000
    per_actor = dict(rows.values_list("actor_label").annotate(n=Count("id")))
    assert per_actor == {f"worker-{n}": DENIALS for n in range(THREADS)}
    assert set(rows.values_list("code", flat=True)) == {"invariant.within_limit"}
    # The rolled-back work is gone, the committed work is there: the rollbacks were real.
    committed = THREADS * sum(1 for i in range(DENIALS) if i % 3 == 1)
    assert Note.objects.count() == sum(committed_notes.values()) == committed
