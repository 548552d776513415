"""Fine-tuning the answer model: the QLoRA recipe (``finetune.py``, transformers + peft + bitsandbytes on the
4-bit base) and the grounded, cited examples it is trained on (``trainset.py``).

A package of its own, above ``assistant``: the examples are built the way the product answers (MedQuAD
distractors come from BM25 over an ingested pool of answers, TAT-QA tables rendered as ingest renders them,
prompts as the generator builds them), so it uses ingest, the retriever and the generator together, which
the component packages must not do. ``assistant finetune`` (cli/) and bench/finetune_eval.py call it.
"""
