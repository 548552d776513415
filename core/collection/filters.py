"""Metadata filters: what a filter is, read from ``KEY=VALUE`` text (the command line, the HTTP API) and
turned into SQL over a collection's chunks and documents.

Keys: ``source`` (the file's absolute path), ``document_id``, or any metadata key; values: a scalar
(equality) or a list (any of). Conditions are ANDed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.errors import UserError

Filters = dict[str, Any]


def parse_filters(pairs: Iterable[str]) -> Filters | None:
    """``KEY=VALUE`` strings -> filters; a repeated key means any of its values. A ``source`` is resolved
    to an absolute path, as ingest stores it. None when there are no pairs."""
    filters: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad filter {pair!r}: expected KEY=VALUE, e.g. kind=table")
        key = key.strip()
        if key == "source":
            value = str(Path(value).resolve())
        filters.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in filters.items()} or None


def filter_clause(filters: Filters | None) -> tuple[str, list[Any]]:
    """SQL over chunks ``c`` and documents ``d`` for ``filters``, with its parameters; ("", []) for none."""
    if not filters:
        return "", []
    clauses, params = [], []
    for key, value in filters.items():
        if key == "source":
            column = "d.source"
        elif key == "document_id":
            column = "d.id"
        else:
            if not key or not all(ch.isalnum() or ch in "_-." for ch in key):
                raise UserError(f"invalid filter key {key!r}: use letters, digits, '_', '-' and '.'")
            column = "json_extract(d.metadata, ?)"
            params.append(f'$."{key}"')
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        if not values:
            raise UserError(f"filter {key!r} has an empty list of values")
        for v in values:
            if not isinstance(v, (str, int, float, bool)) or v is None:
                raise UserError(f"filter {key!r}: values must be strings, numbers or booleans, got {v!r}")
        clauses.append(f"{column} IN ({','.join('?' * len(values))})")
        params += values
    return " AND ".join(clauses), params
