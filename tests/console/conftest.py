"""Fixtures for the console's tests: a staff member, a non-staff user, unique names."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture(autouse=True)
def console_urls(settings: object) -> None:
    """Serve the console under /clearance/."""
    settings.ROOT_URLCONF = "tests.console.urls"  # type: ignore[attr-defined]


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name no other test uses (audit rows written outside the test transaction stay)."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("staffer", password="x", is_staff=True)


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
