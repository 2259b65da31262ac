"""``manage.py authzen_caller``: issue, rotate and revoke the bearer tokens of AuthZEN callers."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...models import Caller


class Command(BaseCommand):
    """Issue (or rotate) a caller's token, revoke it, or list the callers."""

    help = (
        "Manage the services allowed to call the AuthZEN endpoint. The token is printed once; "
        "only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """``issue NAME [--subject-type T ...]``, ``revoke NAME``, ``list``."""
        sub = parser.add_subparsers(dest="command", required=True)
        issue = sub.add_parser("issue", help="create a caller, or give it a new token")
        issue.add_argument("name")
        issue.add_argument(
            "--subject-type",
            action="append",
            dest="subject_types",
            default=None,
            help="a subject type the caller may ask about (repeat; '*' for all)",
        )
        revoke = sub.add_parser("revoke", help="deactivate a caller")
        revoke.add_argument("name")
        sub.add_parser("list", help="list the callers")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the sub-command."""
        command = options["command"]
        if command == "list":
            for caller in Caller.objects.all():
                state = "active" if caller.is_active else "revoked"
                types = ", ".join(caller.subject_types) or "(no subject type)"
                self.stdout.write(f"{caller.name}\t{state}\t{types}")
            return
        name = options["name"]
        if command == "revoke":
            if not Caller.objects.filter(name=name).update(is_active=False):
                raise CommandError(f"No caller named {name!r}.")
            self.stdout.write(f"Revoked {name!r}.")
            return
        caller = Caller.objects.filter(name=name).first()
        if caller is None:
            caller = Caller(name=name)
        if options["subject_types"] is not None:
            caller.subject_types = options["subject_types"]
        caller.is_active = True
        token = caller.set_token()
        caller.save()
        self.stdout.write(token)
