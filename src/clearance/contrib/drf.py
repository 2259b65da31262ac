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
  answers 403 with the code, gate and reason (DRF's ``NotAuthenticated``, 401 or 403 as the
  authenticator says, for an anonymous request).
- ``has_object_permission`` answers 404 when the actor may not even view the object
  (``clearance_view_action``, the model's view action by default), then decides the action:
  403 with the reason, or ``CLEARANCE["INVARIANT_STATUS"]`` (409) for an invariant.
- :class:`ClearanceAPIMixin` decides what a serializer would write before it writes it: a
  ``create`` on the unsaved instance built from the validated data, an ``update`` (and any
  action that saves a serializer) on the object as it would be after the change, with every
  policy and invariant; ``create``, ``update`` and ``partial_update`` refuse to run without it.
  It also looks objects up among those the actor may view (several matches answer 404), answers
  a :class:`~clearance.Denied` raised inside a view (by ``enforce()``, ``perform()`` or a model
  invariant on ``save()``) like the permission class does, and passes
  ``get_clearance_context()`` to the rules as ``CTX.<name>``.
- :class:`ClearanceFilterBackend` scopes list endpoints with :func:`~clearance.authorized` (one
  query) and detail endpoints by the view action, so a hidden object is a plain 404.
- The checks the browsable API makes to decide which forms to show, and those ``OPTIONS``
  makes to describe the actions (DRF asks them for another method than the one served), are
  probes: they are not recorded as attempts (see :func:`clearance.authorize`).
- :func:`exception_handler` answers a :class:`~clearance.Denied` the same way for views without
  the mixin; set it as ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``.
"""

from __future__ import annotations

import copy
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, MultipleObjectsReturned
from django.db import models
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.filters import BaseFilterBackend
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .. import engine
from ..actions import Action, registry
from ..decisions import Decision, Denied, Layer, exception_for
from .denials import (
    MODEL_VIEW_ACTION,
    capability_denial,
    check_object,
    denial_body,
    denial_status,
    not_found,
    resolve_view_action,
)

__all__ = [
    "ClearanceAPIMixin",
    "ClearanceDenied",
    "ClearanceFilterBackend",
    "ClearancePermission",
    "clearance_action_for",
    "clearance_context",
    "exception_handler",
    "would_be",
]

#: Viewset actions that read, and so default to the model's view action.
_READING = frozenset({"list", "retrieve", "metadata"})

#: Viewset actions that write through a serializer: decided on what they would write, which
#: only :class:`ClearanceAPIMixin` sees.
_WRITING = frozenset({"create", "update", "partial_update"})


def clearance_context(view: Any) -> dict[str, Any]:
    """The values ``view.get_clearance_context()`` gives the rules as ``CTX.<name>``."""
    get_context = getattr(view, "get_clearance_context", None)
    if not callable(get_context):
        return {}
    values = get_context()
    return dict(values) if values else {}


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
        """The permission gate for the mapped action; a denial raises with its reason.

        ``create``, ``update`` and ``partial_update`` need :class:`ClearanceAPIMixin` on the
        view, which decides them on what they would write: without it they are a configuration
        error, never decided by the permission gate (or the object as it was) alone.
        """
        act = clearance_action_for(view, request)
        if _view_action_name(view, request) in _WRITING and not isinstance(view, ClearanceAPIMixin):
            raise ImproperlyConfigured(
                f"{type(view).__name__} writes through a serializer ({view.action!r}) but is not "  # type: ignore[attr-defined]
                "a ClearanceAPIMixin: the write could not be decided on the state it would "
                "leave. Add ClearanceAPIMixin to the view's bases."
            )
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
                **clearance_context(view),
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
        return engine.authorized(
            request.user, act, queryset, request=request, **clearance_context(view)
        )


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


def would_be(serializer: serializers.BaseSerializer[Any], **save_kwargs: Any) -> Any:
    """The instance ``serializer.save(**save_kwargs)`` would write, not saved.

    A copy of ``serializer.instance`` (a new instance of the serializer's model for a create)
    with the validated data and ``save_kwargs`` applied to its concrete fields, foreign keys
    included. Many-to-many values and nested data (dicts and lists for relations) are left
    out: they are written after the instance, by the serializer's own code. None when the
    serializer's model cannot be told.
    """
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    return _would_be(serializer.instance, model, {**serializer.validated_data, **save_kwargs})


def _would_be(instance: Any, model: Any, data: dict[str, Any]) -> Any:
    if instance is not None and isinstance(instance, models.Model):
        obj = copy.copy(instance)  # Model.__getstate__ copies _state and its related cache
        model = type(instance)
    elif isinstance(model, type) and issubclass(model, models.Model):
        obj = model()
    else:
        return None
    for name, value in data.items():
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if not field.concrete or field.many_to_many or isinstance(value, (dict, list)):
            continue
        setattr(obj, name, value)
    return obj


class ClearanceAPIMixin:
    """For views and viewsets protected by :class:`ClearancePermission` (mix in first).

    - Decides a write on what it would write: ``serializer.save()`` (from ``perform_create``,
      ``perform_update`` or a custom action, whatever they pass to ``save()``) first decides
      the view's mapped action on :func:`would_be`, the unsaved instance for a create, the
      object as the change would leave it for an update, with every policy and invariant.
      (The object as it is was decided by ``has_object_permission``.) A denial answers 403, or
      ``INVARIANT_STATUS``, with the reason; nothing is written.
    - Looks objects up among those the actor may view (the model's view action), even without
      :class:`ClearanceFilterBackend`; several matches answer 404, as none does.
    - Answers a :class:`~clearance.Denied` raised inside the view with :func:`exception_handler`.
    - ``get_clearance_context()`` returns the values rules read as ``CTX.<name>``.
    """

    request: Request

    def get_clearance_context(self) -> dict[str, Any]:
        """Values the rules read as ``CTX.<name>`` (and ``ctx.extra``); none by default."""
        return {}

    def get_exception_handler(self) -> Any:
        """Clearance's exception handler, whatever ``REST_FRAMEWORK`` says."""
        return exception_handler

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        """DRF's serializer, whose ``save()`` first decides what it would write."""
        serializer = super().get_serializer(*args, **kwargs)  # type: ignore[misc]
        save = serializer.save

        def decided_save(**save_kwargs: Any) -> Any:
            self.check_write(serializer, **save_kwargs)
            return save(**save_kwargs)

        serializer.save = decided_save
        return serializer

    def check_write(self, serializer: Any, **save_kwargs: Any) -> None:
        """Decide the view's action on what ``serializer.save(**save_kwargs)`` would write.

        Raises the matching :class:`~clearance.Denied` on a denial; a list serializer is decided
        item by item.
        """
        act = clearance_action_for(self, self.request)
        extra = clearance_context(self)
        if isinstance(serializer, serializers.ListSerializer):
            if serializer.instance is not None:
                raise ImproperlyConfigured(
                    f"{type(self).__name__}: a list serializer's update cannot be decided item "
                    "by item; decide each object in its update() with enforce()."
                )
            model = getattr(getattr(serializer.child, "Meta", None), "model", None)
            targets = [
                _would_be(None, model, {**item, **save_kwargs})
                for item in serializer.validated_data
            ]
        else:
            targets = [would_be(serializer, **save_kwargs)]
        for target in targets:
            if target is None:
                raise ImproperlyConfigured(
                    f"{type(self).__name__}: cannot tell which model {type(serializer).__name__} "
                    "writes, so the write cannot be decided: use a ModelSerializer."
                )
            decision = engine.authorize(
                self.request.user, act, target, request=self.request, **extra
            )
            if not decision:
                raise exception_for(decision)

    def filter_queryset(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        """The view's filters; on a detail route, also the view action when no
        :class:`ClearanceFilterBackend` scopes it (objects are looked up among the visible)."""
        queryset = super().filter_queryset(queryset)  # type: ignore[misc]
        backends = getattr(self, "filter_backends", None) or ()
        if _is_detail(self) and not any(
            isinstance(b, type) and issubclass(b, ClearanceFilterBackend) for b in backends
        ):
            queryset = ClearanceFilterBackend().filter_queryset(self.request, queryset, self)  # type: ignore[arg-type]
        return queryset

    def get_object(self) -> Any:
        """DRF's ``get_object()``; a lookup that several objects match is not found (404)."""
        try:
            return super().get_object()  # type: ignore[misc]
        except MultipleObjectsReturned:
            # The very answer of a lookup that matches nothing.
            model = self.get_queryset().model  # type: ignore[attr-defined]
            raise not_found(model) from None
