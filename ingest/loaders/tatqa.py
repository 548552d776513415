"""TAT-QA annual-report contexts: one table document and one document per paragraph.

A TAT-QA table is a list of rows of strings as extracted from a PDF report; it is rendered and kept as cells
by ingest/loaders/grid.py (row labels and column headers on every line).
"""

from __future__ import annotations

from typing import Any

from core.types import LoadedDocument

from .grid import read_grid


def is_tatqa(data: Any) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(
            isinstance(item, dict)
            and isinstance(item.get("table"), dict)
            and isinstance(item["table"].get("table"), list)
            and isinstance(item.get("paragraphs"), list)
            for item in data
        )
    )


def report_documents(report: dict) -> list[LoadedDocument]:
    """The table and paragraphs of one report; questions and answers are evaluation data, not knowledge."""
    uid = str(report["table"].get("uid", ""))
    short = uid[:8]
    text, table = read_grid(report["table"]["table"])
    docs = [
        LoadedDocument(
            title=f"Report {short} table",
            text=text,
            metadata={"report_uid": uid, "kind": "table"},
            tables=(table,) if table and table.rows else (),
        )
    ]
    for paragraph in report["paragraphs"]:
        if not isinstance(paragraph, dict):
            continue
        order = paragraph.get("order")
        docs.append(
            LoadedDocument(
                title=f"Report {short} paragraph {order}",
                text=str(paragraph.get("text") or ""),
                metadata={"report_uid": uid, "kind": "paragraph", "paragraph_uid": paragraph.get("uid"), "order": order},
            )
        )
    return docs
