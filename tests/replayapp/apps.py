"""A small app for the replay tests: a model that knows when each row last changed."""

from django.apps import AppConfig


class ReplayappConfig(AppConfig):
    """Tickets, with an ``auto_now`` field."""

    name = "tests.replayapp"
    label = "replayapp"
    default_auto_field = "django.db.models.BigAutoField"
