"""``manage.py clearance``: helpers its subcommands share (sub-parsers, ``--database``)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

__all__ = ["add_subcommand", "database_alias"]


def add_subcommand(
    sub: Any, name: str, *, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    """A sub-parser of ``manage.py clearance``: ``summary`` in the list of subcommands, and
    ``description`` and ``examples`` (shell lines, as written) in its own ``--help``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=textwrap.dedent(description).strip(),
        epilog="examples:\n" + textwrap.indent(textwrap.dedent(examples).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def database_alias(alias: str | None) -> str | None:
    """``alias`` (a ``--database`` option) when it names a configured database, else a
    :class:`~django.core.management.CommandError` listing the configured ones; None stays None
    (the default database of the subcommand)."""
    if alias is None or alias in connections:
        return alias
    configured = ", ".join(
        repr(a) for a in sorted(connections, key=lambda a: a != DEFAULT_DB_ALIAS)
    )
    raise CommandError(
        f"No database alias {alias!r} in settings.DATABASES; configured: {configured}."
    )
