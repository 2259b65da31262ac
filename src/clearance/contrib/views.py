"""Views: a decorator for function views, mixins for class-based views; sync and async.

- :func:`action_required` loads the object named by the URL (404 when it is missing or when the
  actor may not even view it), decides the action, and answers a denial with 403 and the reason
  (``CLEARANCE["INVARIANT_STATUS"]``, 409 by default, for an invariant).
- :class:`ActionRequiredMixin` does the same for detail, update and delete views, with one
  action per view or per HTTP method, and re-checks the action on the state a form would save.
- :class:`AuthorizedListMixin` scopes a list view's queryset with
  :func:`~clearance.authorized`, in one query.

A :class:`~clearance.Denied` raised inside the view itself (by ``enforce()`` or an invariant on
``save()``) is answered the same way. An anonymous visitor refused by the permission gate is sent
to the login page, like Django's ``permission_required`` does.

Every HTTP method is decided by an action: ``action_by_method`` names one per method, ``action``
the others. An unsafe method (POST, PUT, PATCH, DELETE...) is never decided by a read action
(the model's view action): unless it is mapped, it answers 405 Method Not Allowed. Objects are
looked up among those the actor may view, so a lookup that several objects match, or none of
the actor's, answers 404, whatever other tenants hold.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.exception import response_for_exception
from django.db import models
from django.http import (
    Http404,
    HttpRequest,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.shortcuts import resolve_url

from .. import engine
from ..actions import Action, registry
from ..decisions import Decision, Denied, Layer, exception_for
from .denials import (
    LOOKUP_ERRORS,
    MODEL_VIEW_ACTION,
    SAFE_METHODS,
    acapability_denial,
    acheck_object,
    afind_object,
    capability_denial,
    check_object,
    denial_body,
    denial_status,
    find_object,
    method_action,
    resolve_view_action,
    scope_for_lookup,
)

__all__ = [
    "ActionRequiredMixin",
    "AuthorizedListMixin",
    "action_required",
    "denied_response",
]

View = Callable[..., Any]


# --------------------------------------------------------------------------------------------
# Answering a denial
# --------------------------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def denied_response(
    request: HttpRequest, exc: Denied, *, login_url: str | None = None
) -> HttpResponseBase:
    """The response for a denial raised while serving ``request``.

    An anonymous visitor refused by the permission gate is redirected to the login page. A
    client asking for JSON gets ``{"detail", "code", "layer", "reason", "action"}``; others get
    the project's 403 page (``handler403``, which receives the exception and so its
    ``.decision``). The status is 403, or ``INVARIANT_STATUS`` for an invariant.
    """
    decision = exc.decision
    user = getattr(request, "user", None)
    if decision.layer is Layer.PERMISSION and not getattr(user, "is_authenticated", False):
        return redirect_to_login(
            request.get_full_path(), resolve_url(login_url or settings.LOGIN_URL)
        )
    status = denial_status(decision)
    if _wants_json(request):
        return JsonResponse(denial_body(decision), status=status)
    response = response_for_exception(request, exc)
    response.status_code = status
    return response


async def _adenied_response(
    request: HttpRequest, exc: Denied, *, login_url: str | None = None
) -> HttpResponseBase:
    # Rendering the 403 page may touch request.user, so it runs in a thread.
    if hasattr(request, "auser"):
        await request.auser()
    return await sync_to_async(denied_response)(request, exc, login_url=login_url)


# --------------------------------------------------------------------------------------------
# Function views
# --------------------------------------------------------------------------------------------


def _model_of(act: Action, model: type[models.Model] | None) -> type[models.Model] | None:
    if model is not None:
        return model
    return act.model


def _not_allowed(request: HttpRequest, allowed: list[str]) -> HttpResponseNotAllowed:
    # Django's request logger reports the 405 (as for any method a view does not handle).
    return HttpResponseNotAllowed(allowed)


def action_required(
    action: str,
    model: type[models.Model] | None = None,
    *,
    queryset: models.QuerySet[Any] | None = None,
    lookup_field: str = "pk",
    url_kwarg: str | None = None,
    object_kwarg: str | None = None,
    view_action: Any = MODEL_VIEW_ACTION,
    login_url: str | None = None,
    action_by_method: dict[str, str] | None = None,
) -> Callable[[View], View]:
    """Protect a function view (sync or ``async def``) with an action.

    For an action on a model, the object is looked up by ``lookup_field`` from the URL keyword
    ``url_kwarg`` (default: the lookup field) among the objects of ``queryset`` (default: the
    model's default manager) the actor may view, and passed to the view as the keyword
    ``object_kwarg`` (default: the model name, e.g. ``invoice``) in place of the URL keyword. A
    missing object, one the actor may not even view (``view_action``, the model's view action by
    default; None turns hiding off), and a lookup several objects match answer 404; a denial
    answers 403 with the reason, or ``INVARIANT_STATUS`` for an invariant. For an action on no
    model, the action is decided without an object.

    ``action`` decides every HTTP method, except the methods ``action_by_method`` maps to
    another action (``{"POST": "invoices.delete"}``). An unsafe method (POST, PUT, PATCH,
    DELETE) is never decided by a read action: when ``action`` is the model's view action, an
    unmapped unsafe method answers 405.

    ::

        @action_required("invoices.view")
        def approve(request, invoice): ...
    """

    def decorate(view: View) -> View:
        spec = _Spec(
            action,
            model,
            queryset,
            lookup_field,
            url_kwarg,
            object_kwarg,
            view_action,
            dict(action_by_method or {}),
        )

        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                name = spec.action_for(request.method)
                if name is None:
                    return _not_allowed(request, spec.allowed())
                try:
                    actor = await request.auser()
                    kwargs = await spec.acheck(name, request, actor, kwargs)
                    return await view(request, *args, **kwargs)
                except Denied as exc:
                    return await _adenied_response(request, exc, login_url=login_url)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            name = spec.action_for(request.method)
            if name is None:
                return _not_allowed(request, spec.allowed())
            try:
                kwargs = spec.check(name, request, request.user, kwargs)
                return view(request, *args, **kwargs)
            except Denied as exc:
                return denied_response(request, exc, login_url=login_url)

        return wrapper

    return decorate


#: The methods a 405 answer lists when every unsafe method would be refused.
_KNOWN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class _Spec:
    """What :func:`action_required` was asked to do, resolved at the first request."""

    def __init__(
        self,
        action: str,
        model: type[models.Model] | None,
        queryset: models.QuerySet[Any] | None,
        lookup_field: str,
        url_kwarg: str | None,
        object_kwarg: str | None,
        view_action: Any,
        action_by_method: dict[str, str],
    ) -> None:
        self.action = action
        self.model = model
        self.queryset = queryset
        self.lookup_field = lookup_field
        self.url_kwarg = url_kwarg or lookup_field
        self.object_kwarg = object_kwarg
        self.view_action = view_action
        self.action_by_method = {k.upper(): v for k, v in action_by_method.items()}

    def action_for(self, method: str | None) -> str | None:
        """The action deciding ``method``, or None (405)."""
        return method_action(
            method, self.action, self.action_by_method, view_action=self.view_action
        )

    def allowed(self) -> list[str]:
        """The methods that map to an action (the ``Allow`` header of a 405)."""
        return [m for m in _KNOWN_METHODS if self.action_for(m) is not None]

    def _target(
        self, name: str
    ) -> tuple[Action, type[models.Model] | None, models.QuerySet[Any] | None]:
        act = registry.get(name)
        model = self.queryset.model if self.queryset is not None else _model_of(act, self.model)
        if model is None:
            return act, None, None
        queryset = self.queryset if self.queryset is not None else model._default_manager.all()
        return act, model, queryset.all()

    def _lookup(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, str]:
        if self.url_kwarg not in kwargs:
            raise ImproperlyConfigured(
                f"action_required({self.action!r}) looks the object up by the URL keyword "
                f"{self.url_kwarg!r}, which the URL pattern does not capture "
                f"(captured: {', '.join(sorted(kwargs)) or 'nothing'})"
            )
        rest = dict(kwargs)
        value = rest.pop(self.url_kwarg)
        return rest, value, self.lookup_field

    def _pass(self, rest: dict[str, Any], model: type[models.Model], obj: Any) -> dict[str, Any]:
        rest[self.object_kwarg or cast(str, model._meta.model_name)] = obj
        return rest

    def check(
        self, name: str, request: HttpRequest, actor: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        act, model, queryset = self._target(name)
        if model is None or queryset is None:
            engine.enforce(actor, act, request=request)
            return kwargs
        rest, value, field = self._lookup(kwargs)
        obj = find_object(
            actor, queryset, {field: value}, request=request, view_action=self.view_action
        )
        check_object(actor, act, obj, request=request, view_action=self.view_action)
        return self._pass(rest, model, obj)

    async def acheck(
        self, name: str, request: HttpRequest, actor: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        act, model, queryset = self._target(name)
        if model is None or queryset is None:
            await engine.aenforce(actor, act, request=request)
            return kwargs
        rest, value, field = self._lookup(kwargs)
        obj = await afind_object(
            actor, queryset, {field: value}, request=request, view_action=self.view_action
        )
        await acheck_object(actor, act, obj, request=request, view_action=self.view_action)
        return self._pass(rest, model, obj)


# --------------------------------------------------------------------------------------------
# Class-based views
# --------------------------------------------------------------------------------------------


class _AnswersDenials:
    """Answer a :class:`~clearance.Denied` raised while dispatching, sync or async."""

    login_url: str | None = None
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Dispatch as usual; a denial becomes :func:`denied_response`."""
        parent = super().dispatch  # type: ignore[misc]
        if getattr(self, "view_is_async", False):

            async def run() -> Any:
                try:
                    return await parent(request, *args, **kwargs)
                except Denied as exc:
                    return await _adenied_response(request, exc, login_url=self.login_url)

            return run()
        try:
            return parent(request, *args, **kwargs)
        except Denied as exc:
            return denied_response(request, exc, login_url=self.login_url)


class _MapsMethods(_AnswersDenials):
    """Refuse (405) an unsafe method no action decides, before any handler runs."""

    action: str | None = None
    action_by_method: dict[str, str] = {}
    view_action: Any = MODEL_VIEW_ACTION

    def action_for_method(self, method: str | None) -> str | None:
        """The action deciding ``method``, or None when the view refuses it (405)."""
        mapping = {k.upper(): v for k, v in self.action_by_method.items()}
        return method_action(method, self.action, mapping, view_action=self.view_action)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """405 for an unsafe method that maps to no action; otherwise dispatch as usual."""
        method = (request.method or "GET").upper()
        if method not in SAFE_METHODS and self.action_for_method(method) is None:
            allowed = [
                m
                for m in self._allowed_methods()  # type: ignore[attr-defined]
                if self.action_for_method(m) is not None
            ]
            response = _not_allowed(request, allowed)
            if getattr(self, "view_is_async", False):

                async def refused() -> HttpResponseNotAllowed:
                    return response

                return refused()
            return response
        return super().dispatch(request, *args, **kwargs)


class ActionRequiredMixin(_MapsMethods):
    """For detail, update and delete views: the object is checked when it is loaded.

    Set ``action`` (one action for every method) or ``action_by_method`` (e.g.
    ``{"GET": "invoices.view", "POST": "invoices.change"}``; methods not listed use
    ``action``). An unsafe method (POST, PUT, PATCH, DELETE) is never decided by a read action:
    unmapped, while ``action`` is the model's view action, it answers 405.
    ``view_action`` is the model's view action by default (an object the actor may not view
    answers 404); None turns hiding off. The object is looked up among those the actor may
    view, so a lookup that several objects match answers 404 as well. After ``get_object()``,
    ``self.decision`` is the allowed decision. A form's changes are checked too: the action is
    decided again on the instance as the form would save it, so an edit cannot move an object
    out of the actor's reach. Async views load the object with ``await self.aget_object()``.
    ``get_clearance_context()`` returns the values rules read as ``CTX.<name>``.
    """

    decision: Decision | None = None
    kwargs: dict[str, Any]

    def get_clearance_context(self) -> dict[str, Any]:
        """Values the rules read as ``CTX.<name>`` (and ``ctx.extra``); none by default."""
        return {}

    def get_action(self) -> str:
        """The action for this request's method."""
        method = (self.request.method or "GET").upper()
        action = self.action_for_method(method)
        if not action:
            raise ImproperlyConfigured(
                f"{type(self).__name__} names no clearance action for {method}: set `action` "
                "or `action_by_method`"
            )
        return action

    def _check(self, actor: Any, obj: Any) -> Decision:
        try:
            return check_object(
                actor,
                self.get_action(),
                obj,
                request=self.request,
                view_action=self.view_action,
                **self.get_clearance_context(),
            )
        except Http404:
            raise self._not_found(type(obj)) from None

    @staticmethod
    def _not_found(model: type[models.Model]) -> Http404:
        # The message SingleObjectMixin uses for a missing object: a hidden one reads the same.
        return Http404(f"No {model._meta.verbose_name} found matching the query")

    def get_object(self, queryset: models.QuerySet[Any] | None = None) -> Any:
        """Load the object among those the actor may view (404 otherwise), then decide."""
        if queryset is None:
            queryset = self.get_queryset()  # type: ignore[attr-defined]
        assert queryset is not None
        model = queryset.model
        scoped = scope_for_lookup(
            self.request.user,
            queryset,
            request=self.request,
            view_action=self.view_action,
            **self.get_clearance_context(),
        )
        try:
            obj = super().get_object(scoped)  # type: ignore[misc]
        except LOOKUP_ERRORS:
            raise self._not_found(model) from None
        self.decision = self._check(self.request.user, obj)
        return obj

    async def aget_object(self, queryset: models.QuerySet[Any] | None = None) -> Any:
        """Async: load the object named by the URL (``pk`` or slug), then decide the action."""
        if queryset is None:
            queryset = self.get_queryset()  # type: ignore[attr-defined]
        assert queryset is not None
        pk = self.kwargs.get(getattr(self, "pk_url_kwarg", "pk"))
        slug = self.kwargs.get(getattr(self, "slug_url_kwarg", "slug"))
        lookups: dict[str, Any] = {}
        if pk is not None:
            lookups["pk"] = pk
        if slug is not None and (pk is None or getattr(self, "query_pk_and_slug", False)):
            lookups[self.get_slug_field()] = slug  # type: ignore[attr-defined]
        if pk is None and slug is None:
            raise AttributeError(
                f"{type(self).__name__} must be called with an object pk or a slug in the URLconf"
            )
        actor = await self.request.auser()
        try:
            obj = await afind_object(
                actor,
                queryset,
                lookups,
                request=self.request,
                view_action=self.view_action,
                **self.get_clearance_context(),
            )
        except Http404:
            raise self._not_found(queryset.model) from None
        try:
            self.decision = await acheck_object(
                actor,
                self.get_action(),
                obj,
                request=self.request,
                view_action=self.view_action,
                **self.get_clearance_context(),
            )
        except Http404:
            raise self._not_found(type(obj)) from None
        return obj

    def form_valid(self, form: Any) -> Any:
        """Decide the action again on the instance as the form would save it, then save."""
        instance = getattr(form, "instance", None)
        if isinstance(instance, models.Model):
            decision = engine.authorize(
                self.request.user,
                self.get_action(),
                instance,
                request=self.request,
                **self.get_clearance_context(),
            )
            if not decision:
                raise exception_for(decision)
        return super().form_valid(form)  # type: ignore[misc]


class AuthorizedListMixin(_MapsMethods):
    """For list views: ``get_queryset()`` is :func:`~clearance.authorized`, one SQL query.

    ``action`` defaults to the model's view action. An actor who may not attempt the action at
    all (the permission gate) gets 403 with the reason (anonymous visitors: the login page)
    rather than an empty page. An unsafe method answers 405 unless ``action_by_method`` maps it
    (or ``action`` is not a read): a list scoped for reading is never the target of a write.
    Async views use ``await self.aget_queryset()``.
    """

    model: type[models.Model] | None

    def get_list_action(self, model: type[models.Model]) -> Action:
        """The action the list is scoped by (for this request's method)."""
        name = self.action_for_method(getattr(getattr(self, "request", None), "method", "GET"))
        if name is not None:
            return registry.get(name)
        act = resolve_view_action(model, MODEL_VIEW_ACTION)
        if act is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: {model._meta.label} has no view action; set `action`"
            )
        return act

    def get_queryset(self) -> models.QuerySet[Any]:
        """The parent's queryset, narrowed to what the actor may act on."""
        queryset: models.QuerySet[Any] = super().get_queryset()  # type: ignore[misc]
        act = self.get_list_action(queryset.model)
        actor = self.request.user
        denial = capability_denial(actor, act, request=self.request)
        if denial is not None:
            raise exception_for(denial)
        return engine.authorized(actor, act, queryset, request=self.request)

    async def aget_queryset(self) -> models.QuerySet[Any]:
        """Async twin of :meth:`get_queryset` (the queryset stays lazy)."""
        queryset: models.QuerySet[Any] = super().get_queryset()  # type: ignore[misc]
        act = self.get_list_action(queryset.model)
        actor = await self.request.auser()
        denial = await acapability_denial(actor, act, request=self.request)
        if denial is not None:
            raise exception_for(denial)
        return await engine.aauthorized(actor, act, queryset, request=self.request)
