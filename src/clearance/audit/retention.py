"""Retention: :func:`prune` removes audit records older than an age; the only sanctioned way.

``manage.py clearance prune-audit --older-than 90d [--dry-run]`` calls it (after
:func:`summarize` says what goes); :func:`parse_age` reads the ``90d`` / ``12h`` / ``4w``
notation. On PostgreSQL the deletion marks its transaction as pruning, the one kind of DELETE
the optional database guard (:mod:`clearance.audit.guard`) lets through.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from .guard import PRUNING_SETTING
from .models import AuditRecord, AuditRecordQuerySet, allow_prune

__all__ = ["Summary", "parse_age", "prunable", "prune", "summarize"]

_AGE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> dt.timedelta:
    """Parse an age such as ``"90d"``, ``"12h"`` or ``"4w"`` (hours, days, weeks).

    Raises ``ValueError`` with the accepted forms for anything else, including ``"3m"``
    (minutes or months? neither is accepted) and zero.
    """
    match = _AGE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"Cannot read the age {text!r}: write a whole number followed by h (hours), "
            "d (days) or w (weeks), e.g. 90d, 12h or 4w."
        )
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"The age {text!r} is zero; pruning would remove every record.")
    return dt.timedelta(**{_UNITS[match.group(2).lower()]: amount})


def _check_age(older_than: dt.timedelta) -> None:
    if not isinstance(older_than, dt.timedelta):
        raise TypeError(f"older_than must be a datetime.timedelta, got {older_than!r}")
    if older_than <= dt.timedelta(0):
        raise ValueError("older_than must be positive; pruning would remove every record.")


def _alias(using: str | None) -> str:
    if using is not None:
        return using
    from .connection import target_alias

    return target_alias()


def prunable(older_than: dt.timedelta, using: str | None = None) -> AuditRecordQuerySet:
    """The audit records decided more than ``older_than`` ago (what :func:`prune` removes)."""
    _check_age(older_than)
    cutoff = timezone.now() - older_than
    records: AuditRecordQuerySet = AuditRecord.objects.using(_alias(using)).filter(at__lt=cutoff)
    return records


@dataclass(frozen=True)
class Summary:
    """What a set of audit records holds: how many, of which kind and outcome, from when."""

    total: int
    denied_attempts: int
    allowed_attempts: int
    probes: int
    oldest: dt.datetime | None
    newest: dt.datetime | None


def summarize(records: AuditRecordQuerySet) -> Summary:
    """Count ``records`` by kind and outcome, with the oldest and newest date (one query)."""
    rows = (
        records.order_by()
        .values("probe", "allowed")
        .annotate(n=Count("pk"), oldest=Min("at"), newest=Max("at"))
    )
    counts = {(r["probe"], r["allowed"]): r["n"] for r in rows}
    oldest = min((r["oldest"] for r in rows), default=None)
    newest = max((r["newest"] for r in rows), default=None)
    return Summary(
        total=sum(counts.values()),
        denied_attempts=counts.get((False, False), 0),
        allowed_attempts=counts.get((False, True), 0),
        probes=counts.get((True, False), 0) + counts.get((True, True), 0),
        oldest=oldest,
        newest=newest,
    )


def prune(older_than: dt.timedelta, using: str | None = None) -> int:
    """Delete the audit records decided more than ``older_than`` ago; returns how many.

    ``using`` is the database alias (default: the one audit records are written to). The
    deletion runs on that alias's ordinary connection, in one statement, in a transaction that
    (on PostgreSQL) is marked as pruning for the database guard.
    """
    records = prunable(older_than, using)
    alias = records.db
    conn = connections[alias]
    with allow_prune(), transaction.atomic(using=alias):
        if conn.vendor == "postgresql":
            with conn.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, 'on', true)", [PRUNING_SETTING])
        try:
            deleted, _ = records.delete()
        finally:
            if conn.vendor == "postgresql" and not conn.needs_rollback:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT set_config(%s, 'off', true)", [PRUNING_SETTING])
    return int(deleted)
