"""A model whose rows say when they last changed (``auto_now``), for the replay tests."""

from __future__ import annotations

from django.db import models


class Ticket(models.Model):
    """Something acted on, whose ``updated_at`` moves on every save."""

    title = models.CharField(max_length=100, default="")
    state = models.CharField(max_length=20, default="open")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("close_ticket", "Can close tickets")]

    def __str__(self) -> str:
        return self.title or f"Ticket {self.pk}"
