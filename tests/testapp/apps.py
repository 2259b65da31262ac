"""A small app the library's own tests declare rules on."""

from django.apps import AppConfig


class TestappConfig(AppConfig):
    """Test models: tenants, memberships, documents."""

    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"
