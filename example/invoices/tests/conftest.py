"""Fixtures for the demo's tests: the seeded demo data and logged-in clients."""

import io
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.test import Client

from invoices.models import Invoice


@pytest.fixture
def demo() -> str:
    """Seed the demo data with ``manage.py seed_demo``; return what the command printed."""
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def user(demo: str) -> Callable[[str], AbstractBaseUser]:
    """Return a function fetching a demo user by username."""

    def get(username: str) -> AbstractBaseUser:
        return get_user_model().objects.get(username=username)

    return get


@pytest.fixture
def client_for(user: Callable[[str], AbstractBaseUser]) -> Callable[[str], Client]:
    """Return a function giving a test client logged in as a demo user."""

    def login(username: str) -> Client:
        client = Client()
        client.force_login(user(username))
        return client

    return login


@pytest.fixture
def invoice(demo: str) -> Callable[[str], Invoice]:
    """Return a function fetching a seeded invoice, fresh from the database, by its number."""

    def get(number: str) -> Invoice:
        return Invoice.objects.get(number=number)

    return get
