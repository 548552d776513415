"""Log lines as JSON (``ASSISTANT_LOG__FORMAT=json``): one object a line, with the request id of the request
that logged it (core/telemetry.py), for a log collector to parse.

``log_config`` is the logging configuration ``assistant serve`` gives uvicorn: None for the text format (uvicorn's
own, as always), else every logger (uvicorn's included) through one JSON handler on stderr. In JSON, uvicorn's
access log is replaced by the API's (``assistant.access``, written by api/app.py inside the request, so it
knows the request id and the duration): method, path (never the query, which may hold a question), status,
duration_ms.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from core.telemetry import REQUEST_ID

# Fields a record may carry as ``extra`` that the JSON line keeps (the access log's).
EXTRA_FIELDS = ("method", "path", "status", "duration_ms", "client")
ACCESS_LOGGER = "assistant.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid is not None:
            entry["request_id"] = rid
        for key in EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(fmt: str, level: str) -> dict[str, Any] | None:
    """uvicorn's ``log_config`` for the format: None (uvicorn's default) for text."""
    if fmt == "text":
        return None
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},  # ours replaces it
        },
        "root": {"handlers": ["json"], "level": level},
    }
