"""``JsonFormatter``: one JSON object per log line, for shipping ``clearance.audit`` records.

Use it in ``LOGGING``::

    "formatters": {"json": {"()": "clearance.audit.logging.JsonFormatter"}},
    "handlers": {"audit": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"clearance.audit": {"handlers": ["audit"], "level": "INFO"}},

Each line holds ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, and every
attribute a caller added with ``extra`` (for ``clearance.audit``: every Decision field and the
request metadata, see :func:`clearance.audit.sinks.log_fields`), plus ``exception`` when the
record carries one. Values JSON cannot represent are written as strings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

__all__ = ["JsonFormatter"]

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Format a log record as one line of JSON (see the module documentation)."""

    def __init__(self, *args: Any, sort_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sort_keys = sort_keys

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        payload: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, tz=dt.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False, sort_keys=self.sort_keys)
