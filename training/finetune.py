"""QLoRA: train a LoRA adapter on a 4-bit base model, on CPU or GPU, and save it in the standard PEFT
format with a model card and the loss log.

Loss is computed on the answer tokens only (the prompt is masked), so the adapter learns to answer from
the passages, not to reproduce them. Examples are batched by similar length to waste little on padding.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.storage import make_shareable
from generator.base import Message

IGNORE = -100  # label value the loss skips


@dataclass(frozen=True)
class LoraOptions:
    """Defaults: the recipe of the shipped adapter (generator/adapters/smollm2-grounded). Adapting the MLP
    layers as well as attention, for 1.5 epochs, beat attention-only for one epoch on every held-out
    metric (docs/generation.md)."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    epochs: float = 1.5
    learning_rate: float = 3e-4
    batch_size: int = 4
    max_tokens: int = 640  # longer examples are skipped, never truncated (a cut answer teaches nothing)
    warmup_steps: int = 5
    seed: int = 0


@dataclass(frozen=True)
class TrainingExample:
    id: str
    messages: list[Message]  # system + user (passages and question)
    answer: str  # the assistant turn to learn


@dataclass
class TrainingResult:
    examples: int
    skipped_too_long: int
    steps: int
    tokens: int
    final_loss: float  # mean over the last 10 % of steps
    first_loss: float
    wall_s: float
    losses: list[float] = field(default_factory=list)


def tokenize(tokenizer, example: TrainingExample, max_tokens: int) -> tuple[list[int], list[int]] | None:
    """(input ids, labels) with the prompt masked, or None when the example is longer than ``max_tokens``."""
    prompt = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template([*example.messages, {"role": "assistant", "content": example.answer}], tokenize=True)
    if isinstance(prompt, dict):  # some tokenizers return a BatchEncoding
        prompt, full = prompt["input_ids"], full["input_ids"]
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently once an answer follows; cannot mask it")
    if len(full) > max_tokens:
        return None
    return list(full), [IGNORE] * len(prompt) + list(full[len(prompt) :])


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths (sorted within windows of 16 batches)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def train_lora(
    model,
    tokenizer,
    examples: Sequence[TrainingExample],
    out: Path,
    options: LoraOptions = LoraOptions(),
    *,
    progress: bool = True,
    card: dict | None = None,
) -> TrainingResult:
    """Train LoRA on ``model`` (already loaded, typically 4-bit) and save the adapter to ``out``.

    ``out`` is written to a temporary sibling folder and renamed into place, so an interrupted run never
    leaves a half-saved adapter where a good one was.
    """
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(options.seed)
    rng = random.Random(options.seed)
    encoded, skipped = [], 0
    for example in examples:
        pair = tokenize(tokenizer, example, options.max_tokens)
        if pair is None:
            skipped += 1
        else:
            encoded.append(pair)
    if not encoded:
        raise ValueError(f"no training example fits in {options.max_tokens} tokens")

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.learning_rate, weight_decay=0.0)
    epochs_batches: list[list[int]] = []
    for _ in range(math.ceil(options.epochs)):
        epochs_batches += length_batches([len(ids) for ids, _ in encoded], options.batch_size, rng)
    total_steps = max(1, round(len(epochs_batches) * options.epochs / math.ceil(options.epochs)))
    batches = epochs_batches[:total_steps]
    scheduler = get_linear_schedule_with_warmup(optimizer, min(options.warmup_steps, total_steps - 1), total_steps)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    losses: list[float] = []
    tokens = 0
    started = time.perf_counter()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        with open(work / "training_log.jsonl", "w") as log, tqdm(batches, desc="QLoRA", unit="step", disable=not progress) as bar:
            for step, batch in enumerate(bar, start=1):
                width = max(len(encoded[i][0]) for i in batch)
                ids = torch.tensor([encoded[i][0] + [pad] * (width - len(encoded[i][0])) for i in batch])
                labels = torch.tensor([encoded[i][1] + [IGNORE] * (width - len(encoded[i][1])) for i in batch])
                mask = torch.tensor([[1] * len(encoded[i][0]) + [0] * (width - len(encoded[i][0])) for i in batch])
                device = next(model.parameters()).device
                loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(loss.detach().item())
                tokens += int(mask.sum())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                log.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": round(losses[-1], 5),
                            "lr": scheduler.get_last_lr()[0],
                            "tokens": tokens,
                            "elapsed_s": round(time.perf_counter() - started, 1),
                        }
                    )
                    + "\n"
                )
                log.flush()
        wall = time.perf_counter() - started
        tail = losses[-max(1, len(losses) // 10) :]
        result = TrainingResult(len(encoded), skipped, len(batches), tokens, sum(tail) / len(tail), losses[0], wall, losses)
        model.save_pretrained(work)
        (work / "training.json").write_text(
            json.dumps(
                {"options": asdict(options), "result": {k: v for k, v in asdict(result).items() if k != "losses"}, **(card or {})}, indent=2
            )
            + "\n"
        )
        (work / "README.md").write_text(model_card(options, result, card or {}))
        make_shareable(work)
        if out.exists():
            shutil.rmtree(out)
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return result


def model_card(options: LoraOptions, result: TrainingResult, card: dict) -> str:
    counts = card.get("example_counts", {})
    lines = [
        "---",
        "library_name: peft",
        f"base_model: {card.get('base_model', 'unknown')}",
        "tags: [lora, qlora, grounded-qa, citations]",
        "---",
        "",
        f"# {card.get('title', 'LoRA adapter')}",
        "",
        card.get("description", ""),
        "",
        "## Training data",
        "",
        *(f"- {name}: {n} examples" for name, n in counts.items()),
        f"- used: {result.examples} (skipped as longer than {options.max_tokens} tokens: {result.skipped_too_long})",
        *([f"- data: {card['data']}"] if "data" in card else []),
        "",
        "## Training",
        "",
        f"- LoRA rank {options.rank}, alpha {options.alpha}, dropout {options.dropout}, on {', '.join(options.target_modules)}",
        f"- {options.epochs:g} epoch(s), batch {options.batch_size}, learning rate {options.learning_rate:g} (linear decay, {options.warmup_steps} warm-up steps)",
        f"- base loaded in {card.get('quantization', '4bit')}",
        f"- {result.steps} steps, {result.tokens:,} tokens, wall time {result.wall_s / 60:.1f} min{' on ' + card['hardware'] if 'hardware' in card else ''}",
        f"- loss {result.first_loss:.3f} (first step) -> {result.final_loss:.3f} (mean of the last 10 % of steps); per step in training_log.jsonl",
        *([f"- command: `{card['command']}`"] if "command" in card else []),
        "",
    ]
    return "\n".join(lines)
