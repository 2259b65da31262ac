"""One model per invariant shape the write-path tests declare invariants on.

The invariants themselves are declared by the tests (``tests/test_write_paths.py``), so that
the rest of the suite is not affected by them. Models that the tests write through
``_base_manager`` use a guarded base manager, as the documentation recommends.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from clearance import GuardedQuerySet, invariant_constraint, where


def fallback_org() -> None:
    """What ``on_delete=SET(fallback_org)`` sets: no organisation."""
    return None


class Org(models.Model):
    """An organisation, read by the invariants of the accounts that belong to it."""

    name = models.CharField(max_length=50, default="")
    active = models.BooleanField(default=True)

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """Local fields, a nullable foreign key that is set to NULL when the org goes."""

    org = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts"
    )
    state = models.CharField(max_length=20, default="open")
    balance = models.IntegerField(default=0)

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"account {self.pk}"


class Card(models.Model):
    """Foreign keys set to their default, and to a callable's value, when the org goes."""

    home = models.ForeignKey(
        Org, null=True, blank=True, default=None, on_delete=models.SET_DEFAULT, related_name="+"
    )
    spare = models.ForeignKey(
        Org, null=True, blank=True, on_delete=models.SET(fallback_org), related_name="+"
    )

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"card {self.pk}"


class Seat(models.Model):
    """A foreign key that must be set, also enforced by a CHECK constraint."""

    org = models.ForeignKey(Org, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        constraints = [invariant_constraint("seated", where(org__isnull=False))]

    def __str__(self) -> str:
        return f"seat {self.pk}"


class Place(models.Model):
    """A parent model (multi-table inheritance) with no invariant of its own."""

    name = models.CharField(max_length=50, default="")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name


class Shop(Place):
    """A child model whose invariants read the parent's columns."""

    open = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name


class Person(models.Model):
    """Someone who works on projects."""

    name = models.CharField(max_length=50, default="")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    """A many-to-many relation read by the project's invariants."""

    state = models.CharField(max_length=20, default="draft")
    members = models.ManyToManyField(Person, blank=True, related_name="projects")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"project {self.pk}"


class Gadget(models.Model):
    """A swappable model: ``settings.WRITEPATHS_GADGET`` may name a replacement."""

    name = models.CharField(max_length=50, default="")

    class Meta:
        swappable = "WRITEPATHS_GADGET"

    def __str__(self) -> str:
        return self.name


class Stamped(models.Model):
    """An abstract model no installed model inherits from."""

    stamp = models.CharField(max_length=20, default="")

    class Meta:
        abstract = True


# -- cascades: the deletes of these models reach rows that the cascade tests guard ---------------
# (tests/test_write_cascades.py declares every invariant on them; no other test does)


class Shelf(models.Model):
    """A shelf; deleting it deletes the shelves standing in it, and their books."""

    name = models.CharField(max_length=50, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    """Deleting an author only clears the books' author, and deletes the author's letters."""

    name = models.CharField(max_length=50, default="")

    def __str__(self) -> str:
        return self.name


class Letter(models.Model):
    """A row no invariant concerns."""

    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"letter {self.pk}"


class Book(models.Model):
    """Deleted with its shelf; deleting it deletes its pages."""

    shelf = models.ForeignKey(Shelf, on_delete=models.CASCADE, related_name="books")
    author = models.ForeignKey(
        Author, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"book {self.pk}"


class Page(models.Model):
    """The rows the cascade tests declare invariants on."""

    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="pages")
    state = models.CharField(max_length=20, default="draft")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"page {self.pk}"


class PinnedPage(Page):
    """A proxy: the page's invariants and delete guard are its own."""

    class Meta:
        proxy = True


class Reader(models.Model):
    """Read by the invariant of the loans that name a reader."""

    name = models.CharField(max_length=50, default="")

    def __str__(self) -> str:
        return self.name


class Loan(models.Model):
    """Loses its reader (SET_NULL) when the reader is deleted."""

    reader = models.ForeignKey(
        Reader, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=20, default="open")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return f"loan {self.pk}"


class Ticket(models.Model):
    """CHECK constraints: one under a name of its own, two whose names share a prefix."""

    seats = models.IntegerField(default=0)
    state = models.CharField(max_length=20, default="open")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        constraints = [
            models.CheckConstraint(condition=models.Q(seats__gte=0), name="ticket_seats_counted"),
            invariant_constraint("capped", where(seats__lte=100)),
            invariant_constraint(
                "capped_when_closed", ~where(state="closed") | where(seats__lte=10)
            ),
        ]

    def __str__(self) -> str:
        return f"ticket {self.pk}"


class Price(models.Model):
    """Two decimal columns, and a primary key that is not the first column."""

    label = models.CharField(max_length=50, default="")
    code = models.CharField(max_length=20, primary_key=True)
    discount = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    amount = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="watched_prices"
    )

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"

    def __str__(self) -> str:
        return self.code


#: The badge no grant may point to (``Grant``'s CHECK-backed invariant ``not_retired``).
RETIRED_BADGE = uuid.UUID("00000000-0000-4000-8000-0000000000ff")


class Badge(models.Model):
    """A row keyed by a UUID."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=50, default="")

    def __str__(self) -> str:
        return self.name or str(self.pk)


class Grant(models.Model):
    """Points to a UUID-keyed badge; a CHECK constraint keeps it off the retired one."""

    badge = models.ForeignKey(Badge, null=True, on_delete=models.CASCADE, related_name="grants")

    objects = GuardedQuerySet.as_manager()

    class Meta:
        base_manager_name = "objects"
        constraints = [invariant_constraint("not_retired", ~where(badge=RETIRED_BADGE))]

    def __str__(self) -> str:
        return f"grant {self.pk}"
