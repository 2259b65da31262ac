"""The audit page's filters, and the audit records they select.

Records are read from the database the audit trail is written to:
``CLEARANCE["AUDIT_DATABASE"]`` when it is set, otherwise wherever the routers send
``clearance.AuditRecord``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any, cast

from django import forms
from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..audit.models import AuditRecord, AuditRecordQuerySet
from ..conf import clearance_settings
from ..decisions import Layer

__all__ = ["AuditFilterForm", "audit_records", "daily_counts", "series_of"]

#: The chart's series: allowed decisions, then denials by the gate that made them.
SERIES = ("allowed", "permission", "policy", "invariant", "other")

SERIES_LABELS = {
    "allowed": "allowed",
    "permission": "denied by a permission",
    "policy": "denied by a policy",
    "invariant": "denied by an invariant",
    "other": "denied, no gate (audit unrecorded)",
}


def audit_records() -> AuditRecordQuerySet:
    """Every audit record, from the database the audit trail is written to."""
    alias = clearance_settings.AUDIT_DATABASE
    records: AuditRecordQuerySet = AuditRecord.objects.all()
    if isinstance(alias, str) and alias:
        records = cast(AuditRecordQuerySet, records.using(alias))
    return records


def series_of(allowed: bool, layer: str) -> str:
    """The chart series a record belongs to."""
    if allowed:
        return "allowed"
    return layer if layer in SERIES else "other"


class AuditFilterForm(forms.Form):
    """The audit page's filters (GET parameters; every one optional)."""

    outcome = forms.ChoiceField(
        label="Outcome",
        required=False,
        choices=[("", "Any"), ("denied", "Denied"), ("allowed", "Allowed")],
    )
    layer = forms.ChoiceField(
        label="Gate",
        required=False,
        choices=[("", "Any")] + [(layer.value, layer.value.capitalize()) for layer in Layer],
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "Attempts"), ("probe", "Probes"), ("any", "Any")],
        help_text="Attempts: someone tried to act. Probes: a page decided what to show.",
    )
    action = forms.ChoiceField(label="Action", required=False, choices=())
    actor = forms.CharField(
        label="Actor",
        required=False,
        max_length=255,
        help_text="Part of the actor's name.",
    )
    since = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, actions: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["action"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Any")] + [(name, name) for name in actions or []]

    def clean(self) -> dict[str, Any]:
        """``From`` may not come after ``To``."""
        cleaned: dict[str, Any] = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date comes before the start date.")
        return cleaned

    def filter(self, records: AuditRecordQuerySet) -> AuditRecordQuerySet:
        """``records`` narrowed by the valid filters (call after ``is_valid()``)."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        lookups: dict[str, Any] = {}
        kind = data.get("kind", "")
        if kind != "any":
            lookups["probe"] = kind == "probe"
        if data.get("outcome"):
            lookups["allowed"] = data["outcome"] == "allowed"
        if data.get("layer"):
            lookups["layer"] = data["layer"]
        if data.get("action"):
            lookups["action"] = data["action"]
        if data.get("actor", "").strip():
            lookups["actor_label__icontains"] = data["actor"].strip()
        if data.get("since"):
            lookups["at__gte"] = _start_of(data["since"])
        if data.get("until"):
            lookups["at__lt"] = _start_of(data["until"] + dt.timedelta(days=1))
        result: AuditRecordQuerySet = records.filter(**lookups)
        return result


def _start_of(day: dt.date) -> dt.datetime:
    """Midnight at the start of ``day`` in the current time zone."""
    midnight = dt.datetime.combine(day, dt.time.min)
    return timezone.make_aware(midnight) if settings.USE_TZ else midnight


def daily_counts(
    records: AuditRecordQuerySet, first: dt.date, last: dt.date
) -> dict[dt.date, Counter[str]]:
    """Records per day from ``first`` to ``last`` (inclusive), by series; one query."""
    rows = (
        records.filter(at__gte=_start_of(first), at__lt=_start_of(last + dt.timedelta(days=1)))
        .annotate(day=TruncDate("at"))
        .values("day", "allowed", "layer")
        .annotate(n=Count("pk"))
        .order_by()
    )
    days: dict[dt.date, Counter[str]] = {}
    day = first
    while day <= last:
        days[day] = Counter()
        day += dt.timedelta(days=1)
    for row in rows:
        counter = days.get(row["day"])
        if counter is not None:
            counter[series_of(row["allowed"], row["layer"])] += row["n"]
    return days
