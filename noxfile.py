"""Nox sessions for django-clearance.

``tests`` installs the *built wheel* (never the source tree) with the test extra and one Django
series into a fresh virtualenv, then runs the suite twice: on SQLite (``tests.settings``) and
on PostgreSQL (``tests.settings_postgres``). Each session uses its own PostgreSQL test
database, so sessions never collide.

Interpreters are looked up in pyenv (``$(pyenv root)/versions/3.X.Y``) and on ``PATH``;
Python versions that are not installed are left out of the matrix. Nox is never allowed to
download an interpreter.

Examples::

    nox -l                                   # list the sessions available here
    nox -s "tests(py3.12-django5.2)"         # one combination
    nox -t django6                           # every Python with the newest Django 6.x
    CLEARANCE_WHEEL=dist/x.whl nox -s tests  # test a wheel that is already built
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.reuse_venv = "no"
nox.options.sessions = ["tests", "lint", "docs"]

# Django series -> (requirement, supported Pythons).
DJANGO: dict[str, tuple[str, tuple[str, ...]]] = {
    "5.2": ("Django>=5.2,<5.3", ("3.10", "3.11", "3.12", "3.13")),
    # The newest 6.x release on PyPI.
    "6": ("Django>=6,<7", ("3.12", "3.13")),
}


def _works(executable: str) -> bool:
    try:
        subprocess.run([executable, "-c", "import venv"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def _pyenv_root() -> str | None:
    try:
        out = subprocess.run(["pyenv", "root"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("PYENV_ROOT")
    return out.stdout.strip() or None


def _patch_level(path: str) -> tuple[int, ...]:
    match = re.search(r"/versions/(\d+)\.(\d+)\.(\d+)/", path)
    return tuple(int(part) for part in match.groups()) if match else (0,)


def _find_interpreter(version: str) -> str | None:
    """The newest installed CPython ``version`` (e.g. "3.12"), or None."""
    root = _pyenv_root()
    if root:
        candidates = glob.glob(
            os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")
        )
        for candidate in sorted(candidates, key=_patch_level, reverse=True):
            if _works(candidate):
                return candidate
    on_path = shutil.which(f"python{version}")
    if on_path and _works(on_path):
        return on_path
    return None


INTERPRETERS: dict[str, str] = {}
for _version in sorted({py for _, pys in DJANGO.values() for py in pys}):
    _found = _find_interpreter(_version)
    if _found:
        INTERPRETERS[_version] = _found

# Put each interpreter's directory first on PATH, so that nox resolves "3.12" to the
# interpreter found above rather than to a pyenv shim that is not activated.
os.environ["PATH"] = os.pathsep.join(
    [*(str(Path(exe).parent) for exe in INTERPRETERS.values()), os.environ.get("PATH", "")]
)

MATRIX = [
    nox.param(
        python,
        series,
        id=f"py{python}-django{series}",
        tags=[f"py{python}", f"django{series}"],
    )
    for series, (_, pythons) in DJANGO.items()
    for python in pythons
    if python in INTERPRETERS
]

_built_wheel: list[Path] = []


def _wheel(session: nox.Session) -> Path:
    """The wheel under test: $CLEARANCE_WHEEL, or one built once per nox run."""
    given = os.environ.get("CLEARANCE_WHEEL")
    if given:
        path = Path(given).resolve()
        if not path.is_file():
            session.error(f"CLEARANCE_WHEEL={given} is not a file")
        return path
    if not _built_wheel:
        outdir = ROOT / ".nox" / "_wheel"
        shutil.rmtree(outdir, ignore_errors=True)
        session.run(
            "python", "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(outdir), str(ROOT)
        )
        wheels = sorted(outdir.glob("django_clearance-*.whl"))
        if len(wheels) != 1:
            session.error(f"expected one wheel in {outdir}, found {wheels}")
        _built_wheel.append(wheels[0])
    return _built_wheel[0]


@nox.session
@nox.parametrize(("python", "django"), MATRIX)
def tests(session: nox.Session, django: str) -> None:
    """Run the suite against the installed wheel, on SQLite and on PostgreSQL."""
    requirement, _ = DJANGO[django]
    wheel = _wheel(session)
    session.install(f"django-clearance[test] @ {wheel.as_uri()}", requirement)
    session.run(
        "python",
        "-c",
        "import sys, django, clearance; "
        "print(f'Python {sys.version.split()[0]}, Django {django.get_version()}, '"
        "f'clearance from {clearance.__file__}')",
    )

    python_tag = str(session.python).replace(".", "")
    django_tag = django.replace(".", "")
    env = {
        # pytest-django prefixes "test_": test_clearance_py312_dj52, ...
        "CLEARANCE_TEST_PG_NAME": f"clearance_py{python_tag}_dj{django_tag}",
        # tests/test_packaging.py checks that the wheel, not src/, is under test.
        "CLEARANCE_EXPECT_INSTALLED": "1",
    }
    if "CI" in os.environ:
        env["CI"] = os.environ["CI"]
    # -p no:cacheprovider: sessions share the work tree; keep them from sharing state.
    pytest = ("pytest", "-p", "no:cacheprovider")
    session.run(*pytest, *session.posargs, env=env)
    # The test database is thrown away: commits need not wait for the disk (a per-connection
    # setting; visibility and isolation are unchanged).
    pg_env = {**env, "PGOPTIONS": os.environ.get("PGOPTIONS", "-c synchronous_commit=off")}
    session.run(*pytest, "--ds=tests.settings_postgres", *session.posargs, env=pg_env)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and strict mypy."""
    session.install("-e", ".[lint,test]")
    paths = [
        p for p in ("src", "tests", "example", "benchmarks", "noxfile.py") if (ROOT / p).exists()
    ]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy", env={"CLEARANCE_SKIP_EXAMPLE": "1"})


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install(".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(ROOT / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )
