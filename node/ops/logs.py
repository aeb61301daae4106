"""Logging for ``archipel serve`` and ``archipel worker``: text for people, JSON for machines.

``log_format = "json"`` writes one JSON object per line on stderr: ``time`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, the ``extra`` fields of the record (the access
log adds ``method``, ``path``, ``status``, ``duration_ms``, ``client``, ``scheme``) and
``exception`` when there is one. Uvicorn's own loggers go through the same handler; its
access log is replaced by ours (``node.access``, written by
``node.ops.web.MetricsMiddleware``).
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "LOG_FORMATS", "configure_logging", "logging_config"]

LOG_FORMATS = ("text", "json")

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping (also what uvicorn's ``log_config`` takes)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format: one of {', '.join(LOG_FORMATS)}")
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # propagate to the root handler instead of uvicorn's own handlers
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


def configure_logging(log_format: str = "text", level: str = "info") -> dict[str, Any]:
    config = logging_config(log_format, level)
    logging.config.dictConfig(config)
    return config
