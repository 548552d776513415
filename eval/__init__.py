"""The offline evaluation suite."""
