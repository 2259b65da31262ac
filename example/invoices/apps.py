"""Application configuration of the invoices app."""

from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    """The invoices app; its ``authz.py`` is discovered by clearance."""

    name = "invoices"
    label = "invoices"
    verbose_name = "Invoices"
    default_auto_field = "django.db.models.BigAutoField"
