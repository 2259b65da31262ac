"""App configuration of the benchmark scenario."""

from __future__ import annotations

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The ``bench`` app; loads the peers' declarations of the approval rule when ready."""

    name = "benchmarks.benchapp"
    label = "bench"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the rule with django-rules and bridgekeeper (clearance finds ``authz``)."""
        from . import peers  # noqa: F401
