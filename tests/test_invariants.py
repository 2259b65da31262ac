"""Model invariants hold on save() and delete(), whoever writes: superusers and the shell too."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F

from clearance import (
    Decision,
    GuardedQuerySet,
    InvariantViolation,
    Layer,
    authorize,
    model_invariant,
    predicate,
    where,
)
from clearance.invariants import acting, check_instance
from clearance.testing import DecisionLog
from tests.testapp.models import Document, Note, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def decisions(clearance_decisions: DecisionLog) -> DecisionLog:
    """Every decision sent to the audit signal while the test runs."""
    return clearance_decisions


@pytest.fixture
def positive(fresh_registry: Any) -> Any:
    return model_invariant(
        Document,
        "positive_amount",
        where(amount__gt=0),
        reason="A document keeps a positive amount.",
    )


@pytest.fixture
def archived_kept(fresh_registry: Any) -> Any:
    return model_invariant(
        Document,
        "archived_kept",
        ~where(state="archived"),
        reason="Archived documents are never deleted.",
        on=("delete",),
    )


@pytest.fixture
def root(db: None) -> User:
    return User.objects.create_superuser("root", "root@example.com", "x")


def test_save_that_breaks_an_invariant_raises_and_leaves_the_row(
    positive: Any, make_doc: Any, root: User, decisions: list[Decision]
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-1")
    with acting(root), pytest.raises(InvariantViolation) as caught:
        doc.save()
    decision = caught.value.decision
    assert decision.rule == "positive_amount" and decision.layer is Layer.INVARIANT
    assert decision.code == "invariant.positive_amount"
    assert decision.reason == "A document keeps a positive amount."
    assert decision.actor.label == "root" and decision.performed is False
    assert decision.resource is not None and decision.resource.pk == doc.pk
    # The caller's transaction is still usable and the row is as it was.
    assert Document.objects.get(pk=doc.pk).amount == Decimal("5")
    assert decisions[-1] == decision


def test_superuser_powers_do_not_matter(positive: Any, make_doc: Any, root: User) -> None:
    assert root.has_perm("testapp.approve_document")
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("0")
    with acting(root), pytest.raises(InvariantViolation) as refused:
        doc.save()
    assert refused.value.decision.rule == "positive_amount"
    assert Document.objects.get(pk=doc.pk).amount == Decimal("5")


def test_shell_save_without_an_actor_is_refused_and_unattributed(
    positive: Any, tenant: Tenant
) -> None:
    with pytest.raises(InvariantViolation) as caught:
        Document.objects.create(tenant=tenant, amount=Decimal("-3"))
    assert caught.value.decision.rule == "positive_amount"
    assert caught.value.decision.actor.label == "unattributed"
    assert caught.value.decision.action == "testapp.Document.save"
    assert not Document.objects.exists()


def test_save_that_keeps_the_invariant_succeeds(positive: Any, make_doc: Any) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("7")
    doc.save()
    assert Document.objects.get(pk=doc.pk).amount == Decimal("7")


def test_the_new_state_is_judged_as_the_database_will_store_it(
    positive: Any, make_doc: Any
) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("0.004")  # positive in memory, 0.00 in a DecimalField(decimal_places=2)
    with pytest.raises(InvariantViolation) as refused:
        doc.save()
    assert refused.value.decision.rule == "positive_amount"
    assert doc.amount == Decimal("0.004")  # the caller's object is left alone
    doc.amount = Decimal("0.006")  # rounds to 0.01
    doc.save()
    assert Document.objects.get(pk=doc.pk).amount == Decimal("0.01")


def test_update_fields_and_get_or_create_are_guarded(positive: Any, make_doc: Any) -> None:
    doc = make_doc(amount=Decimal("5"))
    doc.amount = Decimal("-5")
    with pytest.raises(InvariantViolation) as refused:
        doc.save(update_fields=["amount"])
    assert refused.value.decision.rule == "positive_amount"
    with pytest.raises(InvariantViolation) as refused:
        Document.objects.update_or_create(pk=doc.pk, defaults={"amount": Decimal("-1")})
    assert refused.value.decision.rule == "positive_amount"
    assert Document.objects.get(pk=doc.pk).amount == Decimal("5")


def test_delete_that_breaks_an_invariant_raises_and_keeps_the_row(
    archived_kept: Any, make_doc: Any, root: User
) -> None:
    doc = make_doc(state="archived")
    with acting(root), pytest.raises(InvariantViolation) as caught:
        doc.delete()
    assert caught.value.decision.rule == "archived_kept"
    assert caught.value.decision.reason == "Archived documents are never deleted."
    assert caught.value.decision.action == "testapp.Document.delete"
    assert caught.value.decision.actor.label == "root"
    assert Document.objects.filter(pk=doc.pk).exists()


def test_delete_checks_the_stored_row_not_a_stale_copy(archived_kept: Any, make_doc: Any) -> None:
    doc = make_doc(state="draft")
    Document.objects.filter(pk=doc.pk).update(state="archived")  # doc in memory is stale
    with pytest.raises(InvariantViolation) as refused:
        doc.delete()
    assert refused.value.decision.rule == "archived_kept"
    assert Document.objects.filter(pk=doc.pk).exists()


def test_delete_that_keeps_the_invariant_succeeds(archived_kept: Any, make_doc: Any) -> None:
    doc = make_doc(state="draft")
    doc.delete()
    assert not Document.objects.filter(pk=doc.pk).exists()


def test_cascade_and_plain_queryset_deletes_are_refused(
    archived_kept: Any, make_doc: Any, tenant: Tenant
) -> None:
    make_doc(state="archived")
    keep = make_doc(state="draft")
    with pytest.raises(InvariantViolation) as refused:
        tenant.delete()  # cascades to the archived document
    assert refused.value.decision.rule == "archived_kept"
    assert Tenant.objects.filter(pk=tenant.pk).exists()
    assert Document.objects.filter(tenant=tenant).count() == 2
    # A plain queryset's delete() is refused too (Django's pre_delete runs in its own block:
    # wrap it in atomic() to keep using the transaction).
    with pytest.raises(InvariantViolation) as refused, transaction.atomic():
        Document.objects.filter(tenant=tenant).delete()
    assert refused.value.decision.rule == "archived_kept"
    assert Document.objects.filter(pk=keep.pk).exists()


def test_invariant_on_save_only_does_not_block_delete(fresh_registry: Any, make_doc: Any) -> None:
    model_invariant(Document, "has_title", ~where(title=""), on=("save",))
    doc = make_doc(title="x")
    Document.objects.filter(pk=doc.pk).update(title="")
    doc.refresh_from_db()
    doc.delete()
    assert not Document.objects.filter(pk=doc.pk).exists()


def test_predicate_invariant_and_errors_fail_closed(fresh_registry: Any, make_doc: Any) -> None:
    @predicate
    def title_is_short(ctx: Any) -> bool:
        return len(ctx.obj.title) <= 5

    @predicate
    def broken(ctx: Any) -> bool:
        raise RuntimeError("boom")

    model_invariant(Document, "title_is_short", title_is_short)
    with pytest.raises(InvariantViolation) as caught:
        make_doc(title="far too long")
    assert caught.value.decision.rule == "title_is_short"
    model_invariant(Note, "broken", broken)
    with pytest.raises(InvariantViolation) as caught:
        Note.objects.create(text="x")
    assert caught.value.decision.rule == "broken"
    assert caught.value.decision.error == "RuntimeError: boom"
    assert not Note.objects.exists()


def test_an_invariant_that_raises_says_it_could_not_be_decided(
    fresh_registry: Any, make_doc: Any
) -> None:
    @predicate
    def broken(ctx: Any) -> bool:
        raise RuntimeError("boom")

    model_invariant(Note, "broken", broken, reason="Notes stay short.")
    for write in (
        lambda: Note.objects.create(text="x"),
        lambda: GuardedQuerySet(model=Note).bulk_create([Note(text="y")]),
    ):
        with pytest.raises(InvariantViolation) as caught:
            write()
        decision = caught.value.decision
        assert decision.rule == "broken" and decision.code == "invariant.broken"
        assert decision.reason.startswith("could not be decided: rule broken raised RuntimeError")
        assert "Notes stay short." not in decision.reason
    assert not Note.objects.exists()


def test_lookup_only_the_database_decides_sees_the_new_state(
    fresh_registry: Any, make_doc: Any
) -> None:
    # A comparison with another column is decided by the database, on the values being saved.
    model_invariant(Document, "within_priority", where(amount__lte=F("priority")))
    doc = make_doc(amount=Decimal("5"), priority=10)
    doc.amount = Decimal("11")
    with pytest.raises(InvariantViolation) as refused:
        doc.save()
    assert refused.value.decision.rule == "within_priority"
    doc.amount = Decimal("10")
    doc.save()
    assert Document.objects.get(pk=doc.pk).amount == Decimal("10")


def test_action_invariant_denies_a_superuser(
    make_user: Any, tenant: Tenant, bob: User, make_doc: Any
) -> None:
    root = User.objects.create_superuser("root2", "r@example.com", "x")
    from tests.testapp.models import Membership

    Membership.objects.create(user=root, tenant=tenant)
    doc = make_doc(owner=bob, amount=Decimal("20000"))
    decision = authorize(root, "testapp.approve", doc)
    assert not decision.allowed
    assert decision.layer is Layer.INVARIANT and decision.rule == "within_limit"


def test_models_without_invariants_are_untouched(fresh_registry: Any) -> None:
    note = Note.objects.create(text="x")
    check_instance(note)  # nothing to check
    note.delete()
    assert not Note.objects.exists()


def test_delete_judges_the_stored_row_not_a_stale_copy_that_breaks_the_invariant(
    archived_kept: Any, make_doc: Any
) -> None:
    doc = make_doc(state="archived")
    Document.objects.filter(pk=doc.pk).update(state="draft")  # doc in memory still says archived
    doc.delete()
    assert not Document.objects.filter(pk=doc.pk).exists()


def test_a_cascade_from_a_row_with_delete_invariants_checks_the_rows_it_reaches(
    archived_kept: Any, make_doc: Any, tenant: Tenant
) -> None:
    model_invariant(Tenant, "globex_kept", ~where(name="Globex"), on=("delete",))
    make_doc(state="archived")
    with pytest.raises(InvariantViolation) as refused:
        tenant.delete()  # the tenant may go; its archived document may not
    assert refused.value.decision.rule == "archived_kept"
    assert Tenant.objects.filter(pk=tenant.pk).exists()
    assert Document.objects.filter(tenant=tenant).count() == 1
