"""``manage.py seed_demo`` builds the demo's world, and can be run again."""

import io
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command

from invoices.models import Invoice, Membership, Tenant

pytestmark = pytest.mark.django_db(databases="__all__")


def permissions_of(group: str) -> set[str]:
    """Return the codenames granted to a group."""
    return set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))


def test_groups_grant_the_roles_permissions(demo: str) -> None:
    assert permissions_of("clerk") == {
        "view_invoice",
        "add_invoice",
        "change_invoice",
        "submit_invoice",
    }
    assert permissions_of("approver") == {"view_invoice", "approve_invoice", "pay_invoice"}
    assert permissions_of("auditor") == {"view_invoice"}
    assert permissions_of("console") == {"view_console"}


def test_users_roles_and_tenants(demo: str) -> None:
    memberships = {
        (m.user.username, m.tenant.name, m.role)
        for m in Membership.objects.select_related("user", "tenant")
    }
    assert memberships == {
        ("alice", "Acme", "approver"),
        ("bob", "Acme", "clerk"),
        ("carol", "Acme", "approver"),
        ("carol", "Globex", "auditor"),
        ("dave", "Globex", "clerk"),
        ("erin", "Acme", "auditor"),
        ("admin", "Acme", "superuser"),
    }
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    # Roles are held per tenant: the only global group is the console's, for staff.
    in_groups = {
        (user.username, group)
        for user in get_user_model().objects.all()
        for group in user.groups.values_list("name", flat=True)
    }
    assert in_groups == {("erin", "console")}
    for user in get_user_model().objects.all():
        assert user.check_password("demo"), user.username


def test_invoices_in_every_state_in_both_tenants(demo: str) -> None:
    for tenant in Tenant.objects.all():
        states = set(tenant.invoices.values_list("state", flat=True))
        assert states == set(Invoice.State.values), tenant.name
    assert Invoice.objects.filter(owner__username="alice", state="submitted").exists()
    assert Invoice.objects.filter(state="submitted", amount__gt=10_000).count() == 1


def test_running_it_twice_gives_the_same_demo(demo: str) -> None:
    before = sorted(Invoice.objects.values_list("tenant__slug", "number", "state", "amount"))
    call_command("seed_demo", stdout=io.StringIO())
    after = sorted(Invoice.objects.values_list("tenant__slug", "number", "state", "amount"))

    assert after == before
    assert Tenant.objects.count() == 2
    assert Membership.objects.count() == 7
    assert get_user_model().objects.count() == 6


def test_it_prints_the_logins_and_the_url(demo: str) -> None:
    lines = demo.splitlines()
    assert any(line.split()[:3] == ["carol", "demo", "approver"] for line in lines if line)
    assert "approver in Acme, auditor in Globex" in demo
    assert "http://127.0.0.1:8000/" in demo
    # Run by hand, it says how to serve the demo.
    assert lines[-1] == "Run `python manage.py runserver` and open http://127.0.0.1:8000/"


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_make_demo_gets_the_address_it_serves_and_no_runserver_to_run(demo: str) -> None:
    # make demo: seed_demo --addr $(DEMO_ADDR) --serving, then runserver $(DEMO_ADDR).
    printed = seed("--addr", "127.0.0.1:8080", "--serving")

    assert "8000" not in printed
    assert "runserver" not in printed
    assert "console (http://127.0.0.1:8080/clearance/)" in printed
    assert printed.splitlines()[-1] == "Open http://127.0.0.1:8080/"


def test_another_address_by_hand_is_the_one_to_give_runserver(demo: str) -> None:
    printed = seed("--addr", "0.0.0.0:9000")

    assert "8000" not in printed
    assert printed.splitlines()[-1] == (
        "Run `python manage.py runserver 0.0.0.0:9000` and open http://127.0.0.1:9000/"
    )
    assert seed("--addr", "8081").splitlines()[-1].endswith("open http://127.0.0.1:8081/")


def test_the_makefile_passes_its_address_to_seed_demo() -> None:
    makefile = (Path(__file__).resolve().parents[3] / "Makefile").read_text()
    recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "manage.py seed_demo --addr $(DEMO_ADDR) --serving" in recipe
    assert "manage.py runserver $(DEMO_ADDR)" in recipe
