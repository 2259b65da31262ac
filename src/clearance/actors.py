"""Actors that are not users: named jobs (management commands, task queues, cron)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .decisions import ActorRef

__all__ = ["SystemActor"]

_NAME = re.compile(r"^[A-Za-z0-9_][\w.:\-]*$")
_PERMISSION = re.compile(r"^[A-Za-z_][\w]*\.[\w][\w\-]*$")


class SystemActor:
    """A named job that acts without a user, with an explicit list of permissions.

    The gates run for it as for a user: gate 1 answers from ``permissions`` (and nothing else:
    no superuser powers, no groups, no authentication backends), policies and invariants are
    evaluated as usual, and the audit names the job (``job:<name>``). It is not a row, so a
    rule tied to the actor (``where(owner=ACTOR)``) matches nothing for it::

        nightly = SystemActor("close-month", permissions=["invoices.pay_invoice"])
        with perform(nightly, "invoices.pay", invoice) as locked:
            ...
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, name: str, permissions: Iterable[str] = ()) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"A system actor needs a name of letters, digits and . _ : -, got {name!r}"
            )
        if isinstance(permissions, str):
            raise TypeError(
                f"permissions must be a list of 'app_label.codename' strings, got the string "
                f"{permissions!r}"
            )
        perms = frozenset(permissions)
        bad = sorted(p for p in perms if not isinstance(p, str) or not _PERMISSION.match(p))
        if bad:
            raise ValueError(
                f"SystemActor({name!r}): permissions must look like 'app_label.codename', "
                f"got {bad!r}"
            )
        self.name = name
        self.permissions = perms

    # -- what the gates ask -------------------------------------------------------------------

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        """Whether the job holds ``perm``. Object-level questions go through the gates instead."""
        return obj is None and perm in self.permissions

    def has_perms(self, perm_list: Iterable[str], obj: Any = None) -> bool:
        """Whether the job holds every permission of ``perm_list``."""
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        """Whether the job holds any permission of ``app_label``."""
        return any(p.split(".", 1)[0] == app_label for p in self.permissions)

    def get_all_permissions(self, obj: Any = None) -> set[str]:
        """The job's permissions (none for an object)."""
        return set(self.permissions) if obj is None else set()

    def get_username(self) -> str:
        """The label the audit shows: ``job:<name>``."""
        return f"job:{self.name}"

    @property
    def actor_ref(self) -> ActorRef:
        """The audit's reference to this job."""
        return ActorRef(label=f"job:{self.name}", pk=None, kind="job")

    # -- value semantics ------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SystemActor):
            return NotImplemented
        return (self.name, self.permissions) == (other.name, other.permissions)

    def __hash__(self) -> int:
        return hash((SystemActor, self.name, self.permissions))

    def __str__(self) -> str:
        return f"job:{self.name}"

    def __repr__(self) -> str:
        return f"SystemActor({self.name!r}, permissions={sorted(self.permissions)!r})"
