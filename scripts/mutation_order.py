"""A pytest plugin for ``make mutate``: run each mutant's fastest tests first.

mutmut stops a mutant's run at the first failing test (``-x``), but its fork server hands the
tests over in no particular order, so a mutant that a 10 ms test kills may first sit through
seconds of thread and subprocess tests. scripts/mutate.py loads this plugin (``PYTEST_PLUGINS``)
for its runs; it orders the collected tests by the time each took in mutmut's plain run
(``mutmut-stats.json`` in the mutants directory), the unknown ones last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Sort ``items`` by their recorded duration (stable: file order among equals)."""
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    try:
        durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
