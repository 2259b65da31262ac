"""``ClearanceBackend``: ``user.has_perm(perm, obj)`` answered through the three gates.

Add it to ``AUTHENTICATION_BACKENDS`` after Django's ``ModelBackend``::

    AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "clearance.backends.ClearanceBackend",
    ]

With an object, ``user.has_perm("invoices.approve_invoice", invoice)`` is decided by every
action that names that permission for the object's model (``invoices.approve``): it is True
only when at least one such action exists and **all** of them allow. The denial is final: the
backend raises ``PermissionDenied``, which Django's ``has_perm`` turns into False without asking
the backends after it, so no object-permission backend further down can grant what a policy or
an invariant refuses. A permission no action names for that model gets no answer here (False;
later backends may still answer).

Without an object, the backend answers nothing (False), so ``ModelBackend`` stays in charge of
``user.has_perm("invoices.approve_invoice")`` exactly as before. It authenticates nobody and
lists no permissions (``get_all_permissions`` is Django's answer, unchanged).

**Superusers.** Django's ``User.has_perm`` returns True for an active superuser before asking
any backend, so ``has_perm`` can never bind a superuser to policies or invariants. Code that must
bind everyone calls the engine (``clearance.authorize``), as every clearance integration does.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.backends import BaseBackend
from django.db import models

from . import engine
from .actions import Action, registry
from .decisions import Decision, exception_for

__all__ = ["ClearanceBackend", "actions_naming"]


def actions_naming(perm: str, model: type[models.Model]) -> list[Action]:
    """Every action on ``model`` (or its concrete model) whose permission is ``perm``."""
    return [a for a in registry.actions_for(model) if a.permission == perm]


class ClearanceBackend(BaseBackend):
    """Object permissions from clearance actions; no answer without an object."""

    def _decisions(self, user_obj: Any, perm: str, obj: Any) -> list[Decision] | None:
        if obj is None or not isinstance(obj, models.Model) or not isinstance(perm, str):
            return None
        acts = actions_naming(perm, type(obj))
        if not acts:
            return None
        decisions = []
        for act in acts:
            decision = engine.authorize(user_obj, act, obj)
            decisions.append(decision)
            if not decision:
                break
        return decisions

    @staticmethod
    def _answer(decisions: list[Decision] | None) -> bool:
        if decisions is None:
            return False
        for decision in decisions:
            if not decision:
                # Final: Django's has_perm stops here and answers False.
                raise exception_for(decision)
        return True

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        """True when every action naming ``perm`` for ``obj``'s model allows; else denied."""
        return self._answer(self._decisions(user_obj, perm, obj))

    async def ahas_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        """Async twin of :meth:`has_perm`, so Django's async permission path is not skipped."""
        if obj is None:
            return False
        decisions = await sync_to_async(self._decisions)(user_obj, perm, obj)
        return self._answer(decisions)
