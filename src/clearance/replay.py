"""Replay: recorded decisions decided again against the rules running now and today's data.

``manage.py clearance replay`` answers the reviewer's question about a rule change: what would
it have done to real decisions? Each recorded decision of the audit trail (within a time
window, for some actions, for one actor) is decided again by the engine, and the report lists
the ones that would flip:

* **allowed → denied**, grouped by the rule that now denies;
* **denied → allowed**, grouped by the rule that no longer denies;
* **denied by another rule**, grouped by the rule before and after.

Each group has a count and a few examples. Recorded decisions that cannot be decided again are
reported, never crashed on: the action is no longer declared, the actor or the object was
deleted, the actor was a job (its permissions are not recorded), the object was not saved yet
(a creation), or the decision was refused only because it could not be recorded.

What is replayed: the *attempts* (someone tried to act). Probes (decisions that only decided
what to show, recorded when ``CLEARANCE["RECORD_PROBES"]`` asks for it) are left out.

What the replay sees: today's data (the actor's groups and permissions, the object's fields) and
the rules running now, at the clock of the recorded decision (a rule reading ``ctx.now`` sees
the time the decision was made). Nothing the request carried is replayed (``request`` is None,
``CTX`` values are absent). So an object that changed since the decision may explain a flip as
well as a rule change; when the model has an ``auto_now`` field, the report shows when the
object changed after the decision.

A replay decides without recording: no audit row, no ``decision_made`` signal, no write at all
to any database. The command keeps its last report in a file for the console
(``CLEARANCE["REPLAY_REPORT_PATH"]``, by default ``clearance.replay.json`` next to the
snapshot), unless told not to.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .actions import Action, registry
from .audit import UNRECORDED_CODE
from .audit.models import AuditRecord
from .conf import clearance_settings
from .engine import decide
from .rules import Context

__all__ = [
    "CHANGED_OBJECTS_NOTE",
    "DEFAULT_REPORT_FILENAME",
    "FlipGroup",
    "ReplayExample",
    "ReplayReport",
    "SkippedGroup",
    "load_report",
    "parse_when",
    "render_text",
    "replay",
    "report_path",
    "run_command",
    "save_report",
]

#: The report's file name next to the snapshot when ``CLEARANCE["REPLAY_REPORT_PATH"]`` is unset.
DEFAULT_REPORT_FILENAME = "clearance.replay.json"

#: Said by every report: the data changed too, not only the rules.
CHANGED_OBJECTS_NOTE = (
    "Decisions are replayed on today's data: an object, a membership or a permission that "
    "changed since the decision may explain a flip as well as a change to the rules."
)

#: The kinds of flip, in the order reports list them, with their titles.
FLIP_KINDS = {
    "allowed_to_denied": "allowed → denied",
    "denied_to_allowed": "denied → allowed",
    "other_rule": "denied by another rule",
}

#: Why a recorded decision could not be decided again.
SKIP_REASONS = {
    "action_undeclared": "the action is no longer declared",
    "actor_deleted": "the actor no longer exists",
    "actor_job": "the actor was a job (its permissions are not recorded)",
    "actor_unknown": "the actor is of a kind replay does not know",
    "object_deleted": "the object no longer exists",
    "object_unsaved": "the object was not saved yet (a creation)",
    "object_mismatch": "the action no longer acts on that kind of object",
    "unrecorded": "refused only because it could not be recorded",
    "replay_failed": "deciding it again raised an exception",
}


@dataclass(frozen=True)
class ReplayExample:
    """One recorded decision and how it is decided now."""

    record: int
    at: dt.datetime
    actor: str
    action: str
    resource: str | None
    was: str
    now: str
    #: When the object last changed, if that is after the decision (an ``auto_now`` field).
    object_changed_at: dt.datetime | None = None
    #: Whether the model can tell when the object changed at all.
    object_change_known: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "record": self.record,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "resource": self.resource,
            "was": self.was,
            "now": self.now,
            "object_changed_at": (
                self.object_changed_at.isoformat() if self.object_changed_at else None
            ),
            "object_change_known": self.object_change_known,
            "error": self.error,
        }


@dataclass
class FlipGroup:
    """Recorded decisions of one action that flip the same way, by the same rule."""

    kind: str
    action: str
    was: str
    now: str
    count: int = 0
    changed_objects: int = 0
    examples: list[ReplayExample] = field(default_factory=list)

    @property
    def rule(self) -> str:
        """The rule the flip is about: the one that now denies, or that no longer does."""
        return self.was if self.kind == "denied_to_allowed" else self.now

    @property
    def title(self) -> str:
        """For people: ``invoices.approve: now denied by policy.small``."""
        if self.kind == "allowed_to_denied":
            return f"{self.action}: now denied by {self.now}"
        if self.kind == "denied_to_allowed":
            return f"{self.action}: no longer denied by {self.was}"
        return f"{self.action}: denied by {self.now} instead of {self.was}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "kind": self.kind,
            "action": self.action,
            "rule": self.rule,
            "was": self.was,
            "now": self.now,
            "title": self.title,
            "count": self.count,
            "changed_objects": self.changed_objects,
            "examples": [e.as_dict() for e in self.examples],
        }


@dataclass
class SkippedGroup:
    """Recorded decisions that could not be decided again, for one reason."""

    reason: str
    count: int = 0
    examples: list[ReplayExample] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The reason, for people."""
        return SKIP_REASONS[self.reason]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary."""
        return {
            "reason": self.reason,
            "title": self.title,
            "count": self.count,
            "examples": [e.as_dict() for e in self.examples],
        }


@dataclass
class ReplayReport:
    """What :func:`replay` found."""

    since: dt.datetime | None
    until: dt.datetime | None
    actions: list[str]
    actor: str | None
    replayed: int = 0
    unchanged: int = 0
    flips: list[FlipGroup] = field(default_factory=list)
    skipped: list[SkippedGroup] = field(default_factory=list)
    made_at: dt.datetime = field(default_factory=timezone.now)

    @property
    def flipped(self) -> int:
        """How many replayed decisions flip."""
        return sum(group.count for group in self.flips)

    @property
    def not_replayed(self) -> int:
        """How many recorded decisions could not be decided again."""
        return sum(group.count for group in self.skipped)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dictionary (``--format json``, and the file the console reads)."""
        return {
            "made_at": self.made_at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "actions": self.actions,
            "actor": self.actor,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "flipped": self.flipped,
            "not_replayed": self.not_replayed,
            "flips": [group.as_dict() for group in self.flips],
            "skipped": [group.as_dict() for group in self.skipped],
            "note": CHANGED_OBJECTS_NOTE,
        }

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_text(self) -> str:
        """The report for people."""
        return render_text(self.as_dict())


# --------------------------------------------------------------------------------------------
# Replaying
# --------------------------------------------------------------------------------------------


def _records(
    since: dt.datetime | None,
    until: dt.datetime | None,
    actions: Sequence[str],
    actor: str | None,
    using: str | None,
) -> models.QuerySet[AuditRecord]:
    """The recorded attempts to replay, oldest first (probes decided only what to show)."""
    alias = using or clearance_settings.AUDIT_DATABASE
    records: models.QuerySet[AuditRecord] = AuditRecord.objects.attempts()
    if isinstance(alias, str) and alias:
        records = records.using(alias)
    if since is not None:
        records = records.filter(at__gte=since)
    if until is not None:
        records = records.filter(at__lt=until)
    if actions:
        records = records.filter(action__in=list(actions))
    if actor:
        records = records.filter(actor_label=actor)
    ordered: models.QuerySet[AuditRecord] = records.order_by("at", "pk")
    return ordered


class _Skip(Exception):
    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class _World:
    """Today's actors and objects, each loaded once per replay."""

    def __init__(self) -> None:
        self.users: dict[str, Any] = {}
        self.objects: dict[tuple[str, str], models.Model | None] = {}
        self.user_model = get_user_model()

    def actor(self, record: AuditRecord) -> Any:
        if record.actor_kind == "anonymous":
            return AnonymousUser()
        if record.actor_kind == "job":
            raise _Skip("actor_job")
        if record.actor_kind != "user" or not record.actor_pk:
            raise _Skip("actor_unknown")
        if record.actor_pk not in self.users:
            try:
                user = self.user_model._default_manager.filter(pk=record.actor_pk).first()
            except (ValueError, TypeError, ValidationError):
                user = None
            self.users[record.actor_pk] = user
        user = self.users[record.actor_pk]
        if user is None:
            raise _Skip("actor_deleted")
        return user

    def object(self, action: Action, record: AuditRecord) -> models.Model | None:
        expected = action.model
        if expected is None:
            if record.resource_model:
                raise _Skip("object_mismatch")
            return None
        if not record.resource_model:
            raise _Skip("object_mismatch")
        if not record.resource_pk:
            raise _Skip("object_unsaved")
        key = (record.resource_model, record.resource_pk)
        if key not in self.objects:
            self.objects[key] = self._load(expected, *key)
        obj = self.objects[key]
        if obj is None:
            raise _Skip("object_deleted")
        return obj

    def _load(self, expected: type[models.Model], label: str, pk: str) -> models.Model | None:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            raise _Skip("object_mismatch") from None
        if model._meta.concrete_model is not expected._meta.concrete_model:
            raise _Skip("object_mismatch")
        try:
            return cast("models.Model | None", model._base_manager.filter(pk=pk).first())
        except (ValueError, TypeError, ValidationError):
            return None


def _changed_at(obj: models.Model | None, at: dt.datetime) -> tuple[dt.datetime | None, bool]:
    """When ``obj`` last changed, if after ``at``, by its ``auto_now`` fields; and whether the
    model can tell at all."""
    if obj is None:
        return None, False
    latest: dt.datetime | None = None
    known = False
    for f in obj._meta.concrete_fields:
        if not getattr(f, "auto_now", False):
            continue
        known = True
        value = getattr(obj, f.attname, None)
        if isinstance(value, dt.datetime):
            moment = value
        elif isinstance(value, dt.date):
            # A date: changed after the decision only from the next day on.
            moment = dt.datetime.combine(value, dt.time.min, tzinfo=at.tzinfo)
            if value <= at.date():
                continue
        else:
            continue
        if moment > at and (latest is None or moment > latest):
            latest = moment
    return latest, known


def _outcome(allowed: bool, code: str) -> str:
    return "allowed" if allowed else code


def _resource(record: AuditRecord) -> str | None:
    if not record.resource_model:
        return None
    return f"{record.resource_model}:{record.resource_pk or '(unsaved)'}"


def replay(
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actions: Iterable[str] = (),
    actor: str | None = None,
    examples: int = 5,
    using: str | None = None,
) -> ReplayReport:
    """Decide the recorded decisions again with the rules running now; see the module docs.

    ``since`` / ``until`` bound the decision time (``until`` excluded), ``actions`` keeps those
    actions, ``actor`` the decisions of the actor with that label (a username). ``examples``
    is how many examples each group keeps. ``using`` is the audit database alias (default: the
    one audit records are written to). Writes nothing.
    """
    names = sorted(set(actions))
    records = _records(since, until, names, actor, using)
    report = ReplayReport(since=since, until=until, actions=names, actor=actor)
    flips: dict[tuple[str, str, str, str], FlipGroup] = {}
    skipped: dict[str, SkippedGroup] = {}
    world = _World()

    for record in records.iterator(chunk_size=1000):
        was = _outcome(record.allowed, record.code)
        base = ReplayExample(
            record=record.pk,
            at=record.at,
            actor=record.actor_label,
            action=record.action,
            resource=_resource(record),
            was=was,
            now="-",
        )
        try:
            if record.code == UNRECORDED_CODE:
                raise _Skip("unrecorded")
            if record.action not in registry:
                raise _Skip("action_undeclared")
            act = registry.get(record.action)
            who = world.actor(record)
            obj = world.object(act, record)
            ctx = Context(who, act, obj, now=record.at)
            try:
                decision = decide(act, ctx, full=False)
            except Exception as exc:
                raise _Skip("replay_failed", f"{type(exc).__name__}: {exc}") from None
        except _Skip as skip:
            group = skipped.setdefault(skip.reason, SkippedGroup(skip.reason))
            group.count += 1
            if len(group.examples) < examples:
                group.examples.append(replace(base, error=skip.error))
            continue

        report.replayed += 1
        now = _outcome(decision.allowed, decision.code)
        if now == was:
            report.unchanged += 1
            continue
        if record.allowed:
            kind = "allowed_to_denied"
        elif decision.allowed:
            kind = "denied_to_allowed"
        else:
            kind = "other_rule"
        changed_at, known = _changed_at(obj, record.at)
        key = (kind, record.action, was, now)
        flip = flips.setdefault(key, FlipGroup(kind, record.action, was, now))
        flip.count += 1
        if changed_at is not None:
            flip.changed_objects += 1
        if len(flip.examples) < examples:
            flip.examples.append(
                replace(
                    base,
                    now=now,
                    object_changed_at=changed_at,
                    object_change_known=known,
                    error=decision.error,
                )
            )

    order = list(FLIP_KINDS)
    report.flips = sorted(
        flips.values(), key=lambda g: (order.index(g.kind), -g.count, g.action, g.was, g.now)
    )
    report.skipped = sorted(skipped.values(), key=lambda g: (-g.count, g.reason))
    return report


# --------------------------------------------------------------------------------------------
# The report as text
# --------------------------------------------------------------------------------------------


def _when(value: str | None) -> str:
    if not value:
        return ""
    moment = dt.datetime.fromisoformat(value)
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _example_line(example: dict[str, Any], with_outcome: bool) -> str:
    target = f" on {example['resource']}" if example["resource"] else ""
    line = (
        f"    #{example['record']} {_when(example['at'])} {example['actor']} "
        f"{example['action']}{target}"
    )
    if with_outcome:
        line += f": was {example['was']}"
    if example.get("object_changed_at"):
        line += f" (the object changed at {_when(example['object_changed_at'])}, after it)"
    if example.get("error"):
        line += f" [{example['error']}]"
    return line


def render_text(data: dict[str, Any]) -> str:
    """A report (as :meth:`ReplayReport.as_dict` gives it) for people."""
    window = "every recorded decision"
    if data["since"] or data["until"]:
        window = f"decisions from {_when(data['since']) or 'the start'} "
        window += f"to {_when(data['until']) or 'now'}"
    scope = []
    if data["actions"]:
        scope.append("action " + ", ".join(data["actions"]))
    if data["actor"]:
        scope.append(f"actor {data['actor']}")
    lines = [
        f"Replayed {window}{' (' + '; '.join(scope) + ')' if scope else ''} against the rules "
        "running now.",
        "Only attempts are replayed: probes (decisions that only decided what to show) are left "
        "out.",
        f"{data['replayed']} decided again: {data['flipped']} would flip, "
        f"{data['unchanged']} would stand. {data['not_replayed']} could not be decided again.",
    ]
    for kind, title in FLIP_KINDS.items():
        groups = [g for g in data["flips"] if g["kind"] == kind]
        if not groups:
            continue
        lines += ["", f"{title}: {sum(g['count'] for g in groups)}"]
        for group in groups:
            changed = group["changed_objects"]
            tail = f" ({changed} of whose objects changed after the decision)" if changed else ""
            lines.append(f"  {group['title']}: {group['count']}{tail}")
            lines += [_example_line(e, kind == "other_rule") for e in group["examples"]]
            hidden = group["count"] - len(group["examples"])
            if hidden > 0:
                lines.append(f"    ... and {hidden} more")
    if data["skipped"]:
        lines += ["", f"Not decided again: {data['not_replayed']}"]
        for group in data["skipped"]:
            lines.append(f"  {group['title']}: {group['count']}")
            lines += [_example_line(e, True) for e in group["examples"]]
            hidden = group["count"] - len(group["examples"])
            if hidden > 0:
                lines.append(f"    ... and {hidden} more")
    if not data["flips"] and data["replayed"]:
        lines += ["", "No decision would flip."]
    lines += ["", data["note"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def parse_when(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """``--since`` / ``--until``: an age before now (``12h``, ``7d``, ``4w``), a date
    (midnight, local time), a date and time (ISO 8601), or ``all`` (no bound: None)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    from django.utils.dateparse import parse_date, parse_datetime

    from .audit.retention import parse_age

    text = text.strip()
    try:
        moment = parse_datetime(text)
        day = parse_date(text) if moment is None else None
    except ValueError:
        moment = day = None
    if day is not None:
        moment = dt.datetime.combine(day, dt.time.min)
    if moment is not None:
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        return moment
    try:
        age = parse_age(text)
    except ValueError:
        raise ValueError(
            f"Cannot read the time {text!r}: write an age (12h, 7d, 4w), a date (2026-12-01), "
            "a date and time (2026-12-01T09:00), or all."
        ) from None
    return (now or timezone.now()) - age


def run_command(
    *,
    since: str | None,
    until: str | None,
    actions: Sequence[str],
    actor: str | None,
    examples: int,
    fmt: str,
    using: str | None,
    save: bool,
    fail_on_flips: bool,
) -> tuple[int, str, str]:
    """``manage.py clearance replay``: ``(exit status, stdout, stderr)``.

    The status is 1 with ``fail_on_flips`` when a decision would flip, else 0. The report is
    kept for the console unless ``save`` is false (said on stderr, so JSON stays clean).
    """
    now = timezone.now()
    report = replay(
        since=parse_when(since, now),
        until=parse_when(until, now),
        actions=actions,
        actor=actor,
        examples=examples,
        using=using,
    )
    out = report.to_json() if fmt == "json" else report.to_text()
    err = ""
    if save:
        kept = save_report(report)
        if kept is not None:
            err = f"The console shows this report (kept in {kept})."
    return (1 if fail_on_flips and report.flipped else 0), out, err


# --------------------------------------------------------------------------------------------
# The last report, for the console
# --------------------------------------------------------------------------------------------


def report_path() -> Path | None:
    """Where the last report is kept: ``CLEARANCE["REPLAY_REPORT_PATH"]``, else
    ``clearance.replay.json`` next to the snapshot file; None when neither is known."""
    configured = clearance_settings.REPLAY_REPORT_PATH
    if configured:
        return Path(configured)
    from .snapshot import snapshot_path

    snapshot = snapshot_path()
    return snapshot.with_name(DEFAULT_REPORT_FILENAME) if snapshot is not None else None


def save_report(report: ReplayReport, path: Path | None = None) -> Path | None:
    """Keep ``report`` as the last one (a JSON file); returns the file, or None when no path
    is known."""
    path = path if path is not None else report_path()
    if path is None:
        return None
    path.write_text(report.to_json(), encoding="utf-8")
    return path


def load_report(path: Path | None = None) -> dict[str, Any] | None:
    """The last report kept by :func:`save_report`, as a dictionary; None when there is none
    (or it cannot be read)."""
    path = path if path is not None else report_path()
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "flips" in data else None
