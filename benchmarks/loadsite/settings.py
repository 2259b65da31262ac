"""Settings of the served example: the demo's own, on the run's databases, quiet, DEBUG off.

``CLEARANCE_LOAD_DIR`` is the run's directory (SQLite files); with
``CLEARANCE_LOAD_PG_NAME`` set, the default and audit databases are that PostgreSQL database
(the ``CLEARANCE_TEST_PG_*`` connection variables of the test suite), as in the issue's setup:
the audit trail in the application's database, written through the dedicated connection when
the request holds a transaction.
"""

from __future__ import annotations

import os
from typing import Any

from demo.settings import *  # noqa: F403
from demo.settings import CLEARANCE as DEMO_CLEARANCE

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "benchmarks.loadsite.urls"

_dir = os.environ["CLEARANCE_LOAD_DIR"]
_pg_name = os.environ.get("CLEARANCE_LOAD_PG_NAME")
DATABASES: dict[str, Any]
if _pg_name:
    _pg = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _pg_name,
        "USER": os.environ.get("CLEARANCE_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("CLEARANCE_TEST_PG_PASSWORD", ""),
        "HOST": os.environ.get("CLEARANCE_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("CLEARANCE_TEST_PG_PORT", "5432"),
        "CONN_MAX_AGE": 60,
    }
    DATABASES = {"default": _pg}
    CLEARANCE = {"GUARD_EXEMPT": [*DEMO_CLEARANCE["GUARD_EXEMPT"], r"^hand/"]}
    DATABASE_ROUTERS: list[str] = []
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{_dir}/db.sqlite3"},
        "audit": {"ENGINE": "django.db.backends.sqlite3", "NAME": f"{_dir}/audit.sqlite3"},
    }
    CLEARANCE = {**DEMO_CLEARANCE, "GUARD_EXEMPT": [*DEMO_CLEARANCE["GUARD_EXEMPT"], r"^hand/"]}
CLEARANCE["AUDIT_SPOOL"] = f"{_dir}/spool"
# "thread" (the default) or "process": see benchmarks.load, AUDIT_CONNECTION.
CLEARANCE["AUDIT_CONNECTION"] = os.environ.get("CLEARANCE_LOAD_AUDIT_CONNECTION", "thread")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        "clearance": {"handlers": ["null"], "propagate": False},
        "django.request": {"handlers": ["null"], "propagate": False},
    },
}
