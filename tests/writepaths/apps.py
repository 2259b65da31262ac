"""Models for the write-path tests: every shape of model invariant, every way to write."""

from django.apps import AppConfig


class WritepathsConfig(AppConfig):
    """Organisations, accounts, shops, projects: one model per invariant shape."""

    name = "tests.writepaths"
    label = "writepaths"
    default_auto_field = "django.db.models.BigAutoField"
