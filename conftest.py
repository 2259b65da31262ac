"""Suite-wide test setup: PostgreSQL reachability and the ``postgres`` marker.

The suite runs twice: on SQLite (``tests.settings``) and on PostgreSQL
(``--ds=tests.settings_postgres``). Tests marked ``postgres`` need a real server and skip in the
SQLite run. In the PostgreSQL run an unreachable server skips every test with a visible reason,
except under CI (``CI=true``), where it is a failure.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import Phase, settings

# `make mutate` runs each mutant's tests with --hypothesis-profile=mutation: a property a mutant
# breaks fails at its first counterexample, without the search for a smaller one. That search
# re-runs the test for up to minutes (each example builds rows), so a mutant a law catches would
# otherwise often be stopped as a timeout, after the longest wait of the run.
settings.register_profile("mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate))


def _postgres_problem() -> str | None:
    from django.conf import settings

    db = settings.DATABASES["default"]
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'django-clearance[postgres]')"
    try:
        conn = psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=int(db.get("PORT") or 5432),
            user=db.get("USER") or "postgres",
            password=db.get("PASSWORD") or None,
            dbname="postgres",
            connect_timeout=3,
        )
    except Exception as exc:
        return f"PostgreSQL is not reachable at {db.get('HOST')}:{db.get('PORT')}: {exc}"
    conn.close()
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    vendor_is_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    if not vendor_is_postgres:
        skip = pytest.mark.skip(reason="needs PostgreSQL: runs under --ds=tests.settings_postgres")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
        return
    problem = _postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.exit(f"CI needs PostgreSQL and it is missing: {problem}", returncode=1)
    skip = pytest.mark.skip(reason=problem)
    for item in items:
        item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    from django.conf import settings

    return f"clearance: database engine {settings.DATABASES['default']['ENGINE']}"
