"""What a console user may see of the project's data: objects, and the audit records about them.

The rule set (actions, matrix) is the same for everyone. The data is not: a staff member of one
tenant must not read another tenant's objects or audit trail through the console, any more than
through the admin. So, unless ``CLEARANCE["CONSOLE_SEES_ALL"]`` is True (a single-tenant
project), the console shows

* the objects the console user may view through the model's view action (the one every
  integration uses to hide objects; ``CLEARANCE["CONSOLE_VIEW_ACTIONS"]`` names another per
  model label), as :func:`~clearance.authorized` gives them: the explain page's suggestions and
  the objects it explains, a missing and a hidden object reading the same;
* the audit records about those objects. Records about no object (an action on no model, the
  permission gate refusing a list or a creation) and about objects of a model without a view
  action are shown only when the console sees all.
"""

from __future__ import annotations

from typing import Any, cast

from django.apps import apps
from django.db import models, router
from django.db.models import CharField, Q
from django.db.models.functions import Cast

from .. import engine
from ..actions import Action, registry
from ..audit.models import AuditRecord, AuditRecordQuerySet
from ..conf import clearance_settings
from ..contrib.denials import view_action_for

__all__ = ["console_view_action", "sees_all", "visible_objects", "visible_records"]


def sees_all() -> bool:
    """True when the project says the console sees every object and record."""
    return clearance_settings.CONSOLE_SEES_ALL is True


def console_view_action(model: type[models.Model]) -> Action | None:
    """The action that says which objects of ``model`` a console user may see, or None."""
    named: dict[str, str] = clearance_settings.CONSOLE_VIEW_ACTIONS or {}
    name = named.get(model._meta.label)
    if name is not None:
        return registry.get(name)
    return view_action_for(model)


def visible_objects(user: Any, model: type[models.Model]) -> models.QuerySet[Any]:
    """The objects of ``model`` the console user may see (none without a view action)."""
    queryset: models.QuerySet[Any] = model._base_manager.all()
    if sees_all():
        return queryset
    act = console_view_action(model)
    if act is None:
        nothing: models.QuerySet[Any] = queryset.none()
        return nothing
    scoped: models.QuerySet[Any] = engine.authorized(user, act, queryset, evaluate_in_python=True)
    return scoped


def visible_records(user: Any, records: AuditRecordQuerySet) -> AuditRecordQuerySet:
    """The audit records about objects the console user may see (all, when it sees all)."""
    if sees_all():
        return records
    condition = Q(pk__in=[])
    labels = records.order_by().values_list("resource_model", flat=True).distinct()
    for label in sorted(set(labels)):
        if not label:
            continue
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        if console_view_action(model) is None:
            continue
        condition |= Q(resource_model=label, resource_pk__in=_visible_pks(user, model, records))
    return cast(AuditRecordQuerySet, records.filter(condition))


def _visible_pks(user: Any, model: type[models.Model], records: AuditRecordQuerySet) -> Any:
    """The visible primary keys as text: a subquery on one database, a list across two."""
    visible = visible_objects(user, model)
    if router.db_for_read(model) == (records.db or router.db_for_read(AuditRecord)):
        return visible.annotate(_pk_text=Cast("pk", CharField())).values("_pk_text")
    return [str(pk) for pk in visible.values_list("pk", flat=True)]
