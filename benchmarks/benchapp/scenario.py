"""Helpers that create the scenario's users, groups and tenants (call after ``env.setup()``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission, User

from .models import Membership, Tenant


def approvers() -> Group:
    """The group that holds ``bench.approve_invoice``."""
    group, created = Group.objects.get_or_create(name="approvers")
    if created:
        group.permissions.add(
            Permission.objects.get(codename="approve_invoice", content_type__app_label="bench")
        )
    return group


def make_user(
    username: str,
    *,
    approver: bool = True,
    tenants: Iterable[Tenant] = (),
    **fields: Any,
) -> User:
    """A user (in the approvers group unless ``approver=False``), member of ``tenants``."""
    user = User.objects.create_user(username=username, password="x", **fields)
    if approver:
        user.groups.add(approvers())
    Membership.objects.bulk_create(Membership(user=user, tenant=t) for t in tenants)
    return fresh(user)


def fresh(user: User) -> User:
    """A new object for the same user row, with no cache: as the next request would load it.

    Built from the row's values without a query, so it can be prepared outside timed code.
    """
    fields = [f.attname for f in User._meta.concrete_fields]
    return User.from_db("default", fields, [getattr(user, f) for f in fields])


def make_tenant(name: str) -> Tenant:
    """A tenant."""
    return Tenant.objects.create(name=name)
