"""`assistant finetune`: train a LoRA adapter with the project's QLoRA recipe (training/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from core.config import Settings
from training.finetune import LoraOptions

LORA = LoraOptions()  # the fine-tuning defaults shown by `assistant finetune --help`


@click.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the adapter (PEFT format, with README.md card).")
@click.option(
    "--data",
    "data_dir",
    default=Path("../shared/data"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Shared data folder: medquad/, pubmedqa/, tatqa/.",
)
@click.option("--medquad", default=300, show_default=True, type=click.IntRange(0), help="MedQuAD examples.")
@click.option("--pubmedqa", default=150, show_default=True, type=click.IntRange(0), help="PubMedQA examples (non-test PMIDs).")
@click.option("--tatqa", default=200, show_default=True, type=click.IntRange(0), help="TAT-QA examples (first 80% of dev reports).")
@click.option(
    "--tatqa-refusals",
    is_flag=True,
    help="One TAT-QA question in eight is shown a neighbouring report that lacks what it asks and must refuse (the shipped adapter: without).",
)
@click.option(
    "--tasks",
    is_flag=True,
    help="Train the task adapter instead: programs over table cells (TAT-QA) and standalone follow-ups (MedQuAD chains, MTRAG); training/tasks.py.",
)
@click.option("--programs", default=300, show_default=True, type=click.IntRange(0), help="With --tasks: TAT-QA questions with a program.")
@click.option("--nones", default=100, show_default=True, type=click.IntRange(0), help="With --tasks: TAT-QA span questions answered NONE.")
@click.option(
    "--rewrites", default=200, show_default=True, type=click.IntRange(0), help="With --tasks: MedQuAD follow-ups to rewrite (plus MTRAG's)."
)
@click.option("--base", default=None, help="Base model (default: ASSISTANT_GENERATOR__MODEL, the embedded SmolLM2).")
@click.option("--quantization", type=click.Choice(["4bit", "8bit", "none"]), default="4bit", show_default=True)
# Defaults come from LoraOptions: the shipped adapter's recipe.
@click.option("--rank", default=LORA.rank, show_default=True, type=click.IntRange(1, 512))
@click.option("--alpha", default=LORA.alpha, show_default=True, type=click.IntRange(1))
@click.option("--dropout", default=LORA.dropout, show_default=True, type=click.FloatRange(0, 0.9))
@click.option("--targets", default=",".join(LORA.target_modules), show_default=True, help="Comma-separated module names to adapt.")
@click.option("--epochs", default=LORA.epochs, show_default=True, type=click.FloatRange(0.01, 100))
@click.option("--lr", default=LORA.learning_rate, show_default=True, type=click.FloatRange(1e-7, 1))
@click.option("--batch-size", default=LORA.batch_size, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--max-tokens", default=LORA.max_tokens, show_default=True, type=click.IntRange(64, 32768), help="Longer examples are skipped."
)
@click.option("--seed", default=LORA.seed, show_default=True, type=int)
@click.pass_obj
def finetune(
    settings: Settings,
    out: Path,
    data_dir: Path,
    medquad: int,
    pubmedqa: int,
    tatqa: int,
    tatqa_refusals: bool,
    tasks: bool,
    programs: int,
    nones: int,
    rewrites: int,
    base,
    quantization,
    rank,
    alpha,
    dropout,
    targets,
    epochs,
    lr,
    batch_size,
    max_tokens,
    seed,
) -> None:
    """Train a QLoRA adapter on grounded, cited answers built from the shared data sets."""
    import platform
    import random
    from collections import Counter

    from assistant import compose
    from generator.local import load_model
    from training.finetune import TrainingExample, train_lora
    from training.trainset import build_examples

    options = LoraOptions(
        rank=rank,
        alpha=alpha,
        dropout=dropout,
        target_modules=tuple(t.strip() for t in targets.split(",") if t.strip()),
        epochs=epochs,
        learning_rate=lr,
        batch_size=batch_size,
        max_tokens=max_tokens,
        seed=seed,
    )
    click.echo(f"building examples from {data_dir} ...", err=True)
    if tasks:
        from training.tasks import program_examples, rewrite_examples

        tatqa_file = data_dir / "tatqa" / "tatqa_dataset_dev.json"
        if not tatqa_file.is_file():
            raise click.UsageError(f"{tatqa_file} not found: point --data at the shared data folder")
        chosen = program_examples(tatqa_file, programs, nones, seed) + rewrite_examples(data_dir, rewrites, seed)
        random.Random(seed).shuffle(chosen)
        counts = dict(Counter(e.id.split(":")[0] + (":" + e.id.split(":")[1] if e.id.startswith("rewrite:") else "") for e in chosen))
        title, description = (
            "Task adapter",
            (
                "Writes programs over table cells (compute/writer.py) and standalone forms of follow-up questions "
                "(retriever/followup.py) for the assistant's pipeline. Trained with `assistant finetune --tasks` on examples built by training/tasks.py."
            ),
        )
        data = "TAT-QA dev first 80% of reports (CC BY 4.0), MedQuAD (CC BY 4.0), MTRAG clapnq rewrites (Apache 2.0); see data/README.md"
    else:
        examples = build_examples(
            data_dir, "train", medquad=medquad, pubmedqa=pubmedqa, tatqa=tatqa, seed=seed, tatqa_refusals=tatqa_refusals
        )
        chosen = [TrainingExample(e.id, e.messages(), e.answer) for e in examples]
        counts = dict(Counter(e.source for e in examples))
        title, description = (
            "Grounded, cited answers",
            (
                "Answers questions from numbered passages only, cites them as [n], and says when they do not contain the answer. "
                "Trained with `assistant finetune` (QLoRA) on examples built by training/trainset.py."
            ),
        )
        data = "MedQuAD (CC BY 4.0), PubMedQA PQA-L non-test PMIDs (MIT), TAT-QA dev first 80% of reports (CC BY 4.0); see data/README.md"
    compose.quiet_model_loading()
    model_name = base or settings.generator.model
    model, tokenizer, display = load_model(model_name, quantization, settings.generator.cache_dir, settings.generator.device)
    click.echo(f"training {display} on {len(chosen)} examples {counts} ...", err=True)
    card = {
        "title": f"{title} for {display.split()[0]}",
        "description": description,
        "base_model": display.split()[0] if model_name == "embedded" else model_name,
        "quantization": quantization,
        "example_counts": counts,
        "data": data,
        "hardware": f"{os.cpu_count()} CPU cores ({platform.machine()})",
        "command": "assistant " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("assistant") else "assistant finetune",
        "example_ids": sorted(e.id for e in chosen),
    }
    result = train_lora(model, tokenizer, chosen, out, options, card=card)
    click.echo(
        f"saved {out}: {result.examples} examples, {result.steps} steps, loss {result.first_loss:.3f} -> {result.final_loss:.3f}, {result.wall_s / 60:.1f} min"
    )
    export_for_llamacpp(model_name, out, settings.generator.cache_dir)


def export_for_llamacpp(model_name: str, adapter: Path, cache_dir: Path) -> None:
    """The export step: a base read from GGUF gets the adapter merged into it, the file the llama.cpp engine
    serves (generator/export.py), so the next answer starts without it."""
    from core.errors import UserError
    from generator.export import merged_gguf
    from generator.model_files import model_gguf

    gguf = model_gguf(model_name)
    if gguf is None:
        return  # a transformers folder: served by the transformers engine, nothing to export
    try:
        exported = merged_gguf(gguf, adapter, cache_dir)
    except UserError as exc:
        click.echo(f"not exported for llama.cpp ({exc}); the transformers engine serves the adapter as it is", err=True)
        return
    click.echo(f"exported for the llama.cpp engine (the adapter merged into {gguf.name}): {exported}")
