"""Models of the ``clearance`` app: the audit trail (``clearance.AuditRecord``)."""

from __future__ import annotations

from .audit.models import AuditRecord

__all__ = ["AuditRecord"]
