"""Configure Django for the benchmarks and create their database (once per process)."""

from __future__ import annotations

import atexit
import os
import shutil
from typing import Any

_ready = False


def setup() -> None:
    """Configure Django with :mod:`benchmarks.settings` and create a fresh, migrated database.

    Idempotent. The database (and the ``audit`` alias) are created for this run and removed
    when the process exits.
    """
    global _ready
    if _ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django
    from django.conf import settings
    from django.db import connections

    django.setup()
    # atexit runs last-in first-out: drop the databases, then remove the directory.
    run_dir = getattr(settings, "RUN_DIR", None)
    if run_dir is not None:
        atexit.register(shutil.rmtree, run_dir, True)
    for alias in ("default", "audit"):
        connection = connections[alias]
        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        if connection.vendor != "sqlite":
            atexit.register(_destroy, connection, old_name)
    _ready = True


def _destroy(connection: Any, old_name: str) -> None:
    connection.creation.destroy_test_db(old_name, verbosity=0)


def vendor() -> str:
    """The default database's vendor and version, e.g. ``sqlite 3.45.1``."""
    from django.db import connection

    with connection.cursor():
        pass
    version = (
        ".".join(str(v) for v in connection.Database.sqlite_version_info)
        if (connection.vendor == "sqlite")
        else _pg_version(connection)
    )
    return f"{connection.vendor} {version}"


def _pg_version(connection: Any) -> str:
    number = int(connection.pg_version)
    return f"{number // 10000}.{number % 100}"
