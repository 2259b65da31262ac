"""Read the demo's pages the way a person does: the visible text of a table row."""

import html
import re


def visible_text(markup: str) -> str:
    """Return the text a person would read in an HTML fragment, whitespace collapsed."""
    text = re.sub(r"<[^>]+>", " ", markup)
    return " ".join(html.unescape(text).split())


def _row(page: str, attribute: str, value: str) -> str:
    pattern = rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>'
    match = re.search(pattern, page, re.DOTALL)
    assert match, f"no row with {attribute}={value!r} on the page"
    return visible_text(match.group(1))


def invoice_row(page: str, number: str) -> str:
    """Return the visible text of the invoice list's row for invoice ``number``."""
    return _row(page, "data-invoice", number)


def action_row(page: str, label: str) -> str:
    """Return the visible text of the detail page's row for an action ("submit", "approve"...)."""
    return _row(page, "data-action", label)


def listed_numbers(page: str) -> list[str]:
    """Return the invoice numbers listed on the invoice list page, in order."""
    return re.findall(r'<tr data-invoice="([^"]+)">', page)
