"""Nothing unguarded by accident: notice a view that answered without any authorization decision.

Opt in by adding the middleware (anywhere in ``MIDDLEWARE``)::

    MIDDLEWARE = [..., "clearance.contrib.guard.UnguardedViewMiddleware"]

Every decision the engine makes while a request is served is counted (``authorize``,
``enforce``, ``explain``, ``authorize_many``, ``authorized`` and the integrations, the template
tag included). When a view of the project answered successfully (status below 400) and no
decision was made, the middleware logs a warning on the ``clearance.guard`` logger, or, with
``CLEARANCE["GUARD_STRICT"] = True`` (meant for test suites), raises :class:`UnguardedView`, so
a view someone forgot to protect fails its tests.

On a detail route (a DRF route with ``detail=True``, or any URL pattern that captured
arguments, such as ``<int:pk>``), only a decision about an object counts: one on an object, or
``authorized()`` scoping the queryset the object comes from. The permission gate alone (what
``ClearancePermission.has_permission`` decides before a DRF view loads its object) says nothing
about the object a view then serves, so a custom ``@action`` that never calls ``get_object()``
is reported.

Not reported: requests no view answered (404 from the URL resolver), error responses, redirects
to the login page, an ``OPTIONS`` answer without a body (Django's own, which lists the allowed
methods), paths matching a regular expression in ``CLEARANCE["GUARD_EXEMPT"]`` (matched against
the path without its leading slash, like ``SECURE_REDIRECT_EXEMPT``) and views marked with
:func:`guard_exempt`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url

from ..conf import clearance_settings
from ..request_context import decisions_in_request

__all__ = ["UnguardedView", "UnguardedViewMiddleware", "guard_exempt"]

logger = logging.getLogger("clearance.guard")

_F = TypeVar("_F", bound=Callable[..., Any])

_VIEW_ATTR = "_clearance_guard_view"
_DETAIL_ATTR = "_clearance_guard_detail"


class UnguardedView(Exception):
    """A view answered a request without making any authorization decision (strict mode)."""


def guard_exempt(view: _F) -> _F:
    """Mark a view as needing no authorization decision (a public page, a health check)."""
    view.clearance_guard_exempt = True  # type: ignore[attr-defined]
    return view


@lru_cache(maxsize=16)
def _patterns(exempt: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in exempt)


def _view_name(view: Any) -> str:
    cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
    target = cls if cls is not None else view
    module = getattr(target, "__module__", "?")
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


def _is_detail_route(view: Any, view_kwargs: dict[str, Any]) -> bool:
    """A route that serves one object: DRF's ``detail=True``, or captured URL arguments."""
    initkwargs = getattr(view, "initkwargs", None)  # DRF's as_view() keeps them there
    if isinstance(initkwargs, dict) and "detail" in initkwargs:
        return bool(initkwargs["detail"])
    return bool(view_kwargs)


def _is_bare_options(request: HttpRequest, response: HttpResponseBase) -> bool:
    if request.method != "OPTIONS" or getattr(response, "streaming", False):
        return False
    return not getattr(response, "content", b"")


def _is_login_redirect(response: HttpResponseBase) -> bool:
    if response.status_code not in (301, 302, 303, 307, 308):
        return False
    location = urlsplit(response.get("Location", "")).path
    return bool(location) and location == urlsplit(resolve_url(settings.LOGIN_URL)).path


class UnguardedViewMiddleware:
    """Warn (or raise, in strict mode) when a view answered without any decision."""

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase]
        | Callable[[HttpRequest], Awaitable[HttpResponseBase]],
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        counter = [0, 0]
        token = decisions_in_request.set(counter)
        try:
            response = cast(HttpResponseBase, self.get_response(request))
        finally:
            decisions_in_request.reset(token)
        self._review(request, response, counter)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        counter = [0, 0]
        token = decisions_in_request.set(counter)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            decisions_in_request.reset(token)
        self._review(request, response, counter)
        return response  # type: ignore[no-any-return]

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> None:
        """Remember which view is about to answer, and whether it serves one object."""
        setattr(request, _VIEW_ATTR, view_func)
        setattr(request, _DETAIL_ATTR, _is_detail_route(view_func, view_kwargs))

    def _review(self, request: HttpRequest, response: HttpResponseBase, counter: list[int]) -> None:
        view = getattr(request, _VIEW_ATTR, None)
        decisions, about_objects = counter
        detail = bool(getattr(request, _DETAIL_ATTR, False))
        guarded = about_objects if detail else decisions
        if view is None or guarded or response.status_code >= 400:
            return
        if getattr(view, "clearance_guard_exempt", False) or _is_login_redirect(response):
            return
        if _is_bare_options(request, response):
            return
        path = request.path_info.lstrip("/")
        if any(p.search(path) for p in _patterns(tuple(clearance_settings.GUARD_EXEMPT))):
            return
        missing = (
            f"without any decision about an object ({decisions} without one, such as the "
            "permission gate alone)"
            if detail and decisions
            else "without any authorization decision"
        )
        message = (
            f"{request.method} {request.path} was answered by {_view_name(view)} "
            f"(status {response.status_code}) {missing}. Protect the "
            "view with clearance (enforce, authorize, authorized, the view decorator or mixins), "
            "or mark it @guard_exempt if it is public."
        )
        if clearance_settings.GUARD_STRICT:
            raise UnguardedView(message)
        logger.warning(message)
