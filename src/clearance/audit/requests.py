"""Request metadata recorded with a decision: request id, method, path, remote address, caller."""

from __future__ import annotations

import uuid
from typing import Any

from ..conf import clearance_settings

__all__ = [
    "CALLER_ATTRIBUTE",
    "REQUEST_ID_ATTRIBUTE",
    "RequestSnapshot",
    "new_request_id",
    "request_id_from_header",
    "request_metadata",
    "request_snapshot",
    "snapshot_metadata",
]

#: Attribute the middleware sets on the request it serves.
REQUEST_ID_ATTRIBUTE = "clearance_request_id"

#: Attribute naming the authenticated calling service (e.g. ``token:gateway``) when a request
#: asks on someone else's behalf, as the AuthZEN endpoint's callers do.
CALLER_ATTRIBUTE = "clearance_caller"

_MAX_ID = 128


def new_request_id() -> str:
    """A fresh request id (32 hexadecimal digits)."""
    return uuid.uuid4().hex


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def request_id_from_header(request: Any) -> str:
    """The request id sent in ``CLEARANCE["AUDIT_REQUEST_ID_HEADER"]``, or ``""``.

    Read only when ``CLEARANCE["AUDIT_REQUEST_ID_SET_BY_PROXY"]`` says a proxy in front of the
    project sets the header on every request: otherwise the value is the client's, and a client
    could file its requests under another request's id, so it is ignored (the middleware
    generates one). Only printable ASCII is kept, at most 128 characters, so a client cannot
    inject line breaks or control characters into the audit trail.
    """
    if clearance_settings.AUDIT_REQUEST_ID_SET_BY_PROXY is not True:
        return ""
    header = clearance_settings.AUDIT_REQUEST_ID_HEADER
    if not header or not isinstance(header, str):
        return ""  # a wrong type is reported by the check clearance.E504
    meta = getattr(request, "META", None) or {}
    raw = meta.get(_meta_key(header), "")
    if not isinstance(raw, str):
        return ""
    return "".join(ch for ch in raw if 32 < ord(ch) < 127)[:_MAX_ID]


#: What :func:`request_snapshot` keeps of a request: the raw request id, method, path, remote
#: address and caller, in that order.
RequestSnapshot = tuple[Any, Any, Any, Any, Any]


def request_snapshot(request: Any) -> RequestSnapshot | None:
    """What :func:`request_metadata` reads from ``request``, read now and converted later.

    The audit keeps this with a buffered decision instead of the request: the record written
    when the buffer is written holds the request as it was when the decision was made, whatever
    the view or a middleware changes on the request afterwards. :func:`snapshot_metadata`
    turns it into the metadata.
    """
    if request is None:
        return None
    meta = getattr(request, "META", None) or {}
    return (
        getattr(request, REQUEST_ID_ATTRIBUTE, None) or request_id_from_header(request),
        getattr(request, "method", ""),
        getattr(request, "path", ""),
        meta.get("REMOTE_ADDR", ""),
        getattr(request, CALLER_ATTRIBUTE, ""),
    )


def snapshot_metadata(snapshot: RequestSnapshot | None) -> dict[str, str]:
    """The metadata of a :func:`request_snapshot` (as :func:`request_metadata` gives it)."""
    if snapshot is None:
        return {}
    request_id, method, path, remote_addr, caller = snapshot
    return {
        "request_id": str(request_id or "")[:_MAX_ID],
        "method": str(method or "")[:16],
        "path": str(path or ""),
        "remote_addr": str(remote_addr or "")[:64],
        "caller": str(caller or "")[:150],
    }


def request_metadata(request: Any) -> dict[str, str]:
    """``request_id``, ``method``, ``path``, ``remote_addr`` and ``caller`` of ``request``.

    An empty dict when ``request`` is None; ``caller`` is ``""`` unless an integration set
    :data:`CALLER_ATTRIBUTE` on the request.
    """
    return snapshot_metadata(request_snapshot(request))
