"""Django REST framework: a permission class, a filter backend and an exception handler.

Install with the ``drf`` extra (``pip install 'django-clearance[drf]'``). On a view or viewset::

    class InvoiceViewSet(viewsets.ModelViewSet):
        permission_classes = [ClearancePermission]
        filter_backends = [ClearanceFilterBackend]
        clearance_actions = {"update": "invoices.change", "approve": "invoices.approve"}

``clearance_actions`` maps the viewset's actions (``list``, ``retrieve``, ``update``,
``partial_update``, ``destroy``, ``create``, custom ``@action`` names; for a plain ``APIView``
the lower-case HTTP method) to clearance actions. ``list``, ``retrieve`` and ``metadata`` default
to the model's view action; any other action must be mapped (a missing mapping is a
configuration error, never an allow).

- ``has_permission`` runs the permission gate alone (the object is not loaded yet); a denial
  answers 403 with the code, gate and reason (401 for an unauthenticated request when the view
  has authenticators).
- ``has_object_permission`` answers 404 when the actor may not even view the object
  (``clearance_view_action``, the model's view action by default), then decides the action:
  403 with the reason, or ``CLEARANCE["INVARIANT_STATUS"]`` (409) for an invariant.
- :class:`ClearanceFilterBackend` scopes list endpoints with :func:`~clearance.authorized` (one
  query) and detail endpoints by the view action, so a hidden object is a plain 404.
- The checks the browsable API makes to decide which forms to show, and those ``OPTIONS``
  makes to describe the actions (DRF asks them for another method than the one served), are
  probes: they are not recorded as attempts (see :func:`clearance.authorize`).
- :func:`exception_handler` answers a :class:`~clearance.Denied` raised inside a view (by
  ``enforce()``, ``perform()`` or a model invariant on ``save()``) the same way; set it as
  ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` or use :class:`ClearanceAPIMixin`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import Http404
from rest_framework import exceptions
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .. import engine
from ..actions import Action, registry
from ..decisions import Decision, Denied, Layer
from .denials import (
    MODEL_VIEW_ACTION,
    capability_denial,
    check_object,
    denial_body,
    denial_status,
    resolve_view_action,
)

__all__ = [
    "ClearanceAPIMixin",
    "ClearanceDenied",
    "ClearanceFilterBackend",
    "ClearancePermission",
    "clearance_action_for",
    "exception_handler",
]

#: Viewset actions that read, and so default to the model's view action.
_READING = frozenset({"list", "retrieve", "metadata"})


class ClearanceDenied(exceptions.APIException):
    """A denial as an API error: status 403 (or ``INVARIANT_STATUS``) and a body with
    ``detail``, ``code``, ``layer``, ``reason`` and ``action``."""

    status_code = 403
    default_detail = "You may not do this."
    default_code = "permission_denied"

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.status_code = denial_status(decision)
        super().__init__(detail=denial_body(decision), code=decision.code)


def _api_denial(request: Request, decision: Decision) -> exceptions.APIException:
    unauthenticated = not getattr(request.user, "is_authenticated", False)
    if (
        decision.layer is Layer.PERMISSION
        and unauthenticated
        and getattr(request, "authenticators", None)
        and not getattr(request, "successful_authenticator", None)
    ):
        return exceptions.NotAuthenticated()
    return ClearanceDenied(decision)


def _model_of(view: Any) -> type[models.Model] | None:
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        get_queryset = getattr(view, "get_queryset", None)
        if callable(get_queryset):
            queryset = get_queryset()
    return getattr(queryset, "model", None)


def _view_action_name(view: Any, request: Request) -> str:
    name = getattr(view, "action", None)
    if name:
        return str(name)
    return (request.method or "get").lower()


def clearance_action_for(view: Any, request: Request) -> Action:
    """The clearance action the view's current action (or HTTP method) maps to."""
    name = _view_action_name(view, request)
    mapping: dict[str, str] = getattr(view, "clearance_actions", None) or {}
    if name in mapping:
        return registry.get(mapping[name])
    if name in _READING or name in ("get", "head", "options"):
        fallback = mapping.get("list") if name == "metadata" else None
        if fallback:
            return registry.get(fallback)
        model = _model_of(view)
        act = (
            resolve_view_action(model, getattr(view, "clearance_view_action", MODEL_VIEW_ACTION))
            if model is not None
            else None
        )
        if act is not None:
            return act
    raise ImproperlyConfigured(
        f"{type(view).__name__}.clearance_actions maps no clearance action to {name!r}: every "
        "action of a view protected by ClearancePermission must be mapped (deny by default)"
    )


def _is_detail(view: Any) -> bool:
    detail = getattr(view, "detail", None)
    if detail is not None:
        return bool(detail)
    lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    return lookup in (getattr(view, "kwargs", None) or {})


def _is_probe(request: Request) -> bool:
    """Whether DRF asks for another method than the one served: the browsable API checking
    which forms to offer, or ``OPTIONS`` describing the actions (a probe, not an attempt)."""
    served = getattr(getattr(request, "_request", None), "method", None)
    return served is not None and request.method != served


class ClearancePermission(BasePermission):
    """A DRF permission that runs clearance's gates for the view's action.

    ``has_permission`` checks the permission gate (what the actor may attempt at all);
    ``has_object_permission`` hides objects the actor may not view (404), then decides the
    action on the object (403 with the reason, 409 for an invariant).
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        """The permission gate for the mapped action; a denial raises with its reason."""
        act = clearance_action_for(view, request)
        denial = capability_denial(request.user, act, request=request, probe=_is_probe(request))
        if denial is not None:
            raise _api_denial(request, denial)
        return True

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        """404 if the actor may not view ``obj``; otherwise the action's decision on it."""
        act = clearance_action_for(view, request)
        view_action = getattr(view, "clearance_view_action", MODEL_VIEW_ACTION)
        try:
            check_object(
                request.user,
                act,
                obj,
                request=request,
                view_action=view_action,
                probe=_is_probe(request),
            )
        except Http404 as exc:
            raise exceptions.NotFound(*exc.args) from None
        except Denied as exc:
            raise _api_denial(request, exc.decision) from None
        return True


class ClearanceFilterBackend(BaseFilterBackend):
    """Scope the queryset with :func:`~clearance.authorized` (one SQL query).

    List endpoints (and custom list-level actions) are scoped by their mapped action; detail
    endpoints by the view action, so an object the actor may not see is simply not found.
    """

    def filter_queryset(
        self, request: Request, queryset: models.QuerySet[Any], view: APIView
    ) -> models.QuerySet[Any]:
        """The objects of ``queryset`` the actor may act on."""
        if _is_detail(view):
            act = resolve_view_action(
                queryset.model, getattr(view, "clearance_view_action", MODEL_VIEW_ACTION)
            )
            if act is None:
                return queryset
        else:
            act = clearance_action_for(view, request)
        return engine.authorized(request.user, act, queryset, request=request)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler, plus clearance denials answered with their code and reason.

    Set ``REST_FRAMEWORK = {"EXCEPTION_HANDLER": "clearance.contrib.drf.exception_handler"}``.
    """
    if isinstance(exc, Denied):
        request = context.get("request")
        exc = (
            _api_denial(request, exc.decision)
            if request is not None
            else ClearanceDenied(exc.decision)
        )
    return drf_exception_handler(exc, context)


class ClearanceAPIMixin:
    """For views and viewsets: use :func:`exception_handler` without changing settings."""

    def get_exception_handler(self) -> Any:
        """Clearance's exception handler, whatever ``REST_FRAMEWORK`` says."""
        return exception_handler
