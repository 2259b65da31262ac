"""The authorization snapshot: the project's rule set as a committed, reviewable text file.

``manage.py clearance snapshot`` writes it; ``manage.py clearance snapshot --check`` compares
it with the rules running now and prints a unified diff when they differ, like
``makemigrations --check``. A system check (``clearance.W601``) warns at startup when the
running rules differ from the committed file.

The file describes the authorization surface: every action with its label, model and
permission (and the paths to its scope objects, for a permission held within a scope); every
scope with its models and what a membership grants; each policy and invariant with its code,
rule text and reason (and the source of a Python predicate); every model invariant with the
events it is checked on and its database constraint; and the fingerprint each decision
records. Lines are sorted (actions by name, rules in evaluation order, which matters), one fact
per line, with no timestamps, line numbers or absolute paths, so that a change to a rule shows
up as the smallest diff and a change elsewhere (a docstring, a model field the rules do not
use, a comment) does not show up at all.

Where the file lives: ``CLEARANCE["SNAPSHOT_PATH"]``, or by default ``clearance.snapshot``
in the project's ``BASE_DIR``. With neither, there is no snapshot (the system check is silent,
and the command asks for ``--path``).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db import models

from .actions import ModelInvariant, NamedRule, registry
from .checks import TAG
from .conf import clearance_settings, setting_problems
from .constraints import constraint_condition, constraints_for
from .rules import Predicate, Rule
from .scopes import Scope, scope_registry

__all__ = [
    "DEFAULT_FILENAME",
    "SnapshotStatus",
    "check_snapshot",
    "render_snapshot",
    "run_command",
    "snapshot_diff",
    "snapshot_path",
    "snapshot_status",
    "write_snapshot",
]

#: The snapshot's file name in ``BASE_DIR`` when ``CLEARANCE["SNAPSHOT_PATH"]`` is not set.
DEFAULT_FILENAME = "clearance.snapshot"

_HEADER = """\
# The authorization surface of this project, written by `manage.py clearance snapshot`.
# Review a change to this file like a migration: it changes who may do what.
# `manage.py clearance snapshot --check` fails when the running rules differ from it.
"""

_INDENT = "    "


# --------------------------------------------------------------------------------------------
# Where the snapshot lives
# --------------------------------------------------------------------------------------------


def snapshot_path() -> Path | None:
    """The snapshot file: ``CLEARANCE["SNAPSHOT_PATH"]``, else ``<BASE_DIR>/clearance.snapshot``.

    None when neither is set (the project keeps no snapshot).
    """
    configured = clearance_settings.SNAPSHOT_PATH
    if configured:
        return Path(configured)
    base = getattr(settings, "BASE_DIR", None)
    if not base:
        return None
    return Path(base) / DEFAULT_FILENAME


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """``text`` on one line: backslashes and line breaks escaped, so each fact is one line."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _field(name: str, value: str, depth: int) -> str:
    return f"{_INDENT * depth}{name:<11} {_one_line(value)}".rstrip()


def _predicate_source(pred: Predicate) -> list[str]:
    """The predicate function's code, without its docstring, comments or formatting.

    Normalised through the syntax tree, so that reformatting a function or editing its
    docstring leaves the snapshot alone, while a change to what it computes shows.
    """
    fn = pred.fn
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        return ["(source unavailable)"]
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # A lambda in the middle of an expression: the lines that hold it, as written.
        return [line.strip() for line in source.strip().splitlines()]
    node = next(
        (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))),
        None,
    )
    if node is not None and getattr(fn, "__name__", None) != "<lambda>":
        node.decorator_list = []
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        return ast.unparse(node).splitlines()
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(lambdas) == 1:
        return [ast.unparse(lambdas[0])]
    return [line.strip() for line in source.strip().splitlines()]


def _predicates(rule: Rule) -> list[Predicate]:
    seen: list[Predicate] = []
    for leaf in rule.leaves():
        if isinstance(leaf, Predicate) and leaf not in seen:
            seen.append(leaf)
    return seen


def _rule_lines(named: NamedRule, depth: int) -> list[str]:
    lines = [f"{_INDENT * depth}{named.code}"]
    lines.append(_field("rule", named.expression, depth + 1))
    lines.append(_field("reason", named.reason, depth + 1))
    for pred in _predicates(named.rule):
        reads = "reads the object" if pred.uses_object else "does not read the object"
        lines.append(_field("predicate", f"{pred.name} ({reads})", depth + 1))
        lines += [f"{_INDENT * (depth + 2)}{line}".rstrip() for line in _predicate_source(pred)]
    return lines


def _constraint_text(model: type[models.Model], invariant: ModelInvariant) -> str:
    """The invariant's database constraint: its name when declared, or why there is none."""
    if "save" not in invariant.on:
        return "none (checked on delete only)"
    if model._meta.proxy:
        return "none (a proxy model has no table of its own)"
    if constraint_condition(invariant.rule) is None:
        return "none (no SQL form: it reads the actor, the context or a predicate)"
    code = f"invariant.{invariant.name}"
    expected = next((c for c in constraints_for(model) if c.violation_error_code == code), None)
    if expected is None:
        return "none (it reads other tables)"
    for constraint in model._meta.constraints:
        condition = getattr(constraint, "condition", None)
        if isinstance(constraint, models.CheckConstraint) and (
            constraint.name == expected.name or condition == expected.condition
        ):
            return f"{constraint.name} (in Meta.constraints)"
    return f"{expected.name} (missing from Meta.constraints, see clearance.W003)"


def _scope_lines(scope: Scope, app_labels: Sequence[str]) -> list[str]:
    """A scope's declaration: its models and what a membership grants (empty when the scope's
    models belong to none of ``app_labels``)."""
    try:
        model, membership = scope.model._meta.label, scope.membership._meta.label
    except (LookupError, ValueError):
        model = membership = "(not installed)"
    if app_labels and not {model.split(".")[0], membership.split(".")[0]} & set(app_labels):
        return []
    lines = [f"scope {scope.name}"]
    lines.append(_field("model", model, 1))
    lines.append(_field("membership", membership, 1))
    lines.append(_field("user", scope.user_field, 1))
    if scope.groups is not None:
        lines.append(_field("grants", f"the groups of {scope.groups}", 1))
    else:
        lines.append(_field("grants", f"the groups of the role in {scope.role}", 1))
        for value, groups in sorted(scope.roles.items(), key=lambda item: repr(item[0])):
            lines.append(_field("role", f"{value}: {', '.join(groups)}", 2))
    return lines


def _sections(app_labels: Sequence[str]) -> Iterable[list[str]]:
    actions = [
        a
        for a in registry.actions
        if not app_labels
        or a.app_label in app_labels
        or (a.model is not None and a.model._meta.app_label in app_labels)
    ]
    for action in actions:
        model = action.model
        permission = action.permission_label
        if action.permission_model is not None:
            permission += f" (of {action.permission_model._meta.label})"
        lines = [f"action {action.name}"]
        lines.append(_field("label", action.label, 1))
        lines.append(_field("model", model._meta.label if model is not None else "(none)", 1))
        lines.append(_field("permission", permission, 1))
        if action.scope:  # only then: the snapshots of projects without scopes are unchanged
            lines.append(_field("scope", ", ".join(action.scope), 1))
        for named in action.rules:
            lines += _rule_lines(named, 1)
        yield lines
    for scope in scope_registry:
        lines = _scope_lines(scope, app_labels)
        if lines:
            yield lines
    invariants = sorted(registry.model_invariants.items(), key=lambda item: item[0]._meta.label)
    for model, rules in invariants:
        if app_labels and model._meta.app_label not in app_labels:
            continue
        lines = [f"model {model._meta.label}"]
        for invariant in rules:
            lines += _rule_lines(invariant, 1)
            lines.append(_field("on", ", ".join(sorted(invariant.on)), 2))
            lines.append(_field("constraint", _constraint_text(model, invariant), 2))
        yield lines
    if actions:
        width = max(len(a.name) for a in actions)
        lines = ["fingerprints (recorded with each decision; they change with the rules in force)"]
        lines += [f"{_INDENT}{a.name:<{width}}  {a.fingerprint()}" for a in actions]
        yield lines


def render_snapshot(app_labels: Sequence[str] = ()) -> str:
    """The snapshot of the rules running now (of the given apps, or all), as text."""
    blocks = ["\n".join(lines) for lines in _sections(app_labels)]
    if not blocks:
        blocks = ["(no actions or model invariants are declared)"]
    return _HEADER + "\n" + "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------


def snapshot_diff(committed: str, running: str, *, name: str = DEFAULT_FILENAME) -> str:
    """A unified diff from the committed snapshot to the running rules ("" when they agree)."""
    return "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            running.splitlines(keepends=True),
            fromfile=f"{name} (committed)",
            tofile=f"{name} (running rules)",
        )
    )


class SnapshotStatus:
    """How the running rules compare with the committed snapshot.

    ``path`` is the snapshot file (None when none is configured); ``exists`` whether it is
    there; ``diff`` the unified diff from it to the running rules ("" when they agree);
    ``error`` set when the file could not be read.
    """

    def __init__(
        self, path: Path | None, *, exists: bool, diff: str = "", error: str | None = None
    ) -> None:
        self.path = path
        self.exists = exists
        self.diff = diff
        self.error = error

    @property
    def differs(self) -> bool:
        """Whether the running rules differ from the committed file."""
        return bool(self.diff)

    def diff_lines(self) -> list[tuple[str, str]]:
        """The diff as ``(kind, line)`` pairs, kind ``"add"``, ``"remove"``, ``"hunk"`` or
        ``"context"`` (for the console)."""
        kinds = []
        for line in self.diff.splitlines():
            if line.startswith(("+++", "---")):
                kind = "file"
            elif line.startswith("@@"):
                kind = "hunk"
            elif line.startswith("+"):
                kind = "add"
            elif line.startswith("-"):
                kind = "remove"
            else:
                kind = "context"
            kinds.append((kind, line))
        return kinds


def snapshot_status(path: Path | None = None) -> SnapshotStatus:
    """Compare the running rules with the snapshot at ``path`` (default: :func:`snapshot_path`)."""
    path = path if path is not None else snapshot_path()
    if path is None:
        return SnapshotStatus(None, exists=False)
    try:
        committed = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SnapshotStatus(path, exists=False)
    except (OSError, UnicodeDecodeError) as exc:
        return SnapshotStatus(path, exists=True, error=f"{type(exc).__name__}: {exc}")
    diff = snapshot_diff(committed, render_snapshot(), name=path.name)
    return SnapshotStatus(path, exists=True, diff=diff)


# --------------------------------------------------------------------------------------------
# The command: write, or check
# --------------------------------------------------------------------------------------------

_NO_PATH = (
    "No snapshot path: set CLEARANCE['SNAPSHOT_PATH'] (or BASE_DIR) in the settings, or pass "
    "--path FILE."
)


def write_snapshot(path: Path) -> bool:
    """Write the snapshot of the running rules to ``path``; returns whether the file changed."""
    text = render_snapshot()
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.write_text(text, encoding="utf-8")
    return True


def run_command(path: Path | None, *, check: bool) -> tuple[int, str, str]:
    """``manage.py clearance snapshot [--check]``: ``(exit status, stdout, stderr)``.

    Without ``check`` the file is written (status 0). With ``check`` nothing is written: the
    status is 1, with the unified diff on stdout and what to do on stderr, when the running
    rules differ from the file or the file is missing or unreadable.
    """
    path = path if path is not None else snapshot_path()
    if path is None:
        return 2, "", _NO_PATH
    if not check:
        changed = write_snapshot(path)
        return 0, (f"Wrote {path}." if changed else f"{path} is up to date."), ""
    status = snapshot_status(path)
    if not status.exists:
        return (
            1,
            "",
            f"No authorization snapshot at {path}: write it with `manage.py clearance snapshot`.",
        )
    if status.error is not None:
        return 1, "", f"Cannot read the authorization snapshot {path}: {status.error}"
    if status.differs:
        return (
            1,
            status.diff,
            f"The running rules differ from {path} (the diff above goes from the file to the "
            "running rules). If the change is meant, write the file again with `manage.py "
            "clearance snapshot` and commit it with the change.",
        )
    return 0, f"The running rules match {path}.", ""


# --------------------------------------------------------------------------------------------
# The system check: clearance.W601
# --------------------------------------------------------------------------------------------


@checks.register(TAG)
def check_snapshot(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W601: the running rules differ from the committed snapshot. W602: it cannot be read.

    Silent when the project keeps no snapshot (no path, or no file at the path), and while the
    ``CLEARANCE`` settings are invalid (``clearance.E101``/``E102`` say why).
    """
    if setting_problems():
        return []
    status = snapshot_status()
    if status.path is None or not status.exists:
        return []
    if status.error is not None:
        return [
            checks.Warning(
                f"The authorization snapshot {status.path} cannot be read ({status.error}).",
                hint="Regenerate it with `manage.py clearance snapshot`.",
                id="clearance.W602",
            )
        ]
    if not status.differs:
        return []
    changed = sum(1 for kind, _line in status.diff_lines() if kind in ("add", "remove"))
    return [
        checks.Warning(
            f"The running rules differ from the authorization snapshot {status.path} "
            f"({changed} line{'' if changed == 1 else 's'} changed).",
            hint=(
                "See the difference with `manage.py clearance snapshot --check`. If the change "
                "is meant, write the file again with `manage.py clearance snapshot` and commit "
                "it with the change to the rules."
            ),
            id="clearance.W601",
        )
    ]
