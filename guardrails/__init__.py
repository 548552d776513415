"""Rule-based guardrails for input, ingest and output, with an audit log."""
