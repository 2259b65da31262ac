"""The scenario's people and roles: five users of the "Rick & Morty" cartoon.

``seed()`` creates the role groups and the users (idempotent); ``manage.py seed_todos`` calls it.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from .models import Profile

#: Each role's permissions (a role is a group of the same name).
ROLES = {
    "viewer": ["auth.view_user", "todos.view_todo"],
    "editor": [
        "auth.view_user",
        "todos.view_todo",
        "todos.add_todo",
        "todos.change_todo",
        "todos.delete_todo",
    ],
    "admin": [
        "auth.view_user",
        "todos.view_todo",
        "todos.add_todo",
        "todos.change_todo",
        "todos.delete_todo",
        "todos.delete_any_todo",
    ],
    "evil_genius": [
        "auth.view_user",
        "todos.view_todo",
        "todos.add_todo",
        "todos.change_todo",
        "todos.delete_todo",
        "todos.update_any_todo",
    ],
}

#: (email, identity the front end sends, name, roles), as the scenario publishes them.
USERS = [
    (
        "rick@the-citadel.com",
        "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "Rick Sanchez",
        ["admin", "evil_genius"],
    ),
    (
        "morty@the-citadel.com",
        "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "Morty Smith",
        ["editor"],
    ),
    (
        "summer@the-smiths.com",
        "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "Summer Smith",
        ["editor"],
    ),
    (
        "beth@the-smiths.com",
        "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "Beth Smith",
        ["viewer"],
    ),
    (
        "jerry@the-smiths.com",
        "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs",
        "Jerry Smith",
        ["viewer"],
    ),
]


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def seed() -> list:
    """Create the role groups and the scenario's users; returns the users."""
    groups = {}
    for role, permissions in ROLES.items():
        group, _ = Group.objects.get_or_create(name=f"todo {role}")
        group.permissions.set([_permission(p) for p in permissions])
        groups[role] = group
    users = []
    for email, pid, name, roles in USERS:
        first, last = name.split(" ", 1)
        user, _ = get_user_model().objects.get_or_create(
            username=email.split("@")[0],
            defaults={"email": email, "first_name": first, "last_name": last},
        )
        user.set_unusable_password()
        user.save()
        user.groups.set([groups[role] for role in roles])
        Profile.objects.update_or_create(user=user, defaults={"pid": pid})
        users.append(user)
    return users
