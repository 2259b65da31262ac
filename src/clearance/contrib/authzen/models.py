"""``Caller``: a service allowed to call the AuthZEN endpoint with a bearer token.

Only a SHA-256 hash of the token is stored; the token itself is shown once, when it is issued
(``manage.py authzen_caller issue <name>``, or :meth:`Caller.issue`). Tokens are 256 random
bits, so a plain hash is enough: there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db import models

__all__ = ["TOKEN_PREFIX", "Caller", "hash_token"]

#: Every issued token starts with this, so a leaked one is easy to recognise in logs and scans.
TOKEN_PREFIX = "azc_"


def hash_token(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Caller(models.Model):
    """A calling service (a gateway, a worker, a front end) and the subjects it may ask about.

    ``subject_types`` lists the AuthZEN subject types the caller may ask about (``["*"]`` for
    every declared type); an empty list allows none. A project can refine this per subject with
    ``CLEARANCE_AUTHZEN["MAY_ASK"]``.
    """

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    subject_types = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "clearance_authzen"
        ordering = ["name"]
        permissions = [
            ("ask_about_anyone", "Can ask the AuthZEN endpoint about any subject"),
        ]

    def __str__(self) -> str:
        return self.name

    def set_token(self) -> str:
        """Give the caller a new token (the old one stops working once saved); returns it."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        return token

    @classmethod
    def issue(cls, name: str, subject_types: list[str] | None = None) -> tuple[Caller, str]:
        """Create and save a caller; returns it with its token (stored only as a hash)."""
        caller = cls(name=name, subject_types=list(subject_types or []))
        token = caller.set_token()
        caller.save()
        return caller, token

    @classmethod
    def for_token(cls, token: str) -> Caller | None:
        """The active caller holding ``token``, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        found: Caller | None = cls._default_manager.filter(
            token_hash=hash_token(token), is_active=True
        ).first()
        return found

    def may_ask_about_type(self, subject_type: str) -> bool:
        """Whether this caller may ask about subjects of ``subject_type`` at all."""
        types: Any = self.subject_types
        return isinstance(types, list) and ("*" in types or subject_type in types)
