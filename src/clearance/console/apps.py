"""Django app configuration of the console."""

from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The ``clearance.console`` app: templates, a stylesheet, URLs and its permission."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "clearance.console"
    label = "clearance_console"
    verbose_name = "Clearance console"
