"""Django app configuration of the Todo scenario."""

from django.apps import AppConfig


class TodosConfig(AppConfig):
    """The ``todos`` app."""

    name = "todos"
    default_auto_field = "django.db.models.BigAutoField"
