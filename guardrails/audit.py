"""The audit log: one JSON line per check (stage, blocked, events, time, and the API request's id), rotated by size.

Events carry rule ids, actions and spans, never matched values, and the checked text is not logged, so
the log never contains what a redaction removed.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.telemetry import request_id
from guardrails.events import GuardResult

# Context keys safe to log: identifiers and signals, never user text or passages.
LOGGED_CONTEXT = ("request_id", "collection", "domain", "relevance")


class AuditLog:
    def __init__(self, path: Path, *, max_bytes: int = 10 * 2**20, backups: int = 5, only_events: bool = True):
        """``only_events``: skip checks where no rule fired (the common case), keeping the log about decisions."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.only_events = only_events
        self._handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        self._lock = threading.Lock()

    def record(self, stage: str, result: GuardResult, *, elapsed_ms: float, context: Mapping[str, Any] | None = None) -> None:
        if self.only_events and not result.events:
            return
        entry = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "stage": stage,
            "blocked": result.blocked,
            "events": [{k: v for k, v in e.to_dict().items() if k != "message"} for e in result.events],
            "elapsed_ms": round(elapsed_ms, 3),
            **{k: (context or {})[k] for k in LOGGED_CONTEXT if k in (context or {})},
        }
        if "request_id" not in entry and (rid := request_id()) is not None:
            entry["request_id"] = rid  # the API request being served (core/telemetry.py), on this thread or its worker
        record = logging.LogRecord("guardrails.audit", logging.INFO, __file__, 0, json.dumps(entry, ensure_ascii=False), None, None)
        with self._lock:
            self._handler.emit(record)

    def close(self) -> None:
        self._handler.close()
