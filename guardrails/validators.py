"""Named validators a rule can use (``kind: validator``): ``validator(text, context) -> spans`` (a span
of None means the whole text)."""

from __future__ import annotations

from guardrails import output_checks, pii

VALIDATORS = {**pii.VALIDATORS, **output_checks.VALIDATORS}
