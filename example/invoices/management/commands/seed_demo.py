"""``manage.py seed_demo``: (re)create the demo's groups, tenants, users and invoices.

Safe to run again: groups, tenants and users are updated in place, and the demo tenants'
memberships and invoices are wiped and re-created, so the demo always starts from the same state.

It also gives the console an audit history to show: the attempts in ``HISTORY`` are decided by
clearance (each refused by a different gate), recorded today by the configured audit sinks, and
copied onto the previous days of a fortnight, like the invoices' past approval dates. Audit
records are append-only, so the history is added only while the trail has no record older than
today.
"""

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

import clearance
from clearance.audit.models import AuditRecord
from invoices.models import Invoice, Membership, Tenant

PASSWORD = "demo"
#: Where ``runserver`` serves by default; ``make demo`` passes its ``DEMO_ADDR`` as ``--addr``.
DEFAULT_ADDR = "127.0.0.1:8000"

# Gate 1: what each role may attempt, as codenames of the Invoice model's permissions. A role
# is held within a tenant: a membership's role names its group (the scope "tenant" in
# invoices/authz.py), and nobody is put in these groups globally.
GROUPS = {
    "clerk": ["view_invoice", "add_invoice", "change_invoice", "submit_invoice"],
    "approver": ["view_invoice", "approve_invoice", "pay_invoice"],
    "auditor": ["view_invoice"],
}

# The one global group: its members may open the clearance console (with the staff flag),
# through the console's own permission, clearance_console.view_console. Superusers hold it
# anyway.
CONSOLE_GROUP = "console"

TENANTS = {"acme": "Acme", "globex": "Globex"}

# username -> {tenant slug: role}; the role is a group name, or "superuser" (a superuser holds
# every permission globally; the membership only makes them a member of the tenant).
USERS = {
    "alice": {"acme": "approver"},
    "bob": {"acme": "clerk"},
    "carol": {"acme": "approver", "globex": "auditor"},
    "dave": {"globex": "clerk"},
    "erin": {"acme": "auditor"},
    "admin": {"acme": "superuser"},
}

# Staff members open the admin; with the console's permission (the auditor group, superusers),
# the clearance console (/clearance/) too, where they see their own tenants' data only.
STAFF = {"admin", "erin"}

# (tenant, number, owner, amount, state, approved by, description)
INVOICES = [
    ("acme", "ACME-001", "bob", "120.00", "draft", None, "Office chairs"),
    ("acme", "ACME-002", "bob", "980.00", "submitted", None, "Laptop docking stations"),
    ("acme", "ACME-003", "alice", "450.00", "submitted", None, "Team offsite catering"),
    ("acme", "ACME-004", "bob", "18500.00", "submitted", None, "Server room cooling"),
    ("acme", "ACME-005", "bob", "2300.00", "approved", "alice", "Annual software licences"),
    ("acme", "ACME-006", "alice", "760.00", "approved", "carol", "Conference travel"),
    ("acme", "ACME-007", "bob", "310.00", "paid", "carol", "Printer maintenance"),
    ("acme", "ACME-008", "alice", "95.00", "draft", None, "Books for the team library"),
    ("globex", "GLX-001", "dave", "240.00", "draft", None, "Cleaning supplies"),
    ("globex", "GLX-002", "dave", "1250.00", "submitted", None, "Warehouse shelving"),
    ("globex", "GLX-003", "dave", "640.00", "approved", "carol", "Forklift service"),
    ("globex", "GLX-004", "dave", "2000.00", "paid", "carol", "Safety training"),
]

# Attempts the demo's users make day after day, each refused by a different gate:
# (username, action, invoice number).
HISTORY = [
    ("bob", "invoices.approve", "ACME-002"),  # permission: clerks do not approve
    ("erin", "invoices.pay", "ACME-005"),  # permission: auditors only look
    ("alice", "invoices.approve", "ACME-003"),  # policy four_eyes: her own invoice
    ("carol", "invoices.pay", "ACME-002"),  # policy approved: not approved yet
    ("dave", "invoices.view", "ACME-001"),  # permission: no role of his in Acme
    ("bob", "invoices.submit", "ACME-003"),  # policy owner: alice's invoice
    ("alice", "invoices.approve", "ACME-004"),  # invariant within_limit
    ("admin", "invoices.approve", "ACME-004"),  # invariant within_limit: superusers too
    ("carol", "invoices.approve", "GLX-002"),  # permission: in Globex she only reads
    ("admin", "invoices.view", "GLX-001"),  # policy tenant_member: the superuser is in Acme
]
HISTORY_DAYS = 14


class Command(BaseCommand):
    """Create (or reset) the demo data and print the logins."""

    help = "Create or reset the demo's groups, tenants, users and invoices (password: demo)."

    def add_arguments(self, parser: Any) -> None:
        """``--addr`` (where the demo is served) and ``--serving`` (``make demo`` serves it)."""
        parser.add_argument(
            "--addr",
            default=DEFAULT_ADDR,
            help=f"The address the demo is served on, as runserver takes it (default: "
            f"{DEFAULT_ADDR}).",
        )
        parser.add_argument(
            "--serving",
            action="store_true",
            help="The server is started right after (make demo): print where to open the demo "
            "rather than how to start it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Seed the database, then print a table of logins and the demo's URL."""
        with transaction.atomic():
            groups = self.seed_groups()
            tenants = self.seed_tenants()
            users = self.seed_users(groups, tenants)
            self.seed_invoices(tenants, users)
        recorded = self.seed_history(users)
        self.print_logins(
            recorded, addr=options.get("addr") or DEFAULT_ADDR, serving=options.get("serving")
        )

    def seed_groups(self) -> dict[str, Group]:
        """Create the role groups with exactly their Invoice permissions, and the console's."""
        create_permissions(apps.get_app_config("invoices"), verbosity=0)
        create_permissions(apps.get_app_config("clearance_console"), verbosity=0)
        content_type = ContentType.objects.get_for_model(Invoice)
        console = Permission.objects.get(
            content_type__app_label="clearance_console", codename="view_console"
        )
        groups = {}
        for name, codenames in GROUPS.items():
            group, _ = Group.objects.get_or_create(name=name)
            permissions = list(
                Permission.objects.filter(content_type=content_type, codename__in=codenames)
            )
            group.permissions.set(permissions)
            groups[name] = group
        group, _ = Group.objects.get_or_create(name=CONSOLE_GROUP)
        group.permissions.set([console])
        groups[CONSOLE_GROUP] = group
        return groups

    def seed_tenants(self) -> dict[str, Tenant]:
        """Create the demo tenants and remove their memberships and invoices."""
        tenants = {}
        for slug, name in TENANTS.items():
            tenant, _ = Tenant.objects.update_or_create(slug=slug, defaults={"name": name})
            tenants[slug] = tenant
        Invoice.objects.filter(tenant__in=tenants.values()).delete()
        Membership.objects.filter(tenant__in=tenants.values()).delete()
        return tenants

    def seed_users(self, groups: dict[str, Group], tenants: dict[str, Tenant]) -> dict[str, Any]:
        """Create the demo users and their tenant memberships (a role in each tenant).

        Staff who are not superusers are in the console group; nobody else is in any group: a
        user's roles are those of their memberships, each held in its tenant only.
        """
        user_model = get_user_model()
        password = make_password(PASSWORD)
        users = {}
        for username, roles in USERS.items():
            superuser = "superuser" in roles.values()
            user, _ = user_model.objects.update_or_create(
                username=username,
                defaults={
                    "email": f"{username}@example.com",
                    "password": password,
                    "is_active": True,
                    "is_staff": superuser or username in STAFF,
                    "is_superuser": superuser,
                },
            )
            console = username in STAFF and not superuser
            user.groups.set([groups[CONSOLE_GROUP]] if console else [])
            user.user_permissions.clear()
            Membership.objects.filter(user=user).delete()
            for slug, role in roles.items():
                Membership.objects.create(user=user, tenant=tenants[slug], role=role)
            users[username] = user
        return users

    def seed_invoices(self, tenants: dict[str, Tenant], users: dict[str, Any]) -> None:
        """Create invoices in every state in both tenants."""
        now = timezone.now()
        for days_ago, row in enumerate(reversed(INVOICES)):
            slug, number, owner, amount, state, approver, description = row
            Invoice.objects.create(
                tenant=tenants[slug],
                number=number,
                owner=users[owner],
                amount=Decimal(amount),
                state=state,
                description=description,
                approved_by=users[approver] if approver else None,
                approved_at=now - timedelta(days=days_ago) if approver else None,
            )

    def seed_history(self, users: dict[str, Any]) -> int:
        """Record the ``HISTORY`` attempts today and on the previous days; return the count.

        Nothing is added when the audit trail already has a record from before today.
        """
        today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        if AuditRecord.objects.filter(at__lt=today).exists():
            return 0
        draw = random.Random(2024)  # the same history every time
        copies = []
        for username, action, number in HISTORY:
            invoice = Invoice.objects.get(number=number)
            # Decided and recorded now, through the configured audit sinks.
            decision = clearance.authorize(users[username], action, invoice)
            for days_ago in range(1, HISTORY_DAYS):
                for _ in range(draw.randint(0, 3)):
                    during_office_hours = timedelta(minutes=draw.randint(8 * 60, 18 * 60))
                    at = today - timedelta(days=days_ago) + during_office_hours
                    copies.append(AuditRecord.from_decision(decision.replace(at=at)))
        AuditRecord.objects.bulk_create(copies)
        return len(HISTORY) + len(copies)

    def print_logins(
        self, recorded: int = 0, *, addr: str = DEFAULT_ADDR, serving: bool = False
    ) -> None:
        """Print who can log in, as what, and where (and the audit history just recorded).

        ``addr`` is where the demo is served; ``serving`` says that the server is being started
        already (``make demo``), so there is no ``runserver`` to tell about.
        """
        url = demo_url(addr)
        header = ("username", "password", "role per tenant")
        rows = [(username, PASSWORD, describe_roles(roles)) for username, roles in USERS.items()]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            return "  ".join(padded).rstrip()

        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write("")
        self.stdout.write(line(header))
        self.stdout.write(line(tuple("-" * width for width in widths)))
        for row in rows:
            self.stdout.write(line(row))
        self.stdout.write("")
        staff = ", ".join(sorted(STAFF))
        self.stdout.write(f"Staff ({staff}) also open the console ({url}clearance/) and the admin.")
        if recorded:
            days = f"{HISTORY_DAYS} days"
            self.stdout.write(f"Audit history: {recorded} recorded denials over the last {days}.")
        if serving:
            self.stdout.write(f"Open {url}")
        else:
            runserver = "runserver" if addr == DEFAULT_ADDR else f"runserver {addr}"
            self.stdout.write(f"Run `python manage.py {runserver}` and open {url}")


def describe_roles(roles: dict[str, str]) -> str:
    """A user's roles for people: ``approver in Acme, auditor in Globex``."""
    return ", ".join(f"{role} in {TENANTS[slug]}" for slug, role in roles.items())


def demo_url(addr: str) -> str:
    """The URL of the demo served on ``addr`` (``[host:]port``, as runserver takes it)."""
    host, _, port = addr.rpartition(":")
    if host in ("", "0.0.0.0", "[::]"):  # no host, or every interface: this machine answers
        host = "127.0.0.1"
    return f"http://{host}:{port}/"
