"""Who may open the console: active staff members, and nobody else.

Anonymous visitors are sent to the login page; a signed-in user who is not staff gets a 403.
The console only reads, so its views also refuse every method but GET and HEAD, and ask
browsers and proxies not to keep a copy of what they show.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..contrib.guard import guard_exempt

__all__ = ["STAFF_ONLY", "console_view", "is_console_user"]

#: The message of the 403 a signed-in user who is not staff receives.
STAFF_ONLY = "The clearance console is for staff members only."

View = Callable[..., HttpResponseBase]


def is_console_user(user: Any) -> bool:
    """True for an active staff member."""
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


def console_view(view: View) -> View:
    """Make ``view`` a console page: staff only, GET/HEAD only, never cached.

    The page is exempt from :class:`~clearance.contrib.guard.UnguardedViewMiddleware`: access
    to the console is decided here, by the staff flag, not by a clearance action.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return redirect_to_login(request.get_full_path())
        if not is_console_user(user):
            raise PermissionDenied(STAFF_ONLY)
        return view(request, *args, **kwargs)

    return guard_exempt(never_cache(require_safe(wrapped)))
