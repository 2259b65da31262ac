"""Who is calling the AuthZEN endpoint, and whom they may ask about.

``CLEARANCE_AUTHZEN["AUTHENTICATION"]`` lists authentication classes, tried in order. Each has
one method, ``authenticate(request) -> CallerIdentity | None``, and may raise
:class:`AuthenticationFailed` (credentials were sent but are wrong: answered 401 at once) or
:class:`~django.core.exceptions.PermissionDenied` (e.g. a failed CSRF check: 403).

- :class:`BearerTokenAuthentication`: ``Authorization: Bearer <token>`` of a
  :class:`~clearance.contrib.authzen.models.Caller`. A token is not sent by browsers on their
  own, so these requests need no CSRF protection.
- :class:`SessionAuthentication`: the signed-in Django user (``request.user``), for a front end
  of the same site. Django's CSRF check is enforced, as for any form post.
- :class:`DRFAuthentication`: Django REST framework's authentication classes (the project's
  ``DEFAULT_AUTHENTICATION_CLASSES``, or a subclass's ``authentication_classes``); the user they
  find is the caller. DRF's ``SessionAuthentication`` enforces CSRF itself.

The endpoint's views are CSRF-exempt so that token callers can post; cookie-based callers are
checked by :class:`SessionAuthentication` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.module_loading import import_string

from .conf import authzen_settings
from .models import Caller

__all__ = [
    "AuthenticationFailed",
    "BearerTokenAuthentication",
    "CallerIdentity",
    "DRFAuthentication",
    "SessionAuthentication",
    "authenticate",
    "may_ask",
]


class AuthenticationFailed(Exception):
    """Credentials were presented and are not valid (answered 401)."""


@dataclass(frozen=True)
class CallerIdentity:
    """An authenticated caller: a token :class:`Caller` or a signed-in user.

    ``label`` is what the audit trail records (``token:<name>`` or ``user:<username>``).
    """

    kind: str
    label: str
    caller: Caller | None = None
    user: Any = field(default=None, compare=False)


def _bearer(request: Any) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not isinstance(header, str) or not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class BearerTokenAuthentication:
    """``Authorization: Bearer <token>``, the token of an active :class:`Caller`."""

    #: Sent in ``WWW-Authenticate`` when a request is refused for lack of credentials.
    challenge = 'Bearer realm="authzen"'

    def authenticate(self, request: Any) -> CallerIdentity | None:
        """The caller the bearer token belongs to; None without a bearer token."""
        token = _bearer(request)
        if token is None:
            return None
        caller = Caller.for_token(token)
        if caller is None:
            raise AuthenticationFailed("The bearer token is not valid.")
        return CallerIdentity("token", f"token:{caller.name}", caller=caller)


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: Any, reason: str) -> Any:
        return reason


def _no_response(request: Any) -> Any:
    return None


class SessionAuthentication:
    """The signed-in Django user, with Django's CSRF check enforced."""

    challenge = 'Session realm="authzen"'

    def authenticate(self, request: Any) -> CallerIdentity | None:
        """The signed-in user; None when nobody is signed in."""
        user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        if not getattr(user, "is_active", True):
            return None
        check = _CsrfCheck(_no_response)
        check.process_request(request)
        reason = check.process_view(request, _no_response, (), {})
        if reason:
            raise PermissionDenied(f"CSRF check failed: {reason}")
        return CallerIdentity("user", f"user:{user.get_username()}", user=user)


class DRFAuthentication:
    """The user Django REST framework's authentication classes find (install the ``drf`` extra).

    Uses ``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``, or the ``authentication_classes``
    of a subclass. Wrong credentials answer 401, as DRF would.
    """

    #: The classes to use instead of DRF's defaults (a subclass sets them).
    authentication_classes: list[Any] | None = None
    challenge = ""

    def authenticate(self, request: Any) -> CallerIdentity | None:
        """The user DRF authenticates; None when no class recognised credentials."""
        from rest_framework import exceptions
        from rest_framework.request import Request
        from rest_framework.settings import api_settings

        classes: list[Any] = list(
            self.authentication_classes or api_settings.DEFAULT_AUTHENTICATION_CLASSES
        )
        authenticators = [cls() for cls in classes]
        wrapped = Request(request, authenticators=authenticators)
        try:
            user = wrapped.user
        except exceptions.PermissionDenied as exc:
            raise PermissionDenied(str(exc.detail)) from None
        except exceptions.APIException as exc:
            raise AuthenticationFailed(str(exc.detail)) from None
        if wrapped.successful_authenticator is None or not getattr(user, "is_authenticated", False):
            return None
        return CallerIdentity("user", f"user:{user.get_username()}", user=user)


def authentication_classes() -> list[Any]:
    """The configured authentication objects, in order."""
    return [import_string(path)() for path in authzen_settings.AUTHENTICATION]


def authenticate(request: Any) -> tuple[CallerIdentity | None, str]:
    """The caller of ``request`` (None if no class recognised one) and the challenge to send."""
    challenge = ""
    for backend in authentication_classes():
        challenge = challenge or str(getattr(backend, "challenge", ""))
        identity = backend.authenticate(request)
        if identity is not None:
            return identity, challenge
    return None, challenge


def may_ask(identity: CallerIdentity, subject_type: str, actor: Any) -> bool:
    """Whether ``identity`` may ask about the subject ``actor`` (of type ``subject_type``).

    With ``CLEARANCE_AUTHZEN["MAY_ASK"]`` set, that function decides. Otherwise a token caller
    may ask about the subject types its :attr:`Caller.subject_types` lists, and a signed-in user
    about themselves only, unless they hold ``clearance_authzen.ask_about_anyone``.
    """
    hook = authzen_settings.MAY_ASK
    if hook:
        return bool(import_string(hook)(identity, subject_type, actor))
    if identity.caller is not None:
        return identity.caller.may_ask_about_type(subject_type)
    user = identity.user
    if user is None:
        return False
    if user.has_perm("clearance_authzen.ask_about_anyone"):
        return True
    return (
        isinstance(actor, get_user_model())
        and actor.pk is not None
        and actor.pk == getattr(user, "pk", None)
    )
