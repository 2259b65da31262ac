"""A database router that keeps ``clearance.AuditRecord`` in ``CLEARANCE["AUDIT_DATABASE"]``.

Install it when the audit trail has a database alias of its own::

    DATABASES = {"default": {...}, "audit": {...}}
    DATABASE_ROUTERS = ["clearance.audit.routers.AuditRouter"]
    CLEARANCE = {"AUDIT_DATABASE": "audit"}

Reads and writes of audit records then go to that alias, ``migrate --database audit`` creates
the audit table there (and nothing else), and ``migrate`` leaves it out of the other databases.
With ``AUDIT_DATABASE`` unset the router has no opinion, so it is safe to list always.
"""

from __future__ import annotations

from typing import Any

from ..conf import clearance_settings

__all__ = ["AuditRouter"]

_APP_LABEL = "clearance"
_MODEL_NAME = "auditrecord"


def _is_audit_model(model: Any) -> bool:
    meta = getattr(model, "_meta", None)
    return meta is not None and meta.app_label == _APP_LABEL and meta.model_name == _MODEL_NAME


class AuditRouter:
    """Send ``clearance.AuditRecord`` to ``CLEARANCE["AUDIT_DATABASE"]``, and nothing else."""

    def _alias(self) -> str | None:
        alias = clearance_settings.AUDIT_DATABASE
        return alias if isinstance(alias, str) and alias else None

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        """The audit alias for audit records; no opinion otherwise."""
        return self._alias() if _is_audit_model(model) else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        """The audit alias for audit records; no opinion otherwise."""
        return self._alias() if _is_audit_model(model) else None

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """No opinion: audit records have no relations."""
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        """The audit table lives only in the audit alias, which holds nothing else."""
        alias = self._alias()
        if alias is None or alias == "default":
            return None
        is_audit = app_label == _APP_LABEL and model_name == _MODEL_NAME
        if is_audit:
            return db == alias
        if db == alias:
            return False
        return None
