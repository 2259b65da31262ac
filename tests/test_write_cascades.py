"""Deletes that cascade (or set a key to NULL) into rows with model invariants.

A refusal met in the middle of Django's delete collector rolls back to a savepoint of its own,
so the caller's transaction stays usable; deletes that reach no such row run as plain Django
runs them. The models (``tests/writepaths``) are used by these tests only: the guards they
install stay for the whole run, so no other test's invariants may have installed them first.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clearance import InvariantViolation, model_invariant, where
from tests.writepaths.models import Author, Book, Letter, Loan, Page, PinnedPage, Reader, Shelf

pytestmark = pytest.mark.django_db


def savepoints(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries if query["sql"].startswith("SAVEPOINT"))


@pytest.fixture
def published_kept(fresh_registry: Any) -> Any:
    return model_invariant(
        Page,
        "published_kept",
        ~where(state="published"),
        reason="Published pages are never deleted.",
        on=("delete",),
    )


def test_a_cascade_refused_by_a_pages_invariant_leaves_the_callers_transaction_usable(
    published_kept: Any,
) -> None:
    top = Shelf.objects.create(name="top")
    inner = Shelf.objects.create(name="inner", parent=top)
    book = Book.objects.create(shelf=inner)
    page = Page.objects.create(book=book, state="published")
    # The book, the shelf it stands on, and the shelf that shelf stands in all reach the page.
    for deleted in (book, inner, top):
        with pytest.raises(InvariantViolation) as caught:
            deleted.delete()
        assert caught.value.decision.rule == "published_kept"
        # Rolled back to the delete's own savepoint: the transaction goes on, nothing is gone.
        assert Page.objects.filter(pk=page.pk).exists()
    assert Shelf.objects.count() == 2 and Book.objects.count() == 1
    Page.objects.filter(pk=page.pk).update(state="draft")
    top.delete()
    assert not Shelf.objects.exists() and not Page.objects.exists()


def test_a_delete_that_only_clears_keys_of_guarded_rows_runs_without_a_savepoint(
    published_kept: Any,
) -> None:
    author = Author.objects.create(name="ann")
    Letter.objects.create(author=author)
    book = Book.objects.create(shelf=Shelf.objects.create(), author=author)
    Page.objects.create(book=book, state="published")
    # The author's books lose their author (SET_NULL) and no invariant reads it; the letters
    # go with the author, and nothing guards them.
    with CaptureQueriesContext(connection) as queries:
        author.delete()
    assert savepoints(queries) == 0
    assert Book.objects.get(pk=book.pk).author_id is None
    assert not Letter.objects.exists()


def test_rows_no_invariant_concerns_are_still_deleted_in_one_query(
    published_kept: Any, django_assert_num_queries: Any
) -> None:
    Letter.objects.create(author=Author.objects.create(name="ann"))
    with django_assert_num_queries(1):  # Django's fast delete: no signal receiver on letters
        Letter.objects.all().delete()
    assert not Letter.objects.exists()


def test_deleting_through_a_proxy_checks_the_stored_row_once(published_kept: Any) -> None:
    book = Book.objects.create(shelf=Shelf.objects.create())
    page = Page.objects.create(book=book)
    pinned = PinnedPage.objects.create(book=book)
    with CaptureQueriesContext(connection) as direct:
        page.delete()
    with CaptureQueriesContext(connection) as proxied:
        pinned.delete()
    # A savepoint, the stored row's check, the delete, the release: the same through the proxy.
    assert len(direct) == 4 and len(proxied) == len(direct)
    published = PinnedPage.objects.create(book=book, state="published")
    with pytest.raises(InvariantViolation) as caught:
        published.delete()
    assert caught.value.decision.rule == "published_kept"
    assert Page.objects.filter(pk=published.pk).exists()


def test_deleting_a_book_costs_the_same_however_often_invariants_are_declared(
    published_kept: Any,
) -> None:
    shelf = Shelf.objects.create()

    def delete_a_book() -> CaptureQueriesContext:
        book = Book.objects.create(shelf=shelf)
        Page.objects.create(book=book)
        with CaptureQueriesContext(connection) as queries:
            book.delete()
        return queries

    first = delete_a_book()
    # Each declaration installs the guards again.
    model_invariant(Page, "has_a_state", ~where(state=""), on=("save",))
    model_invariant(Page, "not_torn", ~where(state="torn"), on=("save",))
    again = delete_a_book()
    assert savepoints(again) == savepoints(first) == 1
    assert len(again) == len(first)


def test_deleting_a_row_an_invariant_reads_through_a_nullable_key_is_refused_cleanly(
    fresh_registry: Any,
) -> None:
    model_invariant(
        Loan,
        "open_has_reader",
        ~where(state="open") | where(reader__isnull=False),
        reason="An open loan names its reader.",
    )
    reader = Reader.objects.create(name="ann")
    loan = Loan.objects.create(reader=reader)
    with pytest.raises(InvariantViolation) as caught:
        reader.delete()  # would set the open loan's reader to NULL
    assert caught.value.decision.rule == "open_has_reader"
    # The caller's transaction is still usable, and the loan still names its reader.
    assert Loan.objects.get(pk=loan.pk).reader_id == reader.pk
    Loan.objects.filter(pk=loan.pk).update(state="returned")
    reader.delete()
    assert Loan.objects.get(pk=loan.pk).reader_id is None
