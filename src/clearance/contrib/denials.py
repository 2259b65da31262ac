"""What the integrations answer: not found versus forbidden, status codes and error bodies.

An object the actor may not even *view* answers 404, exactly as a missing one does, so its
existence does not leak (the same answer a scoped queryset gives). A denial on an object the
actor can view answers 403 with the reason, or ``CLEARANCE["INVARIANT_STATUS"]`` (409 Conflict
by default) when an invariant refused. An error body carries the stable ``code``, the gate
(``layer``) and the reason the rule's author wrote for people; never the rule's expression, the
trace or an exception's text, which are for the audit log and for ``explain``.

A denial made because the database was unavailable (a gate raised ``OperationalError`` or
``InterfaceError``) answers 503 Service Unavailable, never "not found".
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import (
    ImproperlyConfigured,
    MultipleObjectsReturned,
    ObjectDoesNotExist,
    ValidationError,
)
from django.db import models
from django.http import Http404
from django.utils import timezone

from .. import engine
from ..actions import Action, registry
from ..conf import clearance_settings
from ..decisions import Decision, Layer, NotFilterable, exception_for, is_unavailable
from ..request_context import current_request, note_decision
from ..rules import Context

__all__ = [
    "LOOKUP_ERRORS",
    "MODEL_VIEW_ACTION",
    "SAFE_METHODS",
    "acapability_denial",
    "acheck_object",
    "afind_object",
    "capability_denial",
    "check_object",
    "denial_body",
    "denial_status",
    "find_object",
    "is_read_action",
    "method_action",
    "not_found",
    "resolve_view_action",
    "scope_for_lookup",
    "view_action_for",
]

#: HTTP methods that only read: they may be decided by a view's read action.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _ModelViewAction:
    """Marker: "the view action of the object's model" (see :func:`view_action_for`)."""

    def __repr__(self) -> str:
        return "MODEL_VIEW_ACTION"


#: The default ``view_action`` of every integration: the model's own view action.
MODEL_VIEW_ACTION: Any = _ModelViewAction()


def view_action_for(model: type[models.Model]) -> Action | None:
    """The action that says whether an actor may *see* objects of ``model`` at all.

    It is the one action on the model whose permission is Django's view permission for it
    (``invoices.view_invoice``), or else the action named ``"<app_label>.view"`` acting on the
    model. None when there is neither: denials then answer 403 and nothing is hidden.
    """
    opts = model._meta
    concrete = opts.concrete_model
    view_perm = f"{opts.app_label}.view_{opts.model_name}"
    candidates = registry.actions_for(model)
    by_permission = [a for a in candidates if a.permission == view_perm]
    if len(by_permission) == 1:
        return by_permission[0]
    name = f"{opts.app_label}.view"
    if name in registry:
        act = registry.get(name)
        if act.model is not None and act.model._meta.concrete_model is concrete:
            return act
    return None


def resolve_view_action(model: type[models.Model], view_action: Any) -> Action | None:
    """The view action to use for ``model``: the model's own, an explicit one, or None (off)."""
    if view_action is MODEL_VIEW_ACTION:
        return view_action_for(model)
    if view_action is None or view_action is False:
        return None
    act = registry.get(view_action)
    if act.model is None or act.model._meta.concrete_model is not model._meta.concrete_model:
        acts_on = act.model._meta.label if act.model is not None else "no model"
        raise ImproperlyConfigured(
            f"view_action {act.name!r} acts on {acts_on}, not on {model._meta.label}"
        )
    return act


def is_read_action(action: str | Action, view_action: Any = MODEL_VIEW_ACTION) -> bool:
    """True when ``action`` only reads: its model's view action, the view's ``view_action``, or
    an action whose permission is Django's view permission for its model."""
    act = registry.get(action)
    model = act.model
    if model is None:
        return False
    opts = model._meta
    if act.permission_label == f"{opts.app_label}.view_{opts.model_name}":
        return True
    if act is view_action_for(model):
        return True
    return isinstance(view_action, (str, Action)) and registry.get(view_action) is act


def method_action(
    method: str | None,
    action: str | None,
    action_by_method: dict[str, str] | None,
    *,
    view_action: Any = MODEL_VIEW_ACTION,
) -> str | None:
    """The action a request with ``method`` is decided by, or None: the view must refuse it.

    ``action_by_method`` names an action per method (upper case); ``action`` is the action of
    every other method. ``HEAD`` uses ``GET``'s action. An unsafe method (anything but GET,
    HEAD, OPTIONS and TRACE) is never decided by a read action: unless it is mapped to an action
    of its own, or ``action`` is not a read, the answer is None (405 Method Not Allowed).
    """
    verb = (method or "GET").upper()
    mapping = action_by_method or {}
    mapped = mapping.get(verb)
    if mapped:
        return mapped
    if verb == "HEAD" and mapping.get("GET"):
        return mapping["GET"]
    if verb in SAFE_METHODS:
        return action or None
    if action and not is_read_action(action, view_action):
        return action
    return None


def denial_status(decision: Decision) -> int:
    """The HTTP status for a denial: 403, ``INVARIANT_STATUS`` for an invariant, 503 when the
    database was unavailable."""
    if is_unavailable(decision):
        return 503
    if decision.layer is Layer.INVARIANT:
        return int(clearance_settings.INVARIANT_STATUS)
    return 403


def denial_body(decision: Decision) -> dict[str, str]:
    """The public part of a denial: ``detail``/``reason`` (for people), ``code``, ``layer``.

    Never the rule's expression, the trace, nor the text of an exception a rule raised.
    """
    return {
        "detail": decision.reason,
        "code": decision.code,
        "layer": decision.layer.value if decision.layer is not None else "",
        "reason": decision.reason,
        "action": decision.action,
    }


def not_found(model: type[models.Model]) -> Http404:
    """The very 404 ``get_object_or_404`` raises for a missing object of ``model``."""
    return Http404(f"No {model._meta.object_name} matches the given query.")


def _is_anonymous(actor: Any) -> bool:
    return not getattr(actor, "is_authenticated", False)


def _refuse(actor: Any, decision: Decision, *, hide: bool, model: type[models.Model]) -> None:
    # An anonymous visitor refused by gate 1 is asked to sign in rather than told "not found".
    # An outage is not "not found": the denial is answered 503 (denial_status).
    if (
        hide
        and not is_unavailable(decision)
        and not (decision.layer is Layer.PERMISSION and _is_anonymous(actor))
    ):
        raise not_found(model)
    raise exception_for(decision)


def check_object(
    actor: Any,
    action: str | Action,
    obj: models.Model,
    *,
    request: Any = None,
    view_action: Any = MODEL_VIEW_ACTION,
    probe: bool = False,
    **extra: Any,
) -> Decision:
    """Decide ``action`` on a loaded object the way every integration answers a request.

    Raises ``Http404`` when the actor may not even view the object (its view action denies),
    the matching :class:`~clearance.Denied` when the action is denied on a viewable object, and
    returns the allowed :class:`~clearance.Decision` otherwise. ``probe=True`` when the answer
    only decides what to show (a form the browsable API may offer).
    """
    act = registry.get(action)
    model = type(obj)
    seen_act = resolve_view_action(model, view_action)
    if seen_act is not None and seen_act is not act:
        seen = engine.authorize(actor, seen_act, obj, request=request, probe=probe, **extra)
        if not seen:
            _refuse(actor, seen, hide=True, model=model)
    decision = engine.authorize(actor, act, obj, request=request, probe=probe, **extra)
    if not decision:
        _refuse(actor, decision, hide=seen_act is act, model=model)
    return decision


async def acheck_object(
    actor: Any,
    action: str | Action,
    obj: models.Model,
    *,
    request: Any = None,
    view_action: Any = MODEL_VIEW_ACTION,
    **extra: Any,
) -> Decision:
    """Async twin of :func:`check_object`."""
    act = registry.get(action)
    model = type(obj)
    seen_act = resolve_view_action(model, view_action)
    if seen_act is not None and seen_act is not act:
        seen = await engine.aauthorize(actor, seen_act, obj, request=request, **extra)
        if not seen:
            _refuse(actor, seen, hide=True, model=model)
    decision = await engine.aauthorize(actor, act, obj, request=request, **extra)
    if not decision:
        _refuse(actor, decision, hide=seen_act is act, model=model)
    return decision


def scope_for_lookup(
    actor: Any,
    queryset: models.QuerySet[Any],
    *,
    request: Any = None,
    view_action: Any = MODEL_VIEW_ACTION,
    **extra: Any,
) -> models.QuerySet[Any]:
    """``queryset`` narrowed to the objects the actor may view, for looking one object up.

    Looking an object up inside this queryset answers "not found" both when none of the
    actor's objects match and when several do, whatever other tenants hold: the answer never
    depends on objects the actor may not see. An anonymous visitor whom the view action's
    permission gate refuses gets that denial (so the integrations ask them to sign in). With
    hiding off (``view_action=None``), or a view action that has no SQL form, the queryset is
    returned as it is: the object is then hidden, or refused, after it is loaded.
    """
    seen_act = resolve_view_action(queryset.model, view_action)
    if seen_act is None:
        return queryset
    if _is_anonymous(actor):
        denial = capability_denial(actor, seen_act, request=request)
        if denial is not None:
            raise exception_for(denial)
    try:
        return engine.authorized(actor, seen_act, queryset, request=request, **extra)
    except NotFilterable:
        return queryset


#: What a failed lookup raises, besides ``DoesNotExist``: a malformed value, or several rows.
LOOKUP_ERRORS = (
    ObjectDoesNotExist,
    MultipleObjectsReturned,
    ValueError,
    TypeError,
    ValidationError,
)


def find_object(
    actor: Any,
    queryset: models.QuerySet[Any],
    lookups: dict[str, Any],
    *,
    request: Any = None,
    view_action: Any = MODEL_VIEW_ACTION,
    **extra: Any,
) -> Any:
    """The one object matching ``lookups`` among those the actor may view, or ``Http404``.

    Missing, hidden, malformed and ambiguous (several match) all answer the same 404.
    """
    scoped = scope_for_lookup(actor, queryset, request=request, view_action=view_action, **extra)
    try:
        return scoped.get(**lookups)
    except LOOKUP_ERRORS:
        _refuse_if_unavailable(actor, queryset.model, view_action, request)
        raise not_found(queryset.model) from None


def _refuse_if_unavailable(actor: Any, model: Any, view_action: Any, request: Any) -> None:
    """Raise the view action's gate-1 denial when it says the database was unavailable.

    A permission check that raised leaves the lookup's queryset empty (``authorized()`` fails
    closed); the caller must then hear "try again" (503), not "not found".
    """
    seen_act = resolve_view_action(model, view_action)
    if seen_act is None:
        return
    denial = capability_denial(actor, seen_act, request=request)
    if denial is not None and is_unavailable(denial):
        raise exception_for(denial)


async def afind_object(
    actor: Any,
    queryset: models.QuerySet[Any],
    lookups: dict[str, Any],
    *,
    request: Any = None,
    view_action: Any = MODEL_VIEW_ACTION,
    **extra: Any,
) -> Any:
    """Async twin of :func:`find_object`."""
    from asgiref.sync import sync_to_async

    scoped = await sync_to_async(scope_for_lookup)(
        actor, queryset, request=request, view_action=view_action, **extra
    )
    try:
        return await scoped.aget(**lookups)
    except LOOKUP_ERRORS:
        await sync_to_async(_refuse_if_unavailable)(actor, queryset.model, view_action, request)
        raise not_found(queryset.model) from None


def capability_denial(
    actor: Any, action: str | Action, *, request: Any = None, probe: bool = False
) -> Decision | None:
    """Gate 1 alone, for requests that act on no single object yet (lists, creation).

    Returns None when the actor may attempt ``action``; otherwise the denial, recorded like
    every other decision (audit sinks, ``decision_made``), so its code and reason can be shown
    (``probe=True``: a probe, see :func:`clearance.authorize`).
    """
    engine.check_actor(actor)
    act = registry.get(action)
    gate1 = engine.permission_gate(actor, act)
    if request is None:
        request = current_request.get()
    if gate1[0]:
        note_decision()
        return None
    ctx = Context(actor, act, None, now=timezone.now(), request=request)
    decision = engine.decide(act, ctx, full=False, gate1=gate1, probe=probe)
    return engine.record(decision, request)


async def acapability_denial(
    actor: Any, action: str | Action, *, request: Any = None
) -> Decision | None:
    """Async twin of :func:`capability_denial`."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(capability_denial)(actor, action, request=request)
