"""Read console pages the way a person does: the visible text of one part of the page."""

from __future__ import annotations

import html
import re


def visible_text(markup: str) -> str:
    """The text a person reads in an HTML fragment, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.DOTALL)
    # Inline elements join their neighbours; every other tag separates words.
    text = re.sub(r"</?(?:a|abbr|code|em|strong|span|time)\b[^>]*>", "", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


def element(page: str, tag: str, attribute: str, value: str) -> str:
    """The markup of the first ``<tag ... attribute="value" ...>...</tag>`` (not nested)."""
    pattern = rf'<{tag}\b[^>]*\b{attribute}="{re.escape(value)}"[^>]*>.*?</{tag}>'
    match = re.search(pattern, page, re.DOTALL)
    assert match, f"no <{tag} {attribute}={value!r}> on the page"
    return match.group(0)


def classes(markup: str) -> set[str]:
    """The classes of the element ``markup`` starts with."""
    match = re.match(r'<\w+\b[^>]*\bclass="([^"]*)"', markup)
    return set(match.group(1).split()) if match else set()


def gate(page: str, layer: str) -> str:
    """The explain page's gate for ``layer`` (permission, policy, invariant)."""
    return element(page, "li", "data-layer", layer)


def rule_row(markup: str, rule: str) -> str:
    """A rule's row in a gate."""
    return element(markup, "tr", "data-rule", rule)


def links(page: str) -> list[str]:
    """Every link target on the page, unescaped."""
    return [html.unescape(href) for href in re.findall(r'<a\b[^>]*\bhref="([^"]*)"', page)]
