"""``ClearanceMiddleware``: the request behind every decision, and a recording scope per request.

For each request it

* gives the request an id, as ``request.clearance_request_id``: a new one, or, when
  ``CLEARANCE["AUDIT_REQUEST_ID_SET_BY_PROXY"]`` says a proxy sets it on every request, the
  value of ``CLEARANCE["AUDIT_REQUEST_ID_HEADER"]`` (``X-Request-ID``). A client's own header
  is never trusted;
* makes the request available to decisions that do not pass it
  (``clearance.request_context.current_request``), so their audit records carry the request
  id, method, path and remote address;
* opens a :func:`clearance.audit.recording` scope: the dedicated audit connection is kept for
  the request, and batched allowed decisions are written when the response is ready.

Sync and async capable. Place it after ``AuthenticationMiddleware``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .audit.recording import recording
from .audit.requests import REQUEST_ID_ATTRIBUTE, new_request_id, request_id_from_header
from .request_context import current_request

__all__ = ["ClearanceMiddleware"]


def _prepare(request: Any) -> None:
    if not getattr(request, REQUEST_ID_ATTRIBUTE, None):
        setattr(request, REQUEST_ID_ATTRIBUTE, request_id_from_header(request) or new_request_id())


class ClearanceMiddleware:
    """Request id, ``current_request`` and a recording scope around each request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Serve ``request`` with the request context set and a recording scope open."""
        if self._async:
            return self.__acall__(request)
        _prepare(request)
        token = current_request.set(request)
        try:
            with recording():
                return self.get_response(request)
        finally:
            current_request.reset(token)

    async def __acall__(self, request: Any) -> Any:
        """The async path of :meth:`__call__`."""
        _prepare(request)
        token = current_request.set(request)
        try:
            async with recording():
                get_response: Callable[[Any], Awaitable[Any]] = self.get_response
                return await get_response(request)
        finally:
            current_request.reset(token)
