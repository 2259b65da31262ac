"""The test suite on PostgreSQL (127.0.0.1:5432, user postgres, trust authentication).

``CLEARANCE_TEST_PG_NAME`` names the database (default ``clearance``; the test database is
``test_<name>``), so parallel runs can use separate databases.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import DATABASES

PG_NAME = os.environ.get("CLEARANCE_TEST_PG_NAME", "clearance")

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": PG_NAME,
        "USER": os.environ.get("CLEARANCE_TEST_PG_USER", "postgres"),
        "PASSWORD": os.environ.get("CLEARANCE_TEST_PG_PASSWORD", ""),
        "HOST": os.environ.get("CLEARANCE_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("CLEARANCE_TEST_PG_PORT", "5432"),
        "TEST": {"NAME": f"test_{PG_NAME}"},
    },
    "audit": DATABASES["audit"],
    "other": DATABASES["other"],
}
