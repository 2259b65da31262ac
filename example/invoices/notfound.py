"""The demo's "not found" page, also while ``DEBUG`` is on.

With ``DEBUG = True`` Django answers an ``Http404`` with its technical page (the routes tried,
the exception's message) and ignores ``handler404``. A 404 is an authorization answer here: an
invoice of another tenant is "not found", exactly like a missing one, and the two must look the
same. Every view of the invoices app is wrapped by :func:`not_found_page` in its URLs, so its
``Http404`` answers the demo's page whatever ``DEBUG`` says; ``handler404`` (``demo/urls.py``)
renders the same page for a URL that matches no route while ``DEBUG`` is off.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Render the 404 page: the same for a missing invoice and for another tenant's.

    The project's ``handler404``. It shows nothing of the request nor of the exception's
    message, so nothing on it tells "not yours" from "does not exist".
    """
    return render(request, "invoices/404.html", status=404)


def not_found_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer the view's ``Http404`` with :func:`page_not_found` (sync or async view)."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                return await view(request, *args, **kwargs)
            except Http404 as exc:
                return await sync_to_async(page_not_found)(request, exc)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(request, *args, **kwargs)
        except Http404 as exc:
            return page_not_found(request, exc)

    return wrapper
