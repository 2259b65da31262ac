"""The collation-sensitive tests on PostgreSQL with an ICU ``en-US`` collation.

Most hosted PostgreSQL databases (and the official container image) sort text linguistically:
``'apple' < 'M'`` is true there and false under the ``C`` locale of the main PostgreSQL pass.
The test database is created from a template made with ``LOCALE_PROVIDER icu``,
``ICU_LOCALE 'en-US'`` and ``TEMPLATE template0`` (``tests/conftest.py`` creates it, named after
``CLEARANCE_TEST_PG_NAME``, so parallel runs never share it). ``make test`` runs the tests listed
in the Makefile's ``ICU_TESTS`` with these settings.
"""

from __future__ import annotations

from .settings_postgres import *  # noqa: F403
from .settings_postgres import DATABASES, PG_NAME

#: The template database with the ICU collation; tests/conftest.py creates it when missing.
CLEARANCE_TEST_ICU_TEMPLATE = f"{PG_NAME}_icu_template"

DATABASES = {
    **DATABASES,
    "default": {
        **DATABASES["default"],
        "TEST": {"NAME": f"test_{PG_NAME}_icu", "TEMPLATE": CLEARANCE_TEST_ICU_TEMPLATE},
    },
}
