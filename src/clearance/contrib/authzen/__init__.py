"""An OpenID AuthZEN Authorization API 1.0 endpoint answered by clearance's gates.

Add ``"clearance.contrib.authzen"`` to ``INSTALLED_APPS`` (after ``"clearance"``), include
``clearance.contrib.authzen.urls`` under a prefix, and declare in an ``authz.py`` which subject
types, resource types and action names the endpoint answers::

    from clearance.contrib import authzen

    authzen.subject("user", lookup="email")
    authzen.resource("invoice", Invoice, lookup="number", actions={"can_read": "invoices.view"})

See ``docs/how-to/authzen.md``.
"""

from __future__ import annotations

from .mapping import Creation, ResourceType, SubjectType, creation, mapping, resource, subject

__all__ = [
    "Creation",
    "ResourceType",
    "SubjectType",
    "creation",
    "mapping",
    "resource",
    "subject",
]
