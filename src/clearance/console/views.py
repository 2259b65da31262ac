"""The console's pages. Each one reads; none changes anything.

Every view is wrapped by :func:`~clearance.console.access.console_view`: active staff with the
console's permission only (anonymous visitors go to the login page, others get a 403), GET and
HEAD only, never cached. Objects and audit records are those the console user may see
(:mod:`clearance.console.scope`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import Group
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from ..actions import ANYONE, registry
from ..audit.models import AuditRecord
from ..introspection import capability_matrix, describe_model_invariants, scope_paths
from ..scopes import scope_gate
from .access import console_view
from .auditing import AuditFilterForm, audit_records, daily_counts
from .chart import daily_chart
from .explaining import ExplainForm
from .gates import gates
from .scope import visible_records

__all__ = ["actions", "audit", "audit_record", "changes", "explain", "index", "matrix"]

#: Audit records per page.
PAGE_SIZE = 25
#: Days the chart shows when no date range is chosen, and at most.
CHART_DAYS = 14
CHART_MAX_DAYS = 92


def _render(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    # The staff member, whatever context processors the project enables.
    context["console_user"] = request.user
    return render(request, f"clearance/console/{template}", context)


@console_view
def index(request: HttpRequest) -> HttpResponse:
    """The console's home: what each page shows, with a few numbers."""
    since = timezone.now() - dt.timedelta(days=7)
    return _render(
        request,
        "index.html",
        {
            "section": "index",
            "action_count": len(registry.actions),
            "group_count": Group.objects.count(),
            "recent_denials": visible_records(request.user, audit_records())
            .attempts()
            .filter(allowed=False, at__gte=since)
            .count(),
        },
    )


@console_view
def actions(request: HttpRequest) -> HttpResponse:
    """Every action with its permission, policies, invariants and their reasons."""
    rows = []
    for action in registry.actions:
        model = action.model
        rows.append(
            {
                "action": action,
                "model": model._meta.label if model is not None else None,
                "anyone": action.permission is ANYONE,
                # (path, the scope it reaches or None, what is wrong with it)
                "scope_paths": scope_paths(action),
                # The reason gate 1 gives when it denies a scoped action (None: unscoped).
                "scope_denial": scope_gate(action).lacks if action.scope else None,
                "model_invariants": action.model_invariants(),
                "explain_url": _explain_url(action=action.name),
            }
        )
    model_invariants: dict[str, list[dict[str, Any]]] = {}
    for invariant in describe_model_invariants():
        model_invariants.setdefault(invariant["model"], []).append(invariant)
    return _render(
        request,
        "actions.html",
        {"section": "actions", "rows": rows, "model_invariants": list(model_invariants.items())},
    )


@console_view
def matrix(request: HttpRequest) -> HttpResponse:
    """Actions by groups: who holds each action's permission, and what refines it."""
    data = capability_matrix()
    rows = [
        {**row, "cells": [(group, row["groups"][group]) for group in data["groups"]]}
        for row in data["actions"]
    ]
    return _render(
        request,
        "matrix.html",
        {
            "section": "matrix",
            "groups": data["groups"],
            "rows": rows,
            # The column of grants within scopes only when an action is scoped.
            "scoped": any(row["within"] for row in rows),
            "scopes": data["scopes"],
            "model_invariants": data["model_invariants"],
        },
    )


def _explain_url(**params: Any) -> str:
    query = {k: v for k, v in params.items() if v not in (None, "")}
    url = reverse("clearance_console:explain")
    return f"{url}?{urlencode(query)}" if query else url


@console_view
def explain(request: HttpRequest) -> HttpResponse:
    """Pick a user, an action and an object; see the three gates, rule by rule."""
    asked = any(request.GET.get(name) for name in ("user", "action", "object"))
    form = ExplainForm(request.GET if asked else None, viewer=request.user)
    object_lists = ExplainForm.object_lists(request.user)
    context: dict[str, Any] = {
        "section": "explain",
        "form": form,
        "usernames": ExplainForm.suggested_usernames(),
        "object_lists": object_lists,
        # Which datalist the object field offers for each action (read by explain.js).
        "action_objects": {name: lst.id for lst in object_lists for name in lst.actions},
    }
    if asked and form.is_valid():
        decision = form.explain(request.user)
        context.update(
            explained=True,
            decision=decision,
            gates=gates(decision),
            target=form.target,
            permalink=_explain_url(
                user=form.cleaned_data["user"],
                action=form.cleaned_data["action"],
                object=form.cleaned_data.get("object", "").strip(),
                at=request.GET.get("at", "") if form.cleaned_data.get("at") else "",
            ),
        )
    return _render(request, "explain.html", context)


@console_view
def audit(request: HttpRequest) -> HttpResponse:
    """The audit trail: filtered, paginated, with a chart of decisions per day."""
    records = visible_records(request.user, audit_records())
    recorded_actions = sorted(
        set(records.order_by().values_list("action", flat=True).distinct())
        | {a.name for a in registry.actions}
    )
    form = AuditFilterForm(request.GET or None, actions=recorded_actions)
    selected = form.filter(records) if form.is_bound else records.attempts()

    page = Paginator(selected.order_by("-at", "-pk"), PAGE_SIZE).get_page(request.GET.get("page"))

    data = form.cleaned_data if form.is_bound and form.is_valid() else {}
    today = timezone.localdate()
    last = data.get("until") or today
    first = data.get("since") or last - dt.timedelta(days=CHART_DAYS - 1)
    clipped = (last - first).days + 1 > CHART_MAX_DAYS
    if clipped:
        first = last - dt.timedelta(days=CHART_MAX_DAYS - 1)
    chart = daily_chart(daily_counts(selected, first, last))

    query = request.GET.copy()
    query.pop("page", None)
    return _render(
        request,
        "audit.html",
        {
            "section": "audit",
            "form": form,
            "page": page,
            "rows": [(r, _explain_url_for(r)) for r in page.object_list],
            "chart": chart,
            "chart_clipped": clipped,
            "filter_query": query.urlencode(),
        },
    )


def _explain_url_for(record: AuditRecord) -> str | None:
    """The explain page for a record's question, asked again now (users only)."""
    if record.actor_kind != "user" or not record.actor_label or record.action not in registry:
        return None
    return _explain_url(user=record.actor_label, action=record.action, object=record.resource_pk)


@console_view
def audit_record(request: HttpRequest, pk: int) -> HttpResponse:
    """One recorded decision, drawn gate by gate as it was decided."""
    try:
        record = visible_records(request.user, audit_records()).get(pk=pk)
    except AuditRecord.DoesNotExist:
        raise Http404("No such audit record.") from None
    decision = record.to_decision()
    current = registry.get(record.action) if record.action in registry else None
    return _render(
        request,
        "audit_record.html",
        {
            "section": "audit",
            "record": record,
            "decision": decision,
            "gates": gates(decision),
            "rules_changed": current is not None and current.fingerprint() != record.fingerprint,
            "undeclared": current is None,
            "explain_url": _explain_url_for(record),
        },
    )


def _moment(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _readable_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last replay report with its times as datetimes, for the template."""
    if report is None:
        return None
    for key in ("made_at", "since", "until"):
        report[key] = _moment(report.get(key))
    for group in (*report.get("flips", []), *report.get("skipped", [])):
        for example in group.get("examples", []):
            example["at"] = _moment(example.get("at"))
            example["object_changed_at"] = _moment(example.get("object_changed_at"))
    return report


@console_view
def changes(request: HttpRequest) -> HttpResponse:
    """The running rules against the committed snapshot, and the last replay report."""
    from ..replay import load_report, report_path
    from ..snapshot import snapshot_status

    return _render(
        request,
        "changes.html",
        {
            "section": "changes",
            "snapshot": snapshot_status(),
            "report": _readable_report(load_report()),
            "report_path": report_path(),
        },
    )
