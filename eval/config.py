"""Evaluation configurations: Settings overrides from a YAML file, merged over the environment's Settings.

A configuration file holds a ``name``, an optional ``eval`` section (how the suite asks: ``k`` passages per
question, ``closed`` = restrict finance questions to their report) and any Settings sections::

    name: lora
    generator: {adapter: shipped}
    retrieval: {mode: hybrid}
    eval: {k: 5}

Sections merge key by key over the environment's Settings (a list or a plain value replaces the old one).
Unknown keys are errors (a typo would otherwise evaluate the defaults under a new name).

The configuration's fingerprint (``fingerprint``) covers what can change an answer or a guardrail decision:
the retrieval, index, generator and guardrail settings (not paths to caches, devices or secrets), the
``eval`` options and the runner's version; the runner adds the collections' manifests. Per-item results
are cached under its hash, so a changed setting re-runs the items and an unchanged one resumes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from core.config import Settings
from core.errors import UserError

# Bump when a cached record changes shape or meaning: old cache lines are then ignored.
RUNNER_VERSION = 4  # 2: records hold assistant/views.py's answer and hit shapes; 3: answerability and reason; 4: evidence
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class EvalOptions:
    k: int = 5  # passages retrieved for each answer (the CLI's and the API's default)
    closed: bool = True  # finance questions search only their own report (the items' `filters`)
    depth: int = 10  # hits ranked for the retrieval metrics (Recall@10, MRR@10, nDCG@10 need 10)


@dataclass(frozen=True)
class EvalConfig:
    name: str
    settings: Settings
    overrides: dict[str, Any] = field(default_factory=dict)  # as read from the file
    options: EvalOptions = EvalOptions()
    file: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        """What the results depend on (without the collections, which the runner adds)."""
        s = self.settings.model_dump(mode="json")
        generator = {k: v for k, v in s["generator"].items() if k not in ("device", "cache_dir", "openai_api_key")}
        guardrails = {k: v for k, v in s["guardrails"].items() if not k.startswith("audit")}
        return {
            "runner": RUNNER_VERSION,
            "retrieval": s["retrieval"],
            "index": s["index"],
            "generator": generator,
            "guardrails": guardrails,
            "eval": asdict(self.options),
        }

    def describe(self) -> dict[str, Any]:
        """The configuration as the report shows it."""
        return {
            "name": self.name,
            "file": self.file,
            "overrides": self.overrides,
            "eval": asdict(self.options),
            "settings": {k: v for k, v in self.fingerprint().items() if k not in ("runner", "eval")},
        }


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()[:length]


def _check_keys(overrides: Mapping[str, Any], model: type[BaseModel], where: str) -> None:
    for key, value in overrides.items():
        if key not in model.model_fields:
            known = ", ".join(sorted(model.model_fields))
            raise UserError(f"{where}: unknown setting {key!r} (known: {known})")
        annotation = model.model_fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not isinstance(value, Mapping):
                raise UserError(f"{where}: {key} must be a mapping of settings, got {value!r}")
            _check_keys(value, annotation, f"{where}: {key}")


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def _options(raw: Any, where: str) -> EvalOptions:
    if raw is None:
        return EvalOptions()
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: eval must be a mapping, e.g. {{k: 5, closed: true}}")
    unknown = set(raw) - set(EvalOptions.__dataclass_fields__)
    if unknown:
        raise UserError(f"{where}: unknown eval option(s) {', '.join(sorted(unknown))} (known: k, closed, depth)")
    options = EvalOptions(**raw)
    if not isinstance(options.k, int) or not 1 <= options.k <= 50:
        raise UserError(f"{where}: eval.k must be a whole number from 1 to 50, got {options.k!r}")
    if not isinstance(options.depth, int) or not 1 <= options.depth <= 100:
        raise UserError(f"{where}: eval.depth must be a whole number from 1 to 100, got {options.depth!r}")
    if not isinstance(options.closed, bool):
        raise UserError(f"{where}: eval.closed must be true or false, got {options.closed!r}")
    return options


def make_config(
    base: Settings,
    overrides: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    file: str | None = None,
    where: str = "configuration",
) -> EvalConfig:
    """A configuration from a mapping as a config file holds it (``name``, ``eval``, Settings sections)."""
    raw = dict(overrides or {})
    name = raw.pop("name", None) or name or DEFAULT_NAME
    options = _options(raw.pop("eval", None), where)
    _check_keys(raw, Settings, where)
    merged = _merge(base.model_dump(), raw)
    # Evaluation traffic is not user traffic: it stays out of the guardrails' audit log unless asked for.
    if "audit_log" not in (raw.get("guardrails") or {}):
        merged["guardrails"]["audit_log"] = None
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{where}: invalid settings: {problems}") from None
    return EvalConfig(name=str(name), settings=settings, overrides=dict(overrides or {}), options=options, file=file)


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; unreadable or invalid YAML is a UserError naming the file and ``what`` it is."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None


def load_config(path: Path | None, base: Settings) -> EvalConfig:
    """The configuration in ``path`` (YAML) merged over ``base``; without a path, ``base`` as "default".
    A file without a ``name`` is named after the file."""
    if path is None:
        return make_config(base)
    path = Path(path)
    data = read_yaml(path, "configuration")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UserError(f"{path}: expected a mapping of settings (e.g. `name: lora` and `generator: {{adapter: shipped}}`)")
    return make_config(base, data, name=path.stem, file=str(path), where=str(path))
