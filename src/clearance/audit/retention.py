"""Retention: :func:`prune` removes audit records older than an age; the only sanctioned way.

``manage.py clearance prune-audit --older-than 90d`` calls it; :func:`parse_age` reads the
``90d`` / ``12h`` / ``4w`` notation.
"""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

from .models import AuditRecord, _allow_prune

__all__ = ["parse_age", "prune"]

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


def prune(older_than: dt.timedelta, using: str | None = None) -> int:
    """Delete the audit records decided more than ``older_than`` ago; returns how many.

    ``using`` is the database alias (default: the one audit records are written to). The
    deletion runs on that alias's ordinary connection, in one statement.
    """
    if not isinstance(older_than, dt.timedelta):
        raise TypeError(f"older_than must be a datetime.timedelta, got {older_than!r}")
    if older_than <= dt.timedelta(0):
        raise ValueError("older_than must be positive; pruning would remove every record.")
    if using is None:
        from .connection import target_alias

        using = target_alias()
    cutoff = timezone.now() - older_than
    with _allow_prune():
        deleted, _ = AuditRecord.objects.using(using).filter(at__lt=cutoff).delete()
    return int(deleted)
