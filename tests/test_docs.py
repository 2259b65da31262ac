"""The documentation site builds, and the API reference reads as prose, not as Sphinx markup.

The docstrings cross-reference each other with Sphinx roles (``:func:`authorize```); the hook
``docs/hooks/sphinx_roles.py`` renders them as code linked to the reference. These tests build
the site with ``mkdocs build --strict`` (skipped where the documentation tools are not installed,
e.g. when the built wheel is tested). The settings reference has a row and a section for every
``CLEARANCE`` key, with the default the code has.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not (ROOT / "mkdocs.yml").exists(), reason="no documentation sources beside the tests"
)

SPHINX_ROLE = re.compile(r":(?:py:)?(?:data|attr|class|func|meth|mod|exc|obj|const):")
# A role applied to a target, as Markdown renders an unprocessed one: ``:func:<code>x</code>``.
# (Prose may name a role in a code span, as the changelog does: ``<code>:func:</code>``.)
APPLIED_ROLE = re.compile(SPHINX_ROLE.pattern + r"(?=<code>|`)")
PREFORMATTED = re.compile(r"<pre\b.*?</pre>", flags=re.DOTALL)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation, built once for this module."""
    if any(importlib.util.find_spec(name) is None for name in ("mkdocs", "mkdocstrings")):
        pytest.skip("mkdocs and mkdocstrings are not installed (pip install -e '.[docs]')")
    site_dir = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr}"
    return site_dir


def _prose(page: Path) -> str:
    """The page's HTML without its code blocks (where a role is shown as written)."""
    return PREFORMATTED.sub("", page.read_text(encoding="utf-8"))


def test_the_api_reference_shows_no_sphinx_role_text(site: Path) -> None:
    prose = _prose(site / "reference" / "api" / "index.html")
    roles = sorted({m.group() for m in SPHINX_ROLE.finditer(prose)})
    assert not roles, f"the API reference shows Sphinx role text: {', '.join(roles)}"


def test_no_page_shows_an_applied_sphinx_role_outside_code_blocks(site: Path) -> None:
    pages = {
        str(page.relative_to(site)): sorted(
            {m.group() for m in APPLIED_ROLE.finditer(_prose(page))}
        )
        for page in site.rglob("*.html")
    }
    assert {page: roles for page, roles in pages.items() if roles} == {}


def test_a_role_becomes_a_link_to_the_object_it_names(site: Path) -> None:
    # enforce's docstring: "Like :func:`authorize`, but raise the matching
    # :class:`~clearance.Denied` on a denial."
    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert re.search(
        r'href="#clearance\.authorize"><code>authorize\(\)</code></a>, but raise', page
    )
    assert re.search(r'href="#clearance\.Denied"><code>Denied</code></a> on a denial', page)


SETTING_ROW = re.compile(r"^\| \[`(?P<key>[A-Z_]+)`\]\(#[a-z_]+\) \| `(?P<default>[^|]+)` \|", re.M)


def test_every_setting_is_in_the_settings_reference_with_its_default() -> None:
    from clearance.conf import DEFAULTS

    reference = (ROOT / "docs" / "reference" / "settings.md").read_text(encoding="utf-8")
    table = {m["key"]: ast.literal_eval(m["default"]) for m in SETTING_ROW.finditer(reference)}
    assert table == DEFAULTS  # one row per key, with the default the code has
    assert [key for key in DEFAULTS if f"### `{key}`" not in reference] == []


@pytest.mark.parametrize("name", ["can_attempt", "attach"])
def test_gate_one_alone_and_attaching_rules_are_public_and_documented(name: str) -> None:
    import clearance

    assert name in clearance.__all__
    assert getattr(clearance, name).__doc__
    reference = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    assert f"::: clearance.{name}\n" in reference
