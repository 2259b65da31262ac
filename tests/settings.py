"""Settings for the test suite (SQLite). ``tests.settings_postgres`` runs it on PostgreSQL."""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
EXAMPLE_DIR = BASE_DIR.parent / "example"
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

# Test databases are in memory (one per alias), so parallel runs never share a file.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "default.sqlite3"),
    },
    "audit": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "audit.sqlite3"),
    },
    # A second database for the application's models (perform() on an object stored there).
    "other": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / "other.sqlite3"),
    },
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "tests.replayapp",
    "clearance",
    "clearance.console",
    "clearance.contrib.authzen",
    "tests.testapp",
    "tests.writepaths",
    "tests.githubapp",
]
if (EXAMPLE_DIR / "invoices" / "apps.py").exists() and not os.environ.get("CLEARANCE_SKIP_EXAMPLE"):
    INSTALLED_APPS.append("invoices")
if (EXAMPLE_DIR / "todos" / "apps.py").exists() and not os.environ.get("CLEARANCE_SKIP_EXAMPLE"):
    INSTALLED_APPS.append("todos")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CLEARANCE: dict[str, object] = {}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"clearance": {"handlers": ["null"], "propagate": True}},
}
