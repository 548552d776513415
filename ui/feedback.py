"""Thumbs up / down on answers, with an optional comment: a small SQLite table, exportable as JSON lines."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    collection TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL DEFAULT '',
    sources TEXT NOT NULL DEFAULT '[]',  -- JSON: the cited passages' document ids and titles
    generator TEXT NOT NULL DEFAULT ''
)
"""


class FeedbackStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def add(self, *, collection: str, question: str, answer: dict[str, Any], rating: int, comment: str = "") -> int:
        """Store one rating (+1 or -1) of ``answer`` (the answer view); returns its id."""
        if rating not in (-1, 1):
            raise ValueError(f"rating must be 1 or -1, got {rating!r}")
        sources = [{"number": c["number"], "document_id": c["document_id"], "title": c["title"]} for c in answer.get("citations", [])]
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO feedback (created_at, collection, question, answer, rating, comment, sources, generator) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    collection,
                    question,
                    answer.get("answer", ""),
                    rating,
                    comment.strip(),
                    json.dumps(sources, ensure_ascii=False),
                    answer.get("generator", ""),
                ),
            )
            return int(cursor.lastrowid)

    def rows(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, created_at, collection, question, answer, rating, comment, sources, generator FROM feedback ORDER BY id"
            )
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        for row in rows:
            item = dict(zip(names, row))
            item["sources"] = json.loads(item["sources"])
            yield item

    def export_jsonl(self) -> str:
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows())

    def counts(self) -> dict[str, int]:
        with self._lock:
            up, down = self._db.execute("SELECT COALESCE(SUM(rating = 1), 0), COALESCE(SUM(rating = -1), 0) FROM feedback").fetchone()
        return {"up": int(up), "down": int(down)}

    def close(self) -> None:
        self._db.close()
