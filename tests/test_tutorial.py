"""The tutorial (docs/tutorial/index.md) builds a project that works, from its own code blocks.

The test follows the page from top to bottom in a temporary directory:

* a code block titled with a path (```` ```python title="shop/models.py" ````) is that file, whole;
  a title ending in ``(add at the end)`` is appended to the file;
* a ``console`` block's ``$`` lines are run: ``django-admin`` and ``python manage.py`` with this
  interpreter (``runserver`` excepted; ``createsuperuser`` without prompts); setting up a
  virtualenv and ``pip install`` are left out, since clearance is installed already;
* consecutive ``pycon`` blocks are one ``manage.py shell`` session, run as a doctest;
* ``manage.py test`` must run as many tests as the page's ``tests.py`` declares, and pass.

Finally the pages the tutorial's last step describes are fetched as its superuser would see them.

The tutorial's project keeps the database ``startproject`` gives it, SQLite, in both passes of
the suite: it is the project a reader builds, run as written. (The PostgreSQL pass runs it too,
unchanged; the library's behaviour on PostgreSQL is what the rest of that pass tests.)
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial" / "index.md"

pytestmark = [
    pytest.mark.skipif(not TUTORIAL.exists(), reason="no documentation beside the tests"),
    pytest.mark.skipif(
        importlib.util.find_spec("rest_framework") is None,
        reason="the tutorial uses Django REST framework (pip install 'django-clearance[drf]')",
    ),
]

FENCE = re.compile(
    r"^```(?P<lang>[\w+-]+)(?P<attrs>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)
TITLE = re.compile(r'title="(?P<title>[^"]+)"')
APPEND = " (add at the end)"
# Commands a reader runs that this test leaves out: the interpreter running it has clearance.
SETUP_COMMANDS = ("python3 -m venv ", "source ", "pip install ")


@dataclass
class Step:
    """One code block of the tutorial, in page order."""

    kind: str  # "file", "commands" or "session"
    body: str
    path: str = ""
    append: bool = False
    sessions: list[str] = field(default_factory=list)


def tutorial_steps(text: str) -> list[Step]:
    """The tutorial's code blocks that build or exercise the project, in order."""
    steps: list[Step] = []
    for fence in FENCE.finditer(text):
        lang, attrs, body = fence["lang"], fence["attrs"], fence["body"]
        title = TITLE.search(attrs)
        if title:
            path = title["title"]
            append = path.endswith(APPEND)
            steps.append(Step("file", body, path.removesuffix(APPEND), append))
        elif lang == "console":
            steps.append(Step("commands", body))
        elif lang == "pycon":
            if steps and steps[-1].kind == "session":
                steps[-1].sessions.append(body)
            else:
                steps.append(Step("session", body, sessions=[body]))
    return steps


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH"}}
    env.update(
        DJANGO_SUPERUSER_USERNAME="admin",
        DJANGO_SUPERUSER_EMAIL="admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="admin",
    )
    return env


def _run(argv: list[str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=_env(), input=stdin, capture_output=True, text=True, timeout=180
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{shlex.join(argv)} failed in {cwd}:\n{output}"
    return output


# Runs consecutive ``pycon`` blocks (separated by NUL characters on stdin) as one doctest.
SESSION = textwrap.dedent(
    """
    import doctest, os, sys
    import django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django.setup()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    globs = {"__name__": "__console__"}
    for number, block in enumerate(sys.stdin.read().split("\\0"), start=1):
        test = doctest.DocTestParser().get_doctest(block, globs, f"pycon block {number}", None, 0)
        runner.run(test, clear_globs=False)
        globs = test.globs  # the next block goes on in the same session
    sys.exit(1 if runner.failures else 0)
    """
)

# What the tutorial's last step says its superuser sees, fetched with Django's test client.
LOOK_AROUND = textwrap.dedent(
    """
    import os, sys
    import django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment
    setup_test_environment()
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    for path in ["/clearance/actions/", "/clearance/matrix/", "/clearance/audit/"]:
        response = client.get(path)
        print(f"=== {path} {response.status_code}")
        print(response.content.decode())
    client.force_login(User.objects.get(username="ada"))
    response = client.get("/orders/")
    print(f"=== /orders/ {response.status_code}")
    print(response.content.decode())
    """
)


def _run_commands(step: Step, cwd: Path, seen: dict[str, str]) -> Path:
    for line in step.body.splitlines():
        if not line.startswith("$ "):
            continue
        command = line[2:].strip()
        argv = shlex.split(command)
        if command.startswith(SETUP_COMMANDS):
            continue
        if argv[0] == "mkdir":
            (cwd / argv[1]).mkdir()
        elif argv[0] == "cd":
            cwd = cwd / argv[1]
        elif argv[0] == "django-admin":
            seen[command] = _run([sys.executable, "-m", "django", *argv[1:]], cwd)
        elif argv[:2] == ["python", "manage.py"]:
            args = argv[2:]
            if args[0] == "runserver":
                continue
            if args[0] == "createsuperuser":
                args = [*args, "--noinput"]
            seen[command] = _run([sys.executable, "manage.py", *args], cwd)
        else:
            pytest.fail(f"the tutorial runs a command this test does not know: {command}")
    return cwd


def build_tutorial_project(directory: Path) -> tuple[Path, dict[str, str], str]:
    """Follow the tutorial in ``directory``: the project, each command's output, the look around."""
    cwd = directory
    seen: dict[str, str] = {}
    for step in tutorial_steps(TUTORIAL.read_text(encoding="utf-8")):
        if step.kind == "file":
            target = cwd / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if step.append:
                assert target.exists(), f"the tutorial adds to {step.path} before it exists"
                target.write_text(target.read_text(encoding="utf-8") + "\n" + step.body)
            else:
                target.write_text(step.body)
        elif step.kind == "commands":
            cwd = _run_commands(step, cwd, seen)
        else:
            seen["pycon"] = _run(
                [sys.executable, "-c", SESSION], cwd, stdin="\0".join(step.sessions)
            )
    look = _run([sys.executable, "-c", LOOK_AROUND], cwd)
    return cwd, seen, look


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    return build_tutorial_project(tmp_path_factory.mktemp("tutorial"))


def test_the_tutorial_builds_a_project_whose_tests_pass(
    tutorial: tuple[Path, dict[str, str], str],
) -> None:
    project, seen, _ = tutorial
    output = seen["python manage.py test shop"]
    declared = len(re.findall(r"^    def test_", (project / "shop" / "tests.py").read_text(), re.M))
    ran = re.search(r"^Ran (\d+) tests? in", output, re.MULTILINE)
    assert ran, output
    assert int(ran.group(1)) == declared >= 5, output
    assert re.search(r"^OK\b", output, re.MULTILINE), output


def test_the_tutorial_states_how_many_tests_pass(
    tutorial: tuple[Path, dict[str, str], str],
) -> None:
    project, _, _ = tutorial
    declared = len(re.findall(r"^    def test_", (project / "shop" / "tests.py").read_text(), re.M))
    numbers = {5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert f"All {numbers[declared]} tests pass." in TUTORIAL.read_text(encoding="utf-8")


def test_the_shell_session_prints_what_the_tutorial_shows(
    tutorial: tuple[Path, dict[str, str], str],
) -> None:
    _, seen, _ = tutorial
    assert "pycon" in seen  # the doctest ran (and passed, or building the project failed)


def test_the_system_checks_report_what_the_tutorial_says(
    tutorial: tuple[Path, dict[str, str], str],
) -> None:
    _, seen, _ = tutorial
    ids = set(re.findall(r"\((clearance\.[EWI]\d+)\)", seen["python manage.py check"]))
    assert ids == {"clearance.I501"}, seen["python manage.py check"]


def test_the_console_and_the_list_show_what_the_last_step_describes(
    tutorial: tuple[Path, dict[str, str], str],
) -> None:
    _, _, look = tutorial
    pages = {chunk.split("\n", 1)[0]: chunk.split("\n", 1)[1] for chunk in look.split("=== ")[1:]}
    actions = pages["/clearance/actions/ 200"]
    for name in ["shop.view", "shop.cancel", "own_order", "placed", "never_cancel_shipped"]:
        assert name in actions
    assert "Customers" in pages["/clearance/matrix/ 200"]
    audit = pages["/clearance/audit/ 200"]
    for refusal in [
        "Customers cancel their own orders only.",  # bob, at the policy gate
        "shop.cancel_order",  # eve, at the permission gate
        "A shipped order is never cancelled.",  # the refused save of Cups
    ]:
        assert refusal in audit
    orders = pages["/orders/ 200"]
    assert "Tea" in orders and "Cups" in orders
    assert orders.count(">Cancel</button>") == 1  # Tea may be cancelled, the shipped Cups not
