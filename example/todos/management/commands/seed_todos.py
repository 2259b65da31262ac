"""``manage.py seed_todos``: the Todo scenario's roles and users, and a token for a caller."""

from django.core.management.base import BaseCommand

from clearance.contrib.authzen.models import Caller

from ...scenario import seed


class Command(BaseCommand):
    """Seed the Todo scenario (idempotent) and issue a fresh token for the ``todo-backend``."""

    help = "Create the Todo scenario's roles and users, and a bearer token for its backend."

    def handle(self, *args, **options):
        users = seed()
        caller = Caller.objects.filter(name="todo-backend").first()
        if caller is None:
            caller, token = Caller.issue("todo-backend", subject_types=["user"])
        else:
            token = caller.set_token()
            caller.save()
        self.stdout.write(f"Seeded {len(users)} users of the Todo scenario.")
        self.stdout.write(f"Bearer token of the caller {caller.name!r}: {token}")
