"""Django settings for the benchmarks.

The database is SQLite in a temporary directory created for the run (removed at exit), with a
second SQLite file as the ``audit`` alias. ``CLEARANCE_BENCH_DATABASE=postgresql`` runs on
PostgreSQL instead (database ``CLEARANCE_BENCH_PG_NAME``, default ``clearance_bench``; the run
creates and drops ``test_<name>``), with the ``CLEARANCE_TEST_PG_*`` connection variables of
the test suite.

Only Django's ``ModelBackend`` is configured: each peer's measurement installs its own
authentication backend for its rows (``benchmarks.harness.backends``), as a project that uses
that library would, so no row pays for another library's backend.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False  # DEBUG would record every query and slow every check down
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["testserver"]

RUN_DIR = Path(tempfile.mkdtemp(prefix="clearance-bench-"))

if os.environ.get("CLEARANCE_BENCH_DATABASE", "sqlite").lower().startswith("postgres"):
    _name = os.environ.get("CLEARANCE_BENCH_PG_NAME", "clearance_bench")
    _default = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _name,
        "USER": os.environ.get("CLEARANCE_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("CLEARANCE_TEST_PG_PASSWORD", ""),
        "HOST": os.environ.get("CLEARANCE_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("CLEARANCE_TEST_PG_PORT", "5432"),
        "TEST": {"NAME": f"test_{_name}"},
    }
else:
    _default = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(RUN_DIR / "bench.sqlite3"),
        "TEST": {"NAME": str(RUN_DIR / "bench.sqlite3")},
    }

DATABASES = {
    "default": _default,
    # The audit trail in a database of its own, as the docs recommend for SQLite.
    "audit": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(RUN_DIR / "audit.sqlite3"),
        "TEST": {"NAME": str(RUN_DIR / "audit.sqlite3")},
    },
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "rules",
    "bridgekeeper",
    "guardian",
    "clearance",
    "clearance.contrib.authzen",
    "benchmarks.benchapp",
]

AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The core comparison runs with audit off; the audit table switches each sink on in turn.
CLEARANCE: dict[str, object] = {"AUDIT_SINKS": []}

# guardian creates an anonymous user row after migrate; keep its name out of the way.
ANONYMOUS_USER_NAME = "bench-anonymous"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"clearance": {"handlers": ["null"], "propagate": False}},
}
