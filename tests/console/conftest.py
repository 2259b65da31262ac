"""Fixtures for the console's tests: a staff member, a non-staff user, unique names."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client


@pytest.fixture(autouse=True)
def console_urls(settings: object) -> None:
    """Serve the console under /clearance/."""
    settings.ROOT_URLCONF = "tests.console.urls"  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def console_sees_all(settings: object) -> None:
    """The console's pages are tested on a single-tenant project (tests of the scope say
    otherwise)."""
    clearance = getattr(settings, "CLEARANCE", {})
    settings.CLEARANCE = {**clearance, "CONSOLE_SEES_ALL": True}  # type: ignore[attr-defined]


def console_permission() -> Permission:
    return Permission.objects.get(
        content_type__app_label="clearance_console", codename="view_console"
    )


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name no other test uses (audit rows written outside the test transaction stay)."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def staff(db: None) -> User:
    """A staff member who holds the console's permission."""
    user = User.objects.create_user("staffer", password="x", is_staff=True)
    user.user_permissions.add(console_permission())
    return User.objects.get(pk=user.pk)


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def member_client(make_user: Callable[..., User]) -> Client:
    """A signed-in user who is not staff (an approver, even)."""
    client = Client()
    client.force_login(make_user("member"))
    return client
