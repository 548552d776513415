"""JSON and JSON Lines, with the schemas of the shared data sets recognised.

- BEIR corpora (records with ``_id`` and ``text``): one document per record, BEIR id kept for evaluation.
- TAT-QA (a list of ``{table, paragraphs, questions}``): see ``tatqa``.
- Anything else: one document per JSONL line or list item (or one for a top-level object), the text taken
  from a ``text``/``content``/``body`` key, else the record flattened to ``key: value`` lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import LoadError
from core.types import LoadedDocument

from . import tatqa
from ._text import decode_text
from .options import LoadOptions

_TEXT_KEYS = ("text", "content", "body")
_TITLE_KEYS = ("title", "name")
_SCALARS = (str, int, float, bool, type(None))


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)  # true/false/null, as in the file
    return str(value)


def flatten(value: Any, prefix: str = "") -> list[str]:
    """``key: value`` lines for nested data; dotted keys for objects, ``[i]`` for lists of non-scalars."""
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list):
        if all(isinstance(v, _SCALARS) for v in value):
            joined = ", ".join(_scalar_text(v) for v in value if v not in (None, ""))
            return [f"{prefix}: {joined}" if prefix else joined] if joined else []
        return [line for i, v in enumerate(value) for line in flatten(v, f"{prefix}[{i}]")]
    if value is None or value == "":
        return []
    return [f"{prefix}: {_scalar_text(value)}" if prefix else _scalar_text(value)]


def _is_beir(record: Any) -> bool:
    return isinstance(record, dict) and "_id" in record and isinstance(record.get("text"), str)


def _beir_document(record: dict) -> LoadedDocument:
    beir_id = str(record["_id"])
    title = record.get("title") if isinstance(record.get("title"), str) else ""
    metadata: dict[str, Any] = {"beir_id": beir_id}
    extra = record.get("metadata")
    if isinstance(extra, dict):  # NFCorpus puts the source url here; useful in citations
        for key, value in extra.items():
            if isinstance(value, _SCALARS):
                metadata.setdefault(str(key), value)
    # Some BEIR corpora have title-only records; the title is then the only text there is.
    return LoadedDocument(title=title.strip() or beir_id, text=record["text"] or title, metadata=metadata)


def record_document(record: Any, default_title: str, position: dict[str, int]) -> LoadedDocument | None:
    if _is_beir(record):
        return _beir_document(record)
    if not isinstance(record, dict):
        text = "\n".join(flatten(record))
        return LoadedDocument(title=default_title, text=text, metadata=dict(position)) if text else None
    title_key = next((k for k in _TITLE_KEYS if isinstance(record.get(k), (str, int, float)) and str(record[k]).strip()), None)
    title = str(record[title_key]).strip() if title_key else default_title
    text_key = next((k for k in _TEXT_KEYS if record.get(k) not in (None, "")), None)
    if text_key is None:
        return LoadedDocument(title=title, text="\n".join(flatten(record)), metadata=dict(position))
    value = record[text_key]
    text = value if isinstance(value, str) else "\n".join(flatten(value))
    metadata = {str(k): v for k, v in record.items() if k not in (text_key, title_key) and isinstance(v, _SCALARS)}
    for key, number in position.items():
        metadata.setdefault(key, number)  # the record's own fields win over our position counter
    return LoadedDocument(title=title, text=text, metadata=metadata)


def _parse(text: str, line_offset: int = 0) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise LoadError(f"invalid JSON at line {err.lineno + line_offset}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise LoadError("JSON nested too deeply") from None


def load_json(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    value = _parse(decode_text(data, encoding_fallback=options.encoding_fallback))
    if tatqa.is_tatqa(value):
        return [doc for report in value for doc in tatqa.report_documents(report)]
    if isinstance(value, list):
        docs = [record_document(item, f"{path.stem} item {i}", {"item": i}) for i, item in enumerate(value, 1)]
        return [doc for doc in docs if doc is not None]
    doc = record_document(value, path.stem, {})
    return [doc] if doc is not None else []


def load_jsonl(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    text = decode_text(data, encoding_fallback=options.encoding_fallback)
    docs = []
    # split("\n"), not splitlines(): JSON strings may legally contain U+2028 and other line separators.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        doc = record_document(_parse(line, number - 1), f"{path.stem} line {number}", {"line": number})
        if doc is not None:
            docs.append(doc)
    return docs
