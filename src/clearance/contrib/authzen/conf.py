"""``settings.CLEARANCE_AUTHZEN``: the AuthZEN endpoint's settings, with documented defaults.

Every key is optional; an unknown key or a value of the wrong kind is reported by the system
checks (``clearance_authzen.E1xx``) and refused when the endpoint serves a request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["DEFAULTS", "authzen_settings", "problems"]

#: Every setting, with its default.
DEFAULTS: dict[str, Any] = {
    # How callers authenticate: dotted paths of authentication classes, tried in order.
    "AUTHENTICATION": ["clearance.contrib.authzen.auth.BearerTokenAuthentication"],
    # Which callers may ask about which subjects: a dotted path to a function
    # (caller, subject_type, actor) -> bool; None keeps the default rule (see the docs).
    "MAY_ASK": None,
    # The most evaluations one Access Evaluations request may carry.
    "MAX_EVALUATIONS": 100,
    # The largest request body accepted, in bytes.
    "MAX_BODY_BYTES": 256 * 1024,
    # Search results per page when the request names no page.limit, and the most it may ask.
    "PAGE_SIZE": 50,
    "MAX_PAGE_SIZE": 1000,
    # The PDP identifier published in the metadata (an https URL without query or fragment);
    # None derives it from the request and the URL prefix the project mounted the app under.
    "POLICY_DECISION_POINT": None,
}

_POSITIVE = ("MAX_EVALUATIONS", "MAX_BODY_BYTES", "PAGE_SIZE", "MAX_PAGE_SIZE")


def _user_settings() -> Any:
    return getattr(django_settings, "CLEARANCE_AUTHZEN", {})


def problems() -> list[str]:
    """What is wrong with ``settings.CLEARANCE_AUTHZEN`` (an empty list when nothing is)."""
    user = _user_settings()
    if user is None:
        user = {}
    if not isinstance(user, dict):
        return [f"settings.CLEARANCE_AUTHZEN must be a dict, got {type(user).__name__}"]
    found = []
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        found.append(
            f"Unknown CLEARANCE_AUTHZEN setting(s): {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(DEFAULTS))}"
        )
    merged = {**DEFAULTS, **user}
    for key in _POSITIVE:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            found.append(f"CLEARANCE_AUTHZEN[{key!r}] must be a whole number of at least 1")
    sizes = (merged["PAGE_SIZE"], merged["MAX_PAGE_SIZE"])
    if all(isinstance(size, int) for size in sizes) and sizes[0] > sizes[1]:
        found.append("CLEARANCE_AUTHZEN['PAGE_SIZE'] exceeds MAX_PAGE_SIZE")
    auth = merged["AUTHENTICATION"]
    if (
        isinstance(auth, str)
        or not isinstance(auth, (list, tuple))
        or not auth
        or not all(isinstance(path, str) for path in auth)
    ):
        found.append("CLEARANCE_AUTHZEN['AUTHENTICATION'] must be a non-empty list of dotted paths")
    may_ask = merged["MAY_ASK"]
    if may_ask is not None and not isinstance(may_ask, str):
        found.append("CLEARANCE_AUTHZEN['MAY_ASK'] must be a dotted path or None")
    pdp = merged["POLICY_DECISION_POINT"]
    if pdp is not None and (
        not isinstance(pdp, str) or not pdp.startswith("https://") or "?" in pdp or "#" in pdp
    ):
        found.append(
            "CLEARANCE_AUTHZEN['POLICY_DECISION_POINT'] must be an https URL without query or "
            "fragment, or None"
        )
    return found


class _Settings:
    """Attribute access to the merged settings (read on each access: tests override them)."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"No CLEARANCE_AUTHZEN setting {name!r}")
        found = problems()
        if found:
            raise ImproperlyConfigured("; ".join(found))
        user = _user_settings() or {}
        return user.get(name, DEFAULTS[name])


authzen_settings = _Settings()
