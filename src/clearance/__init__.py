"""django-clearance: layered authorization for Django.

Permissions say what an actor may attempt, policies whether the attempt is valid now, and
invariants what must never happen, whoever asks. Every public name is importable from here.
"""

from __future__ import annotations

from .actions import ANYONE, Action, attach, model_invariant
from .actors import SystemActor
from .constraints import constraints_for, invariant_constraint
from .decisions import (
    Decision,
    Denied,
    InvariantViolation,
    Layer,
    NotFilterable,
    PermissionMissing,
    PolicyDenied,
    UnknownAction,
)
from .engine import (
    aauthorize,
    aauthorized,
    aenforce,
    aexplain,
    authorize,
    authorize_many,
    authorized,
    can_attempt,
    enforce,
    explain,
)
from .invariants import BulkInvariantViolation, GuardedQuerySet, acting
from .perform import aperform, perform, performs
from .rules import ACTOR, CTX, Context, clear_actor_cache, predicate, where
from .scopes import Scope

__version__ = "0.1.0.dev0"

__all__ = [
    "ACTOR",
    "ANYONE",
    "CTX",
    "Action",
    "BulkInvariantViolation",
    "Context",
    "Decision",
    "Denied",
    "GuardedQuerySet",
    "InvariantViolation",
    "Layer",
    "NotFilterable",
    "PermissionMissing",
    "PolicyDenied",
    "Scope",
    "SystemActor",
    "UnknownAction",
    "aauthorize",
    "aauthorized",
    "acting",
    "aenforce",
    "aexplain",
    "aperform",
    "attach",
    "authorize",
    "authorize_many",
    "authorized",
    "can_attempt",
    "clear_actor_cache",
    "constraints_for",
    "enforce",
    "explain",
    "invariant_constraint",
    "model_invariant",
    "perform",
    "performs",
    "predicate",
    "where",
]
