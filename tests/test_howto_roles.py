"""The how-to "Roles per organisation" (docs/how-to/roles-per-organisation.md) says what the
example project does, from its own code blocks:

* a ``python`` block titled with a file of the example is in that file, line for line;
* the ``pycon`` blocks are one shell session on the seeded example, run as a doctest
  (``...`` stands for the primary keys, which differ from one database to the next);
* the ``console`` block is ``manage.py clearance explain``'s output, numbers aside;
* the ``text`` block's lines are lines of the example's matrix (the golden file).
"""

from __future__ import annotations

import doctest
import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
HOWTO = ROOT / "docs" / "how-to" / "roles-per-organisation.md"

pytestmark = [
    pytest.mark.skipif(not HOWTO.exists(), reason="no documentation beside the tests"),
    pytest.mark.skipif(not apps.is_installed("invoices"), reason="the example is not installed"),
]

FENCE = re.compile(
    r"^```(?P<lang>[\w+-]+)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)


def blocks(lang: str, attrs: str = "") -> list[str]:
    text = HOWTO.read_text(encoding="utf-8")
    return [m["body"] for m in FENCE.finditer(text) if m["lang"] == lang and attrs in m["attrs"]]


def numbers_aside(text: str) -> str:
    return re.sub(r"\d+", "N", text)


@pytest.mark.parametrize(
    "path", ["example/invoices/authz.py", "example/invoices/tests/test_scopes.py"]
)
def test_the_code_shown_is_the_examples(path: str) -> None:
    (block,) = blocks("python", f'title="{path}"')
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    for line in block.splitlines():
        if line.strip():
            assert line in lines, f"not in {path}: {line!r}"


@pytest.mark.django_db(databases="__all__")
def test_the_shell_session_runs_on_the_seeded_example() -> None:
    call_command("seed_demo", stdout=io.StringIO())
    session = "\n".join(blocks("pycon"))
    assert session.count(">>> ") > 20
    test = doctest.DocTestParser().get_doctest(session, {}, HOWTO.name, str(HOWTO), 0)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=out.write)
    assert result.failed == 0, out.getvalue()


@pytest.mark.django_db(databases="__all__")
def test_the_explain_output_is_the_commands(settings: Any) -> None:
    settings.CLEARANCE = {"NATURAL_KEYS": {"invoices.Invoice": "number"}}
    call_command("seed_demo", stdout=io.StringIO())
    (block,) = [b for b in blocks("console") if "clearance explain" in b]
    command, *expected = block.splitlines()
    assert command == "$ python manage.py clearance explain carol invoices.approve ACME-002"
    out = io.StringIO()
    call_command("clearance", *command.split()[4:], stdout=out)
    assert numbers_aside(out.getvalue()) == numbers_aside("\n".join(expected) + "\n")


def test_the_matrix_lines_are_the_examples() -> None:
    (block,) = blocks("text")
    golden = (ROOT / "tests" / "golden" / "matrix.txt").read_text(encoding="utf-8").splitlines()
    for line in block.splitlines():
        assert line in golden, f"not in tests/golden/matrix.txt: {line!r}"
