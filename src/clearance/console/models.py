"""The console's permission: ``clearance_console.view_console``.

``Console`` has no table (``managed = False``); it exists so that Django creates the permission
(and its content type) when ``migrate`` runs, like any model permission, to be granted to a
group (an auditors' group) or a user.
"""

from __future__ import annotations

from django.db import models

__all__ = ["CONSOLE_PERMISSION", "Console"]

#: The permission that opens the console (with the staff flag).
CONSOLE_PERMISSION = "clearance_console.view_console"


class Console(models.Model):
    """No rows, no table: the holder of the console's permission."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("view_console", "Can open the clearance console")]
        verbose_name = "clearance console"

    def __str__(self) -> str:
        return "clearance console"
