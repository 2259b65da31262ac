"""Signals sent by clearance."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["decision_made"]

#: Sent once for every decision, with keyword arguments ``decision`` and ``request``.
decision_made = Signal()
