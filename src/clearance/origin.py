"""Where something was declared: the ``path:line`` that actions, rules and scopes keep for
the messages of the system checks and the snapshot."""

from __future__ import annotations

import sys

__all__ = ["declared_at"]

_PACKAGE = __name__.rsplit(".", 1)[0]


def declared_at() -> str:
    """Where the caller outside this package declared something: ``path:line``.

    Frames of this package are skipped, except those of :mod:`clearance.testing`, whose
    helpers declare on a test's behalf."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_PACKAGE + "."):
        if frame.f_globals.get("__name__", "").startswith(_PACKAGE + ".testing"):
            break
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"
