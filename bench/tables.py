"""Small helpers the benchmarks share: Markdown tables, and the percentile of the evaluation suite
(eval/metrics.py), so a latency figure means the same in a benchmark and in an eval report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from eval.metrics import percentile

__all__ = ["fmt", "markdown_table", "percentile"]


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
