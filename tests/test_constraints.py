"""Model invariants as database CHECK constraints: even raw SQL cannot break them."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q

from clearance import (
    ACTOR,
    BulkInvariantViolation,
    InvariantViolation,
    constraints_for,
    invariant_constraint,
    model_invariant,
    predicate,
    where,
)
from clearance.constraints import constraint_name, missing_constraints
from tests.testapp.models import Document
from tests.writepaths.models import Ticket

pytestmark = pytest.mark.django_db

example = pytest.mark.skipif(
    not apps.is_installed("invoices"), reason="the example project is not installed"
)


# -- which invariants fit a constraint ----------------------------------------------------------


def test_single_table_where_invariants_become_named_check_constraints(fresh_registry: Any) -> None:
    model_invariant(Document, "positive", where(amount__gt=0), reason="Stay positive.")
    model_invariant(Document, "not_archived", ~where(state="archived") | where(priority=1))
    (first, second) = constraints_for(Document)
    assert first.name == "clearance_document_positive"
    assert first.condition == Q(amount__gt=0)
    assert first.violation_error_message == "Stay positive."
    assert first.violation_error_code == "invariant.positive"
    assert second.name == "clearance_document_not_archived"
    assert second.condition == ~Q(state="archived") | Q(priority=1)


def test_comparisons_between_columns_fit(fresh_registry: Any) -> None:
    model_invariant(Document, "within_priority", where(amount__lte=F("priority") * 10))
    assert [c.name for c in constraints_for(Document)] == ["clearance_document_within_priority"]


@pytest.mark.parametrize(
    "rule",
    [
        where(owner=ACTOR),  # a placeholder: depends on who acts
        where(tenant__name="Acme"),  # another table
        where(watchers__isnull=False),  # a to-many relation
        predicate(lambda ctx: True),  # Python
        where(amount__gt=0) & predicate(lambda ctx: True),
    ],
    ids=["actor", "join", "to-many", "predicate", "mixed"],
)
def test_invariants_that_do_not_fit_are_left_to_the_guards(fresh_registry: Any, rule: Any) -> None:
    model_invariant(Document, "rule", rule)
    assert constraints_for(Document) == []
    assert missing_constraints(Document) == []


def test_delete_only_invariants_are_not_constraints(fresh_registry: Any) -> None:
    model_invariant(Document, "kept", ~where(state="archived"), on=("delete",))
    assert constraints_for(Document) == []


def test_missing_constraints_lists_invariants_without_one(fresh_registry: Any) -> None:
    invariant = model_invariant(Document, "positive", where(amount__gt=0))
    assert missing_constraints(Document) == [invariant]


def test_long_names_are_shortened_stably() -> None:
    name = constraint_name("document", "x" * 80)
    assert len(name) == 63 and name.startswith("clearance_document_xxx")
    assert name == constraint_name("document", "x" * 80)


def test_invariant_constraint_for_meta_refuses_rules_without_sql() -> None:
    with pytest.raises(ValueError, match="cannot be a database constraint"):
        invariant_constraint("mine", where(owner=ACTOR))
    constraint = invariant_constraint("positive", where(amount__gt=0), reason="Positive.")
    assert constraint.name == "clearance_%(class)s_positive"


# -- which invariant a database refusal names ----------------------------------------------------


def test_a_check_constraint_under_a_name_of_its_own_names_the_invariant(
    fresh_registry: Any,
) -> None:
    # Ticket's Meta has CHECK (seats >= 0) as "ticket_seats_counted", not clearance_ticket_...
    model_invariant(Ticket, "seats_counted", where(seats__gte=0), reason="Seats are counted.")
    ticket = Ticket.objects.create(seats=5)
    with pytest.raises(BulkInvariantViolation) as bulk:
        Ticket.objects.update(seats=-1)
    assert bulk.value.decision.rule == "seats_counted"
    assert bulk.value.pks == (ticket.pk,)
    assert Ticket.objects.get(pk=ticket.pk).seats == 5


def test_the_constraint_a_driver_reports_in_its_diagnostics_names_the_invariant(
    fresh_registry: Any,
) -> None:
    # psycopg reports the constraint in the error's diag.constraint_name, whatever the message.
    model_invariant(Ticket, "capped", where(seats__lte=100), reason="At most 100 seats.")
    ticket = Ticket.objects.create(seats=5)

    class Diagnostic:
        constraint_name = "clearance_ticket_capped"

    class DriverError(Exception):
        diag = Diagnostic()

    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("UPDATE"):
            raise IntegrityError("new row violates a check constraint") from DriverError()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse), pytest.raises(BulkInvariantViolation) as bulk:
        Ticket.objects.update(seats=500)
    assert bulk.value.decision.rule == "capped"
    assert bulk.value.pks == (ticket.pk,)


def test_a_constraint_whose_name_extends_another_ones_names_its_own_invariant(
    fresh_registry: Any,
) -> None:
    model_invariant(Ticket, "capped", where(seats__lte=100))
    model_invariant(Ticket, "capped_when_closed", ~where(state="closed") | where(seats__lte=10))
    ticket = Ticket.objects.create(seats=50)
    # The database names clearance_ticket_capped_when_closed, which starts with the other name.
    with pytest.raises(BulkInvariantViolation) as bulk:
        Ticket.objects.update(state="closed")
    assert bulk.value.decision.rule == "capped_when_closed"
    assert bulk.value.pks == (ticket.pk,)
    assert Ticket.objects.get(pk=ticket.pk).state == "open"


# -- the example project ------------------------------------------------------------------------


@example
def test_the_example_declares_its_constraint() -> None:
    from invoices.models import Invoice

    (constraint,) = constraints_for(Invoice)
    assert constraint.name == "clearance_invoice_paid_is_final"
    assert constraint in Invoice._meta.constraints
    assert missing_constraints(Invoice) == []


@example
def test_makemigrations_accepts_the_constraints(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("nomigrations", default=False):
        pytest.skip("the migrations are turned off (--no-migrations)")
    out = io.StringIO()
    # Exits with status 1 if the models have changes that no migration records.
    call_command("makemigrations", "invoices", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.fixture
def paid_invoice(db: None) -> Any:
    from django.contrib.auth.models import User

    from invoices.models import Invoice, Tenant

    tenant = Tenant.objects.create(name="Acme", slug="acme")
    owner = User.objects.create_user("owner")
    return Invoice.objects.create(
        tenant=tenant, owner=owner, number="A-1", amount=Decimal("310"), state="paid"
    )


@example
def test_raw_sql_that_breaks_the_invariant_fails_in_the_database(paid_invoice: Any) -> None:
    table = type(paid_invoice)._meta.db_table
    with (
        pytest.raises(IntegrityError, match="clearance_invoice_paid_is_final"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE {table} SET amount = 0 WHERE id = %s", [paid_invoice.pk])
    paid_invoice.refresh_from_db()
    assert paid_invoice.amount == Decimal("310")
    # A draft may have any amount: the constraint is the invariant, not more.
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET amount = 0, state = 'draft' WHERE id = %s", [paid_invoice.pk]
        )
    paid_invoice.refresh_from_db()
    assert paid_invoice.amount == 0


@example
def test_model_validation_shows_the_reason(paid_invoice: Any) -> None:
    paid_invoice.amount = Decimal("0")
    with pytest.raises(ValidationError, match="A paid invoice keeps a positive amount"):
        paid_invoice.full_clean()


@example
def test_the_guards_answer_before_the_constraint_does(paid_invoice: Any) -> None:
    from invoices.models import Invoice

    paid_invoice.amount = Decimal("0")
    with pytest.raises(InvariantViolation) as caught:
        paid_invoice.save()
    assert caught.value.decision.rule == "paid_is_final"
    # A guarded bulk update meets the CHECK first; it still raises the invariant, with the row.
    with pytest.raises(BulkInvariantViolation) as bulk:
        Invoice.objects.filter(pk=paid_invoice.pk).update(amount=F("amount") - 310)
    assert bulk.value.decision.rule == "paid_is_final"
    assert bulk.value.pks == (paid_invoice.pk,)
    with pytest.raises(BulkInvariantViolation) as bulk:
        paid_invoice.amount = Decimal("-5")
        Invoice.objects.bulk_update([paid_invoice], ["amount"])
    assert bulk.value.decision.rule == "paid_is_final"
    assert bulk.value.pks == (paid_invoice.pk,)
    assert Invoice.objects.get(pk=paid_invoice.pk).amount == Decimal("310")


@example
def test_a_bulk_update_refused_by_the_constraint_names_only_the_rows_that_break_it(
    paid_invoice: Any,
) -> None:
    from invoices.models import Invoice

    fields = {"tenant": paid_invoice.tenant, "owner": paid_invoice.owner}
    draft = Invoice.objects.create(number="A-2", amount=Decimal("0"), state="draft", **fields)
    Invoice.objects.create(number="A-3", amount=Decimal("1000"), state="paid", **fields)
    # An expression: only the paid invoice it takes to zero breaks the invariant.
    with pytest.raises(BulkInvariantViolation) as bulk:
        Invoice.objects.update(amount=F("amount") - 310)
    assert bulk.value.decision.rule == "paid_is_final"
    assert bulk.value.pks == (paid_invoice.pk,)
    # A value: only the draft without an amount breaks it once paid.
    with pytest.raises(BulkInvariantViolation) as bulk:
        Invoice.objects.update(state="paid")
    assert bulk.value.pks == (draft.pk,)
    assert Invoice.objects.get(pk=draft.pk).state == "draft"


@example
def test_a_bulk_update_refused_by_another_constraint_raises_the_databases_error(
    paid_invoice: Any,
) -> None:
    from invoices.models import Invoice

    Invoice.objects.create(
        tenant=paid_invoice.tenant, owner=paid_invoice.owner, number="A-2", amount=Decimal("5")
    )
    # Two invoices of a tenant cannot share a number: no invariant says so, the database does.
    # (SQLite says "UNIQUE constraint failed", PostgreSQL "violates unique constraint".)
    with pytest.raises(IntegrityError, match=r"(?i)unique constraint"):
        Invoice.objects.update(number="A-1")
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["A-1", "A-2"]
