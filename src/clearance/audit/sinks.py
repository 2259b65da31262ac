"""Built-in audit sinks."""

from __future__ import annotations

import logging
from typing import Any

from ..decisions import Decision

__all__ = ["LoggingSink"]

audit_logger = logging.getLogger("clearance.audit")


class LoggingSink:
    """One structured record per decision on the ``clearance.audit`` logger.

    Allowed decisions log at INFO, denials at WARNING; every Decision field is in ``extra``
    under ``clearance`` (a JSON-friendly dict).
    """

    def record(self, decision: Decision, request: Any) -> None:
        """Log ``decision``."""
        level = logging.INFO if decision.allowed else logging.WARNING
        audit_logger.log(level, "%s", decision, extra={"clearance": decision.as_dict()})
