"""The ``LOGGING`` configuration the audit how-to documents works as written.

It is read from ``docs/how-to/audit.md`` itself and loaded in a fresh interpreter, the way
Django loads ``settings.LOGGING`` at startup (before any clearance module but the package has
been imported): every decision then writes one JSON line to the configured file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import clearance

ROOT = Path(__file__).resolve().parent.parent
HOW_TO = ROOT / "docs" / "how-to" / "audit.md"

# Run in a fresh interpreter: LOGGING from argv[1] (JSON), the log file in argv[2].
SCRIPT = r"""
import json, sys
import django
from django.conf import settings
import tests.settings as base

values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
values["LOGGING"] = json.loads(sys.argv[1])
values["CLEARANCE"] = {
    "AUDIT_SINKS": ["clearance.audit.sinks.LoggingSink"],
    "RECORD_ALLOWED": True,
}
settings.configure(**values)
django.setup()  # configures LOGGING first, as `manage.py` and a WSGI server do

from django.contrib.auth.models import AnonymousUser
from clearance import authorize
from tests.testapp.models import Document

visitor = AnonymousUser()
decisions = [
    authorize(visitor, "testapp.approve", Document(pk=7)),  # denied at gate 1
    authorize(visitor, "testapp.read", Document(pk=7)),  # allowed: ANYONE
    authorize(visitor, "testapp.approve", Document(pk=8)),  # denied at gate 1
]
print(json.dumps([[d.allowed, d.code] for d in decisions]))
"""


def documented_logging() -> dict[str, Any]:
    """The ``LOGGING = {...}`` block of the audit how-to, evaluated."""
    text = HOW_TO.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    [block] = [b for b in blocks if b.lstrip().startswith("LOGGING = {")]
    namespace: dict[str, Any] = {}
    exec(block, namespace)
    logging_dict: dict[str, Any] = namespace["LOGGING"]
    return logging_dict


def test_the_documented_logging_configuration_loads_and_writes_one_json_line_per_decision(
    tmp_path: Path,
) -> None:
    config = documented_logging()
    assert config["formatters"]["json"]["()"] == "clearance.audit.logging.JsonFormatter"
    log_file = tmp_path / "audit.jsonl"
    config["handlers"]["audit"]["filename"] = str(log_file)
    # The child imports clearance from where this process does.
    paths = [str(ROOT), str(Path(clearance.__file__).resolve().parent.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(config), str(log_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    decided = json.loads(run.stdout.strip().splitlines()[-1])
    assert decided == [
        [False, "permission.testapp.approve_document"],
        [True, "allowed"],
        [False, "permission.testapp.approve_document"],
    ]
    lines = log_file.read_text().splitlines()
    assert len(lines) == 3
    shipped = [json.loads(line) for line in lines]
    assert [(s["logger"], s["allowed"], s["code"]) for s in shipped] == [
        ("clearance.audit", allowed, code) for allowed, code in decided
    ]
    assert [s["level"] for s in shipped] == ["WARNING", "INFO", "WARNING"]
    assert [s["resource"] for s in shipped] == [
        {"model": "testapp.Document", "pk": 7},
        {"model": "testapp.Document", "pk": 7},
        {"model": "testapp.Document", "pk": 8},
    ]
