"""``clearance.AuditRecord``: one append-only row per recorded decision.

The model is declared here and imported by ``clearance.models`` (its label is
``clearance.AuditRecord``). Rows can be added, never changed: ``save()`` of an existing record,
``delete()``, and queryset ``update()`` / ``delete()`` / ``bulk_update()`` raise
:class:`AppendOnlyError`. Old rows are removed with :func:`clearance.audit.retention.prune`
(``manage.py clearance prune-audit``), the one sanctioned way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from django.db import models

from ..decisions import ActorRef, Decision, Layer, ResourceRef, TraceEntry

__all__ = ["AppendOnlyError", "AuditRecord", "AuditRecordQuerySet"]

# Set only by clearance.audit.retention.prune while it deletes old rows.
_pruning: ContextVar[bool] = ContextVar("clearance_audit_pruning", default=False)


class AppendOnlyError(Exception):
    """An audit record was about to be changed or deleted through the ORM.

    Audit rows are append-only. Remove old rows with ``manage.py clearance prune-audit``
    (:func:`clearance.audit.retention.prune`).
    """


@contextmanager
def allow_prune() -> Any:
    """Within this block, this thread may delete audit rows (retention's ``prune()`` only)."""
    token = _pruning.set(True)
    try:
        yield
    finally:
        _pruning.reset(token)


def _refuse(what: str) -> AppendOnlyError:
    return AppendOnlyError(
        f"Audit records are append-only: {what} is refused. Remove old rows with "
        "`manage.py clearance prune-audit --older-than 90d` "
        "(clearance.audit.retention.prune)."
    )


#: Called before a query of :class:`AuditRecordQuerySet` reads the table: the app registers
#: the writing of the records that wait outside any recording scope
#: (:meth:`clearance.audit.recording.Pending.write_waiting`).
before_read: list[Callable[[], None]] = []


def _write_waiting() -> None:
    for hook in before_read:
        hook()


class AuditRecordQuerySet(models.QuerySet["AuditRecord"]):
    """A queryset that can add and read audit records, never change or delete them.

    It is the model's default *and* base manager's queryset, so Django's own internal paths
    (``_base_manager``, ``save_base(force_update=True)``, the deletion collector) meet the same
    refusals as ``update()``, ``delete()``, ``bulk_update()`` and ``bulk_create()`` with
    ``update_conflicts``. SQL written by hand is out of the ORM's reach: see
    :mod:`clearance.audit.guard` for a database-level guard on PostgreSQL.

    A query run through it first writes this process's records that still wait outside any
    recording scope (:data:`clearance.audit.recording.pending`): a process reads its own
    records.
    """

    def _fetch_all(self) -> None:
        _write_waiting()
        super()._fetch_all()

    def count(self) -> int:
        """The number of records (after writing this process's waiting ones)."""
        _write_waiting()
        return super().count()

    def exists(self) -> bool:
        """Whether there are records (after writing this process's waiting ones)."""
        _write_waiting()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Aggregates over the records (after writing this process's waiting ones)."""
        _write_waiting()
        return super().aggregate(*args, **kwargs)

    def iterator(self, chunk_size: int | None = None) -> Iterator[AuditRecord]:
        """Iterate over the records (after writing this process's waiting ones)."""
        _write_waiting()
        return super().iterator(chunk_size)

    def update(self, **kwargs: Any) -> int:
        """Refused: audit records are append-only."""
        raise _refuse("QuerySet.update()")

    def _update(self, values: Any, *args: Any, **kwargs: Any) -> int:
        """Refused: the UPDATE that ``save()`` and ``update()`` share."""
        raise _refuse("an UPDATE of audit records")

    def delete(self) -> tuple[int, dict[str, int]]:
        """Refused (outside :func:`clearance.audit.retention.prune`)."""
        if not _pruning.get():
            raise _refuse("QuerySet.delete()")
        return super().delete()

    def _raw_delete(self, using: Any) -> int:
        """Refused (outside :func:`clearance.audit.retention.prune`): the fast DELETE."""
        if not _pruning.get():
            raise _refuse("a DELETE of audit records")
        return int(super()._raw_delete(using))

    def bulk_create(self, objs: Iterable[AuditRecord], *args: Any, **kwargs: Any) -> Any:
        """Insert new records; ``update_conflicts=True`` (an upsert) is refused."""
        if kwargs.get("update_conflicts"):
            raise _refuse("bulk_create(update_conflicts=True)")
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(
        self, objs: Iterable[AuditRecord], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        """Refused: audit records are append-only."""
        raise _refuse("QuerySet.bulk_update()")

    def update_or_create(self, *args: Any, **kwargs: Any) -> tuple[AuditRecord, bool]:
        """Refused: audit records are append-only."""
        raise _refuse("QuerySet.update_or_create()")

    def denials(self) -> AuditRecordQuerySet:
        """Only the refused decisions."""
        return cast(AuditRecordQuerySet, self.filter(allowed=False))

    def attempts(self) -> AuditRecordQuerySet:
        """Only the attempts (someone tried to act), not the probes."""
        return cast(AuditRecordQuerySet, self.filter(probe=False))

    def probes(self) -> AuditRecordQuerySet:
        """Only the probes (decisions that decided what to show)."""
        return cast(AuditRecordQuerySet, self.filter(probe=True))

    def for_actor(self, actor: Any) -> AuditRecordQuerySet:
        """The records of one actor (a user object or an :class:`~clearance.decisions.ActorRef`)."""
        return cast(AuditRecordQuerySet, self.filter(actor_pk=_text(actor.pk)))


AuditRecordManager = models.Manager.from_queryset(AuditRecordQuerySet)


class AuditRecord(models.Model):
    """One recorded decision: the Decision's fields plus request metadata.

    ``actor_*`` and ``resource_*`` are copies, not foreign keys: a record outlives the user and
    the object it names, and deleting either never touches the audit trail.
    """

    at = models.DateTimeField("decided at", db_index=True)
    allowed = models.BooleanField()
    action = models.CharField(max_length=150)
    actor_label = models.CharField("actor", max_length=255)
    actor_pk = models.CharField("actor id", max_length=64, blank=True, default="")
    actor_kind = models.CharField(max_length=32, default="user")
    resource_model = models.CharField(max_length=150, blank=True, default="")
    resource_pk = models.CharField(max_length=64, blank=True, default="")
    layer = models.CharField(
        max_length=16,
        blank=True,
        default="",
        choices=[(layer.value, layer.value) for layer in Layer],
    )
    rule = models.CharField(max_length=255, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    code = models.CharField(max_length=255)
    error = models.TextField(blank=True, default="")
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    explained = models.BooleanField(default=False)
    performed = models.BooleanField(null=True, default=None)
    probe = models.BooleanField(
        default=False,
        help_text="A probe only decided what to show; otherwise someone attempted the action.",
    )
    trace = models.JSONField(default=list)
    request_id = models.CharField(max_length=128, blank=True, default="")
    method = models.CharField(max_length=16, blank=True, default="")
    path = models.TextField(blank=True, default="")
    remote_addr = models.CharField("remote address", max_length=64, blank=True, default="")
    caller = models.CharField(
        max_length=150,
        blank=True,
        default="",
        help_text="The calling service that asked on the actor's behalf (e.g. token:gateway).",
    )

    objects = AuditRecordManager()

    class Meta:
        app_label = "clearance"
        verbose_name = "audit record"
        verbose_name_plural = "audit records"
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["action", "at"], name="clearance_audit_action_at"),
            models.Index(fields=["actor_pk", "at"], name="clearance_audit_actor_at"),
        ]
        default_permissions = ("view",)
        # Django's internal paths (save_base, deletion) go through the refusing queryset too.
        base_manager_name = "objects"

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else f"denied by {self.code}"
        target = f" on {self.resource_model}:{self.resource_pk}" if self.resource_model else ""
        return f"{self.actor_label} {self.action}{target}: {verdict}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert a new record; saving an existing one raises :class:`AppendOnlyError`."""
        if not self._state.adding:
            raise _refuse("saving an existing record")
        if kwargs.get("update_fields") is not None:
            raise _refuse("save(update_fields=...)")
        kwargs["force_insert"] = True
        kwargs.pop("force_update", None)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Refused: audit records are append-only."""
        raise _refuse("delete()")

    @property
    def outcome(self) -> str:
        """``"allowed"`` or ``"denied"``."""
        return "allowed" if self.allowed else "denied"

    @property
    def kind(self) -> str:
        """``"probe"`` or ``"attempt"`` (see :attr:`clearance.Decision.probe`)."""
        return "probe" if self.probe else "attempt"

    @classmethod
    def from_decision(cls, decision: Decision, meta: dict[str, str] | None = None) -> AuditRecord:
        """An unsaved record of ``decision`` (``meta``: request_id, method, path, remote_addr,
        caller)."""
        resource = decision.resource
        record = cls(
            at=decision.at,
            allowed=decision.allowed,
            action=decision.action,
            actor_label=decision.actor.label,
            actor_pk=_text(decision.actor.pk),
            actor_kind=decision.actor.kind,
            resource_model=resource.model if resource is not None else "",
            resource_pk=_text(resource.pk) if resource is not None else "",
            layer=decision.layer.value if decision.layer is not None else "",
            rule=decision.rule or "",
            reason=decision.reason,
            code=decision.code,
            error=decision.error or "",
            fingerprint=decision.fingerprint,
            explained=decision.explained,
            performed=decision.performed,
            probe=decision.probe,
            trace=decision.as_dict()["trace"],
            **(meta or {}),
        )
        # A value longer than its column would make the insert fail and lose the record.
        for attname, max_length in BOUNDED:
            value = getattr(record, attname)
            if isinstance(value, str) and len(value) > max_length:
                setattr(record, attname, value[:max_length])
        return record

    def to_decision(self) -> Decision:
        """The recorded decision, rebuilt (primary keys come back as strings)."""
        return Decision(
            allowed=self.allowed,
            action=self.action,
            actor=ActorRef(self.actor_label, self.actor_pk or None, self.actor_kind),
            resource=(
                ResourceRef(self.resource_model, self.resource_pk or None)
                if self.resource_model
                else None
            ),
            layer=Layer(self.layer) if self.layer else None,
            rule=self.rule or None,
            reason=self.reason,
            code=self.code,
            at=self.at,
            fingerprint=self.fingerprint,
            error=self.error or None,
            explained=self.explained,
            performed=self.performed,
            probe=self.probe,
            trace=tuple(
                TraceEntry(
                    layer=Layer(t["layer"]),
                    rule=t["rule"],
                    outcome=t["outcome"],
                    reason=t["reason"],
                    expression=t["expression"],
                    duration=t["duration_ms"] / 1000,
                    error=t["error"],
                )
                for t in self.trace
            ),
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value)


#: (attname, max_length) of every bounded text column: longer values are cut to fit.
BOUNDED: list[tuple[str, int]] = [
    (f.attname, f.max_length)
    for f in AuditRecord._meta.concrete_fields
    if isinstance(f, models.CharField) and isinstance(f.max_length, int)
]
