"""``manage.py clearance``: inspect the rule set, explain a decision, prune the audit trail.

Subcommands:

- ``actions``: every action with its permission, policies, invariants and their reasons;
- ``matrix``: actions by groups (who holds each action's permission) and the rules that refine
  it, as text, Markdown, CSV or JSON;
- ``explain USER ACTION [OBJECT] [--exit-code]``: the full trace, gate by gate (the object
  by primary key, ``app_label.Model:pk`` or natural key: :mod:`clearance.lookup`);
- ``prune-audit --older-than 90d [--dry-run]``: delete old audit records, and say which;
- ``audit-guard install|remove|status``: the PostgreSQL trigger that refuses UPDATE and
  DELETE of audit records outside pruning (:mod:`clearance.audit.guard`);
- ``audit-spool [--list] [--replay]``: audit records waiting in the spool (the database did not
  take them when they were made); ``--replay`` writes them into the table now;
- ``snapshot [--check]`` and ``replay``: review a rule change (see
  :mod:`clearance.management.reviewing`).

Output is sorted and carries no timestamps or paths, so it can be committed and diffed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import difflib
import io
import json
import sys
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import color_style, no_style
from django.db import models
from django.utils import timezone

from ...actions import Action, registry
from ...decisions import UnknownAction
from ...engine import decide
from ...formatting import format_decision
from ...introspection import capability_matrix, describe_actions, describe_model_invariants
from ...lookup import ObjectNotFound, find_object
from ...rules import Context
from ...rules.context import decision_now
from .. import add_subcommand, database_alias, reviewing

ACTION_FORMATS = ("text", "markdown", "json")
MATRIX_FORMATS = ("text", "markdown", "csv", "json")


class Command(BaseCommand):
    """``manage.py clearance <subcommand>``."""

    help = "Inspect clearance's rule set (actions, matrix), explain a decision, prune the audit."

    def add_arguments(self, parser: CommandParser) -> None:
        """One sub-parser per subcommand."""
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        actions = add_subcommand(
            sub,
            "actions",
            summary="every action with its permission, policies, invariants and reasons",
            description="""
                Every declared action with its label, model, permission, policies and
                invariants (each with its expression and reason), then the model invariants.
                Sorted and free of timestamps and paths: commit it and diff it in review.
            """,
            examples="""
                manage.py clearance actions
                manage.py clearance actions --app invoices --format markdown
            """,
        )
        actions.add_argument("--format", choices=ACTION_FORMATS, default="text")
        actions.add_argument(
            "--app", action="append", default=[], metavar="LABEL", help="only this app (repeat)"
        )

        matrix = add_subcommand(
            sub,
            "matrix",
            summary="actions by groups: who holds each capability, and what refines it",
            description="""
                Actions by groups: which groups hold each action's permission (gate 1, read
                from the database), and the policies and invariants that then refine it.
            """,
            examples="""
                manage.py clearance matrix
                manage.py clearance matrix --app invoices --format csv > matrix.csv
            """,
        )
        matrix.add_argument("--format", choices=MATRIX_FORMATS, default="text")
        matrix.add_argument(
            "--app", action="append", default=[], metavar="LABEL", help="only this app (repeat)"
        )

        explain = add_subcommand(
            sub,
            "explain",
            summary="the full trace of one decision, gate by gate",
            description="""
                The full trace of one decision: gate 1, every policy and every invariant, with
                pass, deny or error, then the verdict authorize() reaches. Nothing is recorded.

                exit status: 0 whatever the verdict, 1 for bad input; with --exit-code,
                0 when allowed, 1 when denied and 2 for bad input.
            """,
            examples="""
                manage.py clearance explain alice invoices.approve invoices.Invoice:3
                manage.py clearance explain alice invoices.approve 3 --exit-code
                manage.py clearance explain alice invoices.approve number=ACME-003
                manage.py clearance explain --pk 7 invoices.approve ACME-003 --extra channel=api
                manage.py clearance explain alice invoices.approve 3 --as-of 2026-01-31T17:00
            """,
        )
        explain.add_argument("user", help="the user's username (or primary key with --pk)")
        explain.add_argument("action", help="the action's name, e.g. invoices.approve")
        explain.add_argument(
            "object",
            nargs="?",
            default=None,
            help="the object: its primary key, app_label.Model:pk, or its natural key "
            "(CLEARANCE['NATURAL_KEYS']), also as pk=VALUE or FIELD=VALUE",
        )
        explain.add_argument(
            "--pk", action="store_true", help="USER is a primary key, not a username"
        )
        explain.add_argument(
            "--exit-code",
            action="store_true",
            help="exit 1 when the decision is denied, 2 for bad input (0 when allowed)",
        )
        # Also accepted after the subcommand (Django reads them before it, too).
        for flag, text in (("--no-color", "plain output"), ("--force-color", "coloured output")):
            explain.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=text)
        explain.add_argument(
            "--extra",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a value rules read as CTX.<name> (a string; repeat for more)",
        )
        explain.add_argument(
            "--as-of",
            metavar="DATETIME",
            default=None,
            help="decide as of this moment (ISO 8601, e.g. 2026-01-31T17:00; in the current "
            "time zone unless it names one): the decision's now, CTX.now and ctx.now",
        )

        prune = add_subcommand(
            sub,
            "prune-audit",
            summary="delete audit records older than an age",
            description="""
                Delete the audit records decided more than AGE ago (the one sanctioned way to
                remove them) and say how many of each kind, and from when.
            """,
            examples="""
                manage.py clearance prune-audit --older-than 90d --dry-run
                manage.py clearance prune-audit --older-than 12w --database audit
            """,
        )
        prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12h or 4w")
        prune.add_argument(
            "--database", default=None, metavar="ALIAS", help="the audit database alias"
        )
        prune.add_argument(
            "--dry-run", action="store_true", help="say what would be deleted; delete nothing"
        )

        guard = add_subcommand(
            sub,
            "audit-guard",
            summary="PostgreSQL: a trigger refusing UPDATE and DELETE of audit records (but "
            "pruning)",
            description="""
                PostgreSQL only: install, remove or report the triggers that refuse UPDATE,
                TRUNCATE and every DELETE of audit records except the one prune-audit makes.
            """,
            examples="""
                manage.py clearance audit-guard install
                manage.py clearance audit-guard status --database audit
            """,
        )
        guard.add_argument("operation", choices=("install", "remove", "status"))
        guard.add_argument(
            "--database", default=None, metavar="ALIAS", help="the audit database alias"
        )

        spool = add_subcommand(
            sub,
            "audit-spool",
            summary="audit records waiting in the spool; --replay writes them now",
            description="""
                How many audit records wait in the spool (records the database did not take
                when they were made), and where; --list prints them, --replay writes them into
                the audit table now.
            """,
            examples="""
                manage.py clearance audit-spool --list
                manage.py clearance audit-spool --replay
            """,
        )
        spool.add_argument("--list", action="store_true", help="print each waiting record")
        spool.add_argument(
            "--replay", action="store_true", help="write the waiting records into the table"
        )

        reviewing.add_subcommands(sub)  # snapshot, replay

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the subcommand."""
        subcommand = options["subcommand"]
        if subcommand == "actions":
            self.write(render_actions(options["format"], app_labels(options["app"])))
        elif subcommand == "matrix":
            self.write(render_matrix(options["format"], app_labels(options["app"])))
        elif subcommand == "explain":
            try:
                allowed = self.explain(options)
            except CommandError as exc:
                if options["exit_code"]:  # 1 means "denied": bad input is 2, like diff(1)
                    raise CommandError(str(exc), returncode=2) from None
                raise
            if options["exit_code"] and not allowed:
                sys.exit(1)
        elif subcommand in reviewing.SUBCOMMANDS:
            reviewing.run(self, subcommand, options)
        elif subcommand == "audit-guard":
            self.audit_guard(options)
        elif subcommand == "audit-spool":
            self.audit_spool(options)
        else:
            self.prune(options)

    def write(self, text: str) -> None:
        """Write ``text`` to stdout as it is (no styling, one final newline)."""
        self.stdout.write(text.rstrip("\n"), style_func=lambda s: s)

    # -- explain -------------------------------------------------------------------------------

    def explain(self, options: dict[str, Any]) -> bool:
        """Print every gate and rule of one decision, with its outcome; say whether it allows."""
        action = _action(options["action"])
        user = _user(options["user"], by_pk=options["pk"])
        obj = _object(action, options["object"])
        extra: dict[str, Any] = _extra(options["extra"])
        if options.get("as_of") is not None:
            extra["now"] = _as_of(options["as_of"])
        # Evaluated by the engine, like explain(), but not recorded as a decision in the audit
        # trail: nobody asked to act.
        ctx = Context(user, action, obj, now=decision_now(extra), extra=extra)
        decision = decide(action, ctx, full=True)
        colour = options.get("force_color") or (
            not options.get("no_color") and self.stdout.isatty()
        )
        subject = "\n".join(
            [
                f"Actor:   {decision.actor}",
                f"Action:  {action.name} ({action.label})",
                f"Object:  {_describe(obj)}",
                "",
            ]
        )
        self.write(format_decision(decision, subject=subject, paint=_painter(colour)))
        return decision.allowed

    # -- prune-audit ---------------------------------------------------------------------------

    def prune(self, options: dict[str, Any]) -> None:
        """Delete audit records older than ``--older-than``."""
        try:
            from ...audit.retention import parse_age, prunable, prune, summarize
        except ImportError as exc:  # pragma: no cover - the audit app ships with clearance
            raise CommandError(f"Audit retention is not available: {exc}") from None
        age_text = options["older_than"]
        using = database_alias(options["database"])
        try:
            age = parse_age(age_text)
            records = prunable(age, using=using)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OverflowError:
            raise CommandError(
                f"The age {age_text!r} is too large: it reaches before the first year."
            ) from None
        summary = summarize(records)
        period = (
            f" (decided {summary.oldest:%Y-%m-%d %H:%M} to {summary.newest:%Y-%m-%d %H:%M} UTC)"
            if summary.oldest is not None and summary.newest is not None
            else ""
        )
        detail = (
            f"{summary.denied_attempts} denied attempt(s), {summary.allowed_attempts} allowed "
            f"attempt(s), {summary.probes} probe(s){period}"
        )
        if options["dry_run"]:
            noun = "record" if summary.total == 1 else "records"
            self.write(
                f"Would delete {summary.total} audit {noun} older than {age_text.strip()}: "
                f"{detail}. Nothing was deleted (--dry-run)."
            )
            return
        deleted = prune(age, using=using)
        noun = "record" if deleted == 1 else "records"
        self.write(f"Deleted {deleted} audit {noun} older than {age_text.strip()}: {detail}.")

    # -- audit-guard ---------------------------------------------------------------------------

    def audit_guard(self, options: dict[str, Any]) -> None:
        """Install, remove or report the PostgreSQL guard of the audit table."""
        from ...audit import guard
        from ...audit.connection import target_alias

        alias = database_alias(options["database"]) or target_alias()
        try:
            if options["operation"] == "install":
                guard.install(alias)
                self.write(f"Installed the audit guard on database {alias!r}.")
            elif options["operation"] == "remove":
                guard.remove(alias)
                self.write(f"Removed the audit guard from database {alias!r}.")
            else:
                state = "installed" if guard.installed(alias) else "not installed"
                self.write(f"The audit guard is {state} on database {alias!r}.")
        except NotImplementedError as exc:
            raise CommandError(str(exc)) from None

    # -- audit-spool ---------------------------------------------------------------------------

    def audit_spool(self, options: dict[str, Any]) -> None:
        """Say how many audit records wait in the spool; list or replay them."""
        from ...audit import spool

        path = spool.spool_path()
        lines = []
        if options["list"]:
            for record in spool.waiting():
                lines.append(spool.identity(record))
        if options["replay"]:
            try:
                written = spool.replay(limit=None, wait=True)
            except Exception as exc:
                raise CommandError(
                    f"The database did not take the spooled records ({type(exc).__name__}: "
                    f"{exc}); they stay in {path}."
                ) from None
            lines.append(f"Replayed {written} audit record(s) from {path} into the table.")
        waiting = spool.pending()
        lines.append(f"{waiting} audit record(s) wait in the spool {path}.")
        self.write("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Reading the arguments
# --------------------------------------------------------------------------------------------


def app_labels(labels: list[str]) -> list[str]:
    """``labels`` (``--app`` options) when each names an installed app (or the app label of a
    declared action), else a :class:`CommandError`: a typo must not read as "no actions"."""
    known = {config.label for config in apps.get_app_configs()}
    known |= {action.app_label for action in registry.actions}
    for label in labels:
        if label not in known:
            close = difflib.get_close_matches(label, sorted(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CommandError(
                f"No installed app {label!r}: --app takes an app label, such as 'auth'.{hint}"
            )
    return labels


def _action(name: str) -> Action:
    try:
        return registry.get(name)
    except UnknownAction as exc:
        raise CommandError(str(exc)) from None


def _user(value: str, *, by_pk: bool) -> Any:
    user_model = get_user_model()
    manager = user_model._default_manager
    field = "pk" if by_pk else user_model.USERNAME_FIELD
    if "\x00" in value:  # in no name; PostgreSQL refuses it in a query
        raise CommandError(f"No user with {field} {value!r}.")
    try:
        return manager.get(**{field: value})
    except user_model.DoesNotExist:
        raise CommandError(f"No user with {field} {value!r}.") from None
    except (ValueError, TypeError, ValidationError):
        raise CommandError(f"{value!r} is not a valid {field} for a user.") from None


def _object(action: Action, spec: str | None) -> models.Model | None:
    model = action.model
    if spec is None:
        if model is not None:
            raise CommandError(
                f"{action.name} acts on {model._meta.label} objects: name one, e.g. "
                f"{model._meta.label}:1 or its primary key alone"
            )
        return None
    if model is None:
        raise CommandError(f"{action.name} acts on no object; leave out {spec!r}.")
    # Every object: explain is the operator's tool, whichever tenant the object belongs to.
    try:
        return find_object(model, spec)
    except ObjectNotFound as exc:
        raise CommandError(str(exc)) from None


def _extra(pairs: list[str]) -> dict[str, str]:
    extra = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise CommandError(f"--extra {pair!r}: expected NAME=VALUE")
        if name == "now":
            raise CommandError("--extra now=...: the decision's time is set with --as-of")
        extra[name] = value
    return extra


def _as_of(text: str) -> dt.datetime:
    """``--as-of``: an ISO 8601 moment, in the current time zone unless it names one."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--as-of {text!r}: expected an ISO 8601 date and time, e.g. 2026-01-31T17:00"
        ) from None
    if settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    if not settings.USE_TZ and timezone.is_aware(moment):
        return timezone.make_naive(moment)
    return moment


def _describe(obj: models.Model | None) -> str:
    if obj is None:
        return "(none)"
    return f"{obj._meta.label}:{obj.pk} ({obj})"


def _painter(colour: bool) -> Callable[[str, str], str]:
    style = color_style(force_color=True) if colour else no_style()
    styles: dict[str, Callable[[str], str]] = {
        "pass": style.SUCCESS,
        "allowed": style.SUCCESS,
        "deny": style.ERROR,
        "denied": style.ERROR,
        "error": style.ERROR,
        "skip": style.WARNING,
        "heading": style.MIGRATE_HEADING,
    }
    return lambda kind, text: styles[kind](text) if kind in styles else text


# --------------------------------------------------------------------------------------------
# actions
# --------------------------------------------------------------------------------------------


def render_actions(fmt: str, app_labels: list[str]) -> str:
    """The ``actions`` listing in ``fmt`` (text, markdown or json)."""
    actions = describe_actions(app_labels)
    invariants = describe_model_invariants(app_labels)
    if fmt == "json":
        return _json({"actions": actions, "model_invariants": invariants})
    if fmt == "markdown":
        return _actions_markdown(actions, invariants)
    return _actions_text(actions, invariants)


def _rules_text(title: str, rules: list[dict[str, Any]], width: int) -> list[str]:
    if not rules:
        return [f"  {title:<11} (none)"]
    lines = [f"  {title}"]
    for rule in rules:
        lines.append(f"    {rule['name']:<{width}}  {rule['expression']}")
        tail = f" (on {', '.join(rule['on'])})" if "on" in rule else ""
        lines.append(f"    {'':<{width}}  {rule['reason']}{tail}")
    return lines


def _actions_text(actions: list[dict[str, Any]], invariants: list[dict[str, Any]]) -> str:
    names = [r["name"] for a in actions for r in (*a["policies"], *a["invariants"])]
    names += [i["name"] for i in invariants]
    width = max([len(n) for n in names] + [4])
    blocks = []
    for a in actions:
        lines = [a["name"], f"  {'label':<11} {a['label']}"]
        lines.append(f"  {'model':<11} {a['model'] or '(none)'}")
        permission = a["permission"]
        if a["permission_model"]:
            permission += f" (of {a['permission_model']})"
        lines.append(f"  {'permission':<11} {permission}")
        if a["scope"]:
            lines.append(f"  {'scope':<11} {', '.join(a['scope'])} (or held globally)")
        lines += _rules_text("policies", a["policies"], width)
        lines += _rules_text("invariants", a["invariants"], width)
        blocks.append("\n".join(lines))
    if invariants:
        lines = ["Model invariants (every write, whoever acts)"]
        for model in sorted({i["model"] for i in invariants}):
            lines += _rules_text(model, [i for i in invariants if i["model"] == model], width)
        blocks.append("\n".join(lines))
    if not blocks:
        return "No actions are declared."
    return "\n\n".join(blocks)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _actions_markdown(actions: list[dict[str, Any]], invariants: list[dict[str, Any]]) -> str:
    out = ["# Actions", ""]
    if not actions:
        out += ["No actions are declared.", ""]
    for a in actions:
        out += [f"## `{a['name']}`", "", a["label"], ""]
        out.append(f"- Model: `{a['model']}`" if a["model"] else "- Model: none")
        permission = f"`{a['permission']}`"
        if a["permission_model"]:
            permission += f" (of `{a['permission_model']}`)"
        out.append(f"- Permission: {permission}")
        if a["scope"]:
            paths = ", ".join(f"`{path}`" for path in a["scope"])
            out.append(f"- Held within scope: {paths} (or globally)")
        out.append("")
        rows = [("policy", r) for r in a["policies"]] + [("invariant", r) for r in a["invariants"]]
        if rows:
            out += ["| gate | rule | expression | reason |", "|---|---|---|---|"]
            out += [
                f"| {gate} | `{r['name']}` | `{_cell(r['expression'])}` | {_cell(r['reason'])} |"
                for gate, r in rows
            ]
        else:
            out.append("No policies or invariants.")
        out.append("")
    if invariants:
        out += ["## Model invariants", "", "They hold for every write, whoever acts.", ""]
        out += ["| model | rule | expression | reason | on |", "|---|---|---|---|---|"]
        out += [
            f"| `{i['model']}` | `{i['name']}` | `{_cell(i['expression'])}` | "
            f"{_cell(i['reason'])} | {', '.join(i['on'])} |"
            for i in invariants
        ]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# matrix
# --------------------------------------------------------------------------------------------


def render_matrix(fmt: str, app_labels: list[str]) -> str:
    """The ``matrix`` table in ``fmt`` (text, markdown, csv or json)."""
    matrix = capability_matrix(app_labels)
    if fmt == "json":
        return _json(matrix)
    # The column of grants within scopes only when a selected action is scoped, so that the
    # matrix of a project without scopes reads as it always did.
    scoped = any(a["within"] for a in matrix["actions"])
    within = ["within scope"] if scoped else []
    header = [
        "action",
        "permission",
        "superusers",
        *matrix["groups"],
        *within,
        "policies",
        "invariants",
    ]
    rows = [
        [
            a["name"],
            a["permission"],
            _held(a, True),
            *(_held(a, a["groups"][g]) for g in matrix["groups"]),
            *([within_text(a["within"])] if scoped else []),
            ", ".join(a["policies"]) or "-",
            ", ".join(a["invariants"]) or "-",
        ]
        for a in matrix["actions"]
    ]
    invariants = [f"{i['model']}: {i['name']}" for i in matrix["model_invariants"]]
    scopes = [scope_text(s) for s in matrix["scopes"]]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "markdown":
        return _matrix_markdown(header, rows, invariants, scopes)
    return _matrix_text(header, rows, invariants, scopes)


def within_text(within: list[dict[str, Any]]) -> str:
    """A scoped action's grants within its scopes, in a few words:
    ``tenant: role approver``, ``organization: groups Admins, Maintainers`` ("-" for none)."""
    parts = []
    for entry in within:
        if entry["scope"] is None:
            parts.append(f"{entry['paths'][0]}: no scope (see manage.py check)")
            continue
        names = entry["roles"] if entry["grants"] == "role" else entry["groups"]
        kind = "role" if entry["grants"] == "role" else "group"
        if not names:
            parts.append(f"{entry['scope']}: no {kind}")
        else:
            plural = "s" if len(names) > 1 else ""
            parts.append(f"{entry['scope']}: {kind}{plural} {', '.join(names)}")
    return "; ".join(parts) or "-"


def scope_text(scope: dict[str, Any]) -> str:
    """One declared scope in a line: its model, memberships and what they grant."""
    fields = f"{scope['user_field']}, {scope['scope_field'] or '?'}"
    text = f"{scope['name']}: {scope['model']}, memberships {scope['membership']} ({fields})"
    if scope["groups"] is not None:
        return f"{text} carrying groups ({scope['groups']})"
    roles = "; ".join(
        f"{role} -> {', '.join(groups) or 'no group'}" for role, groups in scope["roles"].items()
    )
    return f"{text} with a role ({scope['role']}): {roles}"


def _held(action: dict[str, Any], held: bool) -> str:
    if action["anyone"]:
        return "anyone"
    return "yes" if held else "no"


_MATRIX_INTRO = (
    "Gate 1: the groups holding each action's permission (active superusers hold every "
    "permission).\nGates 2 and 3: the policies and invariants that then refine it, in order."
)


_SCOPES_INTRO = (
    "Within scope: the roles (or the groups a membership carries) granting it in the object's "
    "scope only;\na group column grants it everywhere, to the group's own members."
)
_SCOPES_TITLE = "Scopes (gate 1 also holds through a membership of the object's scope)"


def _matrix_intro(scopes: list[str]) -> str:
    return f"{_MATRIX_INTRO}\n{_SCOPES_INTRO}" if scopes else _MATRIX_INTRO


def _matrix_text(
    header: list[str], rows: list[list[str]], invariants: list[str], scopes: list[str]
) -> str:
    if not rows:
        return "No actions are declared."
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [_matrix_intro(scopes), ""]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    if scopes:
        lines += ["", f"{_SCOPES_TITLE}:", *(f"  {scope}" for scope in scopes)]
    if invariants:
        lines += ["", "Model invariants (every write, whoever acts): " + "; ".join(invariants)]
    return "\n".join(lines)


def _matrix_markdown(
    header: list[str], rows: list[list[str]], invariants: list[str], scopes: list[str]
) -> str:
    lines = ["# Authorization matrix", "", _matrix_intro(scopes).replace("\n", " "), ""]
    if not rows:
        return "\n".join([*lines, "No actions are declared.", ""])
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        cells = [f"`{row[0]}`", f"`{row[1]}`", *(_cell(c) for c in row[2:])]
        lines.append("| " + " | ".join(cells) + " |")
    if scopes:
        lines += ["", f"{_SCOPES_TITLE}:", "", *(f"- {_cell(scope)}" for scope in scopes)]
    if invariants:
        lines += ["", "Model invariants (every write, whoever acts): " + "; ".join(invariants)]
    lines.append("")
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
