"""MkDocs hook: render the Sphinx roles of the docstrings as code, linked when possible.

The docstrings in ``src/`` cross-reference each other the Sphinx way (``:func:`authorize```,
``:class:`~clearance.Denied```). mkdocstrings reads them as Markdown, which would show the role
(``:func:``) as text before a code span. This hook rewrites each role in the rendered page:

* ``:func:`~clearance.authorize``` becomes ``authorize()``; ``:class:`clearance.Denied``` becomes
  ``clearance.Denied``; ``:meth:`title <target>``` becomes ``title``;
* the code span links to the object's entry in the API reference when the reference renders it
  (an optional cross-reference, resolved by mkdocs-autorefs; a name it does not render stays
  plain code).
"""

from __future__ import annotations

import html
import re
from typing import Any

#: A role as mkdocstrings renders it: the role's name, then the code span of its target.
ROLE = re.compile(
    r":(?:py:)?(?P<role>data|attr|class|func|meth|mod|exc|obj|const):"
    r"<code>(?P<target>[^<]*)</code>"
)
EXPLICIT_TITLE = re.compile(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", flags=re.DOTALL)
CALLABLES = {"func", "meth"}


def _identifiers(target: str) -> str:
    """The autoref attributes for ``target``: the name as written, then its full dotted name.

    The public names live in ``clearance``, so ``authorize`` is looked up as written, then as
    ``clearance.authorize``. A name neither resolves stays plain code, titled as written.
    """
    target = target.lstrip(".")
    attributes = f'identifier="{html.escape(target)}"'
    if target.split(".", 1)[0] != "clearance":
        attributes += f' slug="{html.escape(f"clearance.{target}")}"'
    return attributes


def render_role(match: re.Match[str]) -> str:
    """The HTML that replaces one role."""
    text = html.unescape(match["target"]).strip()
    explicit = EXPLICIT_TITLE.fullmatch(text)
    if explicit:
        title, target = explicit["title"], explicit["target"].strip()
    else:
        target = text.lstrip("~")
        title = target.rsplit(".", 1)[-1] if text.startswith("~") else target.lstrip(".")
        if match["role"] in CALLABLES and not title.endswith(")"):
            title += "()"
    return (
        f"<autoref {_identifiers(target)} optional>"
        f"<code>{html.escape(title, quote=False)}</code></autoref>"
    )


def replace_roles(content: str) -> str:
    """``content`` (a page's HTML) with every Sphinx role rendered as code."""
    return ROLE.sub(render_role, content)


def on_page_content(html_content: str, **kwargs: Any) -> str:
    """MkDocs event: rewrite the roles before autorefs resolves the cross-references."""
    return replace_roles(html_content)
