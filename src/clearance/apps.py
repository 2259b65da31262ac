"""Django app configuration: autodiscovers ``authz`` modules when the app registry is ready."""

from __future__ import annotations

from django.apps import AppConfig


class ClearanceConfig(AppConfig):
    """The ``clearance`` app."""

    name = "clearance"
    label = "clearance"
    verbose_name = "Clearance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Import every app's ``authz.py`` and register the system checks."""
        from . import checks, invariant_checks  # noqa: F401  (registers the checks)
        from .actions import autodiscover
        from .audit import checks as audit_checks  # noqa: F401  (registers the audit checks)
        from .audit.models import before_read
        from .audit.recording import pending
        from .invariants import install_guards
        from .snapshot import check_snapshot  # noqa: F401  (registers the snapshot check)

        autodiscover()
        # Model invariants hold on every save() and delete(), whoever calls.
        install_guards()
        # A process reads its own audit records: those waiting outside a scope are written first.
        if pending.write_waiting not in before_read:
            before_read.append(pending.write_waiting)
