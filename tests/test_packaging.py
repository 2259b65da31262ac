"""The distribution ships everything the package needs.

These checks run when ``CLEARANCE_EXPECT_INSTALLED=1`` (the nox ``tests`` sessions set it):
the suite must then be exercising the installed wheel, not the source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import clearance

SOURCE = Path(__file__).resolve().parent.parent / "src" / "clearance"
INSTALLED = Path(clearance.__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    os.environ.get("CLEARANCE_EXPECT_INSTALLED") != "1",
    reason="set CLEARANCE_EXPECT_INSTALLED=1 to check an installed wheel",
)


def _data_files(root: Path) -> set[str]:
    """Every file of the package that is not Python source or bytecode."""
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in {".py", ".pyc", ".pyo"}
    }


def test_clearance_is_imported_from_site_packages() -> None:
    assert "site-packages" in INSTALLED.parts, INSTALLED
    assert SOURCE.resolve() != INSTALLED
    assert "src" not in INSTALLED.parts, INSTALLED


def test_wheel_is_typed() -> None:
    assert (INSTALLED / "py.typed").is_file()


def test_wheel_ships_every_module_of_the_source_tree() -> None:
    if not SOURCE.is_dir():
        pytest.skip("no source tree beside the tests")
    source = {
        str(p.relative_to(SOURCE)) for p in SOURCE.rglob("*.py") if "__pycache__" not in p.parts
    }
    installed = {str(p.relative_to(INSTALLED)) for p in INSTALLED.rglob("*.py")}
    assert source - installed == set()


def test_wheel_ships_templates_static_files_and_other_data() -> None:
    if not SOURCE.is_dir():
        pytest.skip("no source tree beside the tests")
    missing = _data_files(SOURCE) - _data_files(INSTALLED)
    assert missing == set()
    templates = SOURCE / "templates"
    if templates.is_dir():
        assert (INSTALLED / "templates").is_dir()
        assert any((INSTALLED / "templates").rglob("*.html"))
