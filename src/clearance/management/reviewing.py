"""``manage.py clearance snapshot`` and ``replay``: the subcommands for reviewing rule changes.

Declared here and plugged into ``manage.py clearance`` with :func:`add_subcommands` and
:func:`run`, so that the command module only lists them. The work is done by
:mod:`clearance.snapshot` and :mod:`clearance.replay`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from . import add_subcommand, database_alias

__all__ = ["SUBCOMMANDS", "add_subcommands", "run"]

#: The subcommands this module adds.
SUBCOMMANDS = ("snapshot", "replay")


def add_subcommands(sub: Any) -> None:
    """Add ``snapshot`` and ``replay`` to the sub-parsers ``sub`` of ``manage.py clearance``."""
    snapshot = add_subcommand(
        sub,
        "snapshot",
        summary="write the authorization snapshot; --check compares the running rules with it",
        description="""
            Write the authorization snapshot (every action, rule and reason, every model
            invariant, each action's fingerprint), or with --check compare the running rules
            with it: exit 1 with a diff when they differ, like makemigrations --check.
        """,
        examples="""
            manage.py clearance snapshot
            manage.py clearance snapshot --check
        """,
    )
    snapshot.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 with a diff when the running rules differ from the file",
    )
    snapshot.add_argument(
        "--path",
        default=None,
        metavar="FILE",
        help="the snapshot file (default: CLEARANCE['SNAPSHOT_PATH'], or "
        "BASE_DIR/clearance.snapshot)",
    )

    replay = add_subcommand(
        sub,
        "replay",
        summary="decide recorded decisions again with the rules running now; report the flips",
        description="""
            Decide the recorded attempts of the audit trail again with the rules running now
            and report those that would flip, grouped by rule. Writes nothing to any database.
        """,
        examples="""
            manage.py clearance replay --since 30d
            manage.py clearance replay --action invoices.approve --format json --fail-on-flips
        """,
    )
    replay.add_argument(
        "--since",
        default="7d",
        metavar="WHEN",
        help="an age (12h, 7d, 4w), a date, a date and time, or all (default: 7d)",
    )
    replay.add_argument("--until", default=None, metavar="WHEN", help="as --since (excluded)")
    replay.add_argument(
        "--action", action="append", default=[], metavar="NAME", help="only this action (repeat)"
    )
    replay.add_argument("--actor", default=None, metavar="USERNAME", help="only this actor")
    replay.add_argument(
        "--examples", type=int, default=5, metavar="N", help="examples per group (default: 5)"
    )
    replay.add_argument("--format", choices=("text", "json"), default="text")
    replay.add_argument(
        "--database", default=None, metavar="ALIAS", help="the audit database alias"
    )
    replay.add_argument(
        "--no-save", action="store_true", help="do not keep this report for the console"
    )
    replay.add_argument(
        "--fail-on-flips", action="store_true", help="exit 1 when a decision would flip"
    )


def run(command: BaseCommand, subcommand: str, options: dict[str, Any]) -> None:
    """Run ``subcommand`` (one of :data:`SUBCOMMANDS`) for ``command``; exits non-zero when it
    fails (a differing snapshot, flips with ``--fail-on-flips``)."""
    if subcommand == "snapshot":
        from ..snapshot import run_command as run_snapshot

        path = Path(options["path"]) if options["path"] else None
        try:
            status, out, err = run_snapshot(path, check=options["check"])
        except OSError as exc:
            raise CommandError(
                f"Cannot write the snapshot {exc.filename or path}: {exc.strerror or exc}."
            ) from None
    else:
        from ..replay import parse_when
        from ..replay import run_command as run_replay

        named = [("--actor", options["actor"] or "")] + [("--action", a) for a in options["action"]]
        for flag, text in named:
            if "\x00" in text:  # in no name; PostgreSQL refuses it in a query
                raise CommandError(f"{flag} {text!r}: a name holds no NUL character.")
        if options["examples"] < 0:
            raise CommandError(f"--examples {options['examples']}: give 0 or more.")
        try:
            since, until = parse_when(options["since"]), parse_when(options["until"])
            if since is not None and until is not None and since >= until:
                raise CommandError(
                    f"--since {options['since']} is not before --until {options['until']}: "
                    "no decision lies between them."
                )
            status, out, err = run_replay(
                since=options["since"],
                until=options["until"],
                actions=options["action"],
                actor=options["actor"],
                examples=options["examples"],
                fmt=options["format"],
                using=database_alias(options["database"]),
                save=not options["no_save"],
                fail_on_flips=options["fail_on_flips"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OverflowError:
            raise CommandError(
                f"--since {options['since']!r} / --until {options['until']!r}: a time before "
                "the first year or after the last."
            ) from None
        except OSError as exc:
            raise CommandError(
                f"Cannot keep the replay report in {exc.filename}: {exc.strerror or exc} "
                "(--no-save keeps none)."
            ) from None
    if out:
        command.stdout.write(out.rstrip("\n"), style_func=lambda s: s)
    if err:
        command.stderr.write(err)
    if status:
        sys.exit(status)
