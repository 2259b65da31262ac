"""The shared todo list of the AuthZEN interop scenario, and the specification's examples."""

import uuid

from django.conf import settings
from django.db import models


def _new_uuid() -> str:
    return str(uuid.uuid4())


class Profile(models.Model):
    """The identity a front end knows a user by (the interop's ``sub`` claim)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="todo_profile"
    )
    pid = models.CharField("identity", max_length=100, unique=True)

    def __str__(self) -> str:
        return self.pid


class Todo(models.Model):
    """One item of the shared todo list."""

    uuid = models.CharField(max_length=64, unique=True, default=_new_uuid)
    title = models.CharField(max_length=200)
    completed = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="todos",
    )

    class Meta:
        ordering = ["pk"]
        permissions = [
            ("update_any_todo", "Can update a todo that belongs to someone else"),
            ("delete_any_todo", "Can delete a todo that belongs to someone else"),
        ]

    def __str__(self) -> str:
        return self.title


class Document(models.Model):
    """A document its owner may edit and its readers may read (the spec's "document")."""

    name = models.CharField(max_length=100, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="todo_documents"
    )
    readers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="todo_readable_documents"
    )

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    """An account its holders may read and write (the spec's "account")."""

    number = models.CharField(max_length=30, unique=True)
    holders = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="todo_accounts")

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return self.number
