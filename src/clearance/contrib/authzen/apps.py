"""Django app configuration of the AuthZEN endpoint."""

from __future__ import annotations

from django.apps import AppConfig


class AuthZENConfig(AppConfig):
    """The ``clearance.contrib.authzen`` app: the callers' tokens, the endpoint's checks."""

    name = "clearance.contrib.authzen"
    label = "clearance_authzen"
    verbose_name = "Clearance AuthZEN endpoint"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks."""
        from . import checks  # noqa: F401  (registers the checks)
