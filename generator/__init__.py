"""Answer generation from retrieved passages (model loading, prompts with citations, streaming, fine-tuning)."""
