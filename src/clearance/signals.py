"""Signals sent by clearance."""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["audit_failed", "decision_made"]

#: Sent once for every decision, with keyword arguments ``decision`` and ``request``.
decision_made = Signal()

#: Sent once for every audit record the database did not take (sender ``AuditRecord``), with
#: keyword arguments ``record`` (the unsaved :class:`~clearance.audit.models.AuditRecord`),
#: ``error`` (the exception) and ``spooled`` (the spool file that keeps the record, or None when
#: it could not be written there either). Receivers that raise are logged and ignored.
audit_failed = Signal()
