"""Who may open the console: active staff members who hold ``clearance_console.view_console``.

Anonymous visitors are sent to the login page; a signed-in user who is not staff, or who does
not hold the permission (superusers hold every permission), gets a 403. The console only reads,
so its views also refuse every method but GET and HEAD, and ask browsers and proxies not to keep
a copy of what they show. What a console user sees of the data is scoped by
:mod:`clearance.console.scope`.
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
from .models import CONSOLE_PERMISSION

__all__ = ["NEEDS_PERMISSION", "STAFF_ONLY", "console_view", "is_console_user"]

#: The message of the 403 a signed-in user who is not staff receives.
STAFF_ONLY = "The clearance console is for staff members only."

#: The message of the 403 a staff member without the console's permission receives.
NEEDS_PERMISSION = f"The clearance console needs the permission {CONSOLE_PERMISSION}."

View = Callable[..., HttpResponseBase]


def _is_staff(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "is_staff", False)
    )


def is_console_user(user: Any) -> bool:
    """True for an active staff member who holds ``clearance_console.view_console``."""
    return _is_staff(user) and user.has_perm(CONSOLE_PERMISSION) is True


def console_view(view: View) -> View:
    """Make ``view`` a console page: staff with the permission only, GET/HEAD, never cached.

    The page is exempt from :class:`~clearance.contrib.guard.UnguardedViewMiddleware`: access
    to the console is decided here, by the staff flag and the console's permission, not by a
    clearance action.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return redirect_to_login(request.get_full_path())
        if not _is_staff(user):
            raise PermissionDenied(STAFF_ONLY)
        if not is_console_user(user):
            raise PermissionDenied(NEEDS_PERMISSION)
        return view(request, *args, **kwargs)

    return guard_exempt(never_cache(require_safe(wrapped)))
