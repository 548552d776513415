"""Rule packs: declarative YAML files of rules, validated when loaded.

A pack is a file with a ``name``, an optional ``description`` and a list of ``rules``. Each rule:

    - id: injection.override          # unique; letters, digits, dots, dashes, underscores
      stage: input                    # input | ingest | output
      kind: pattern                   # pattern | keywords | validator | threshold | classifier
      patterns: ['\\bignore\\b.{0,40}\\binstructions\\b']   # pattern: regexes, on the normalised text
      keywords: [...]                 # keywords: phrases, matched as whole words on the normalised text
      validator: pii.email            # validator: a named check (guardrails/validators.py lists them)
      signal: relevance               # threshold: a number the caller passes in the context ...
      below: 0.337                    # ... that fires the rule when it is under this value
      model: injection                # classifier: a model in guardrails/models/ (or a JSON path) ...
      above: 0.8                      # ... that fires the rule when its score on the normalised text is at least this
      action: block                   # block | redact | rewrite | annotate | disclaimer
      category: injection             # what the rule guards against (reported per rail)
      message: "I can't follow ..."   # block: the fixed reply; annotate: the note; disclaimer: the text
      replacement: "[EMAIL]"          # redact / rewrite: what replaces each match

Built-in packs live in guardrails/packs/ (``common``, ``medical``, ``finance``); any other name is read as a
path to a YAML file. A mistake names the file, the rule id and what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import UserError
from guardrails.events import Action, Stage

BUILTIN = Path(__file__).resolve().parent / "packs"


class PackError(UserError):
    pass


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    stage: Stage
    kind: Literal["pattern", "keywords", "validator", "threshold", "classifier"]
    action: Action
    category: str = Field(min_length=1)
    message: str = ""
    patterns: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    validator: str | None = None
    signal: str | None = None
    below: float | None = None
    model: str | None = None
    above: float | None = Field(None, ge=0.0, le=1.0)
    replacement: str | None = None
    # Optional: the rule fires only when the normalised text also matches one of these (e.g. a dose word
    # together with "should I"): keeps broad patterns precise without one unreadable regex.
    requires: tuple[str, ...] = ()
    # Optional: the rule does not fire when the normalised text matches one of these (an exception written
    # apart from the patterns, e.g. a professional role in a domain question for the role-play rule).
    unless: tuple[str, ...] = ()

    @field_validator("patterns", "requires", "unless")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {exc}") from None
        return patterns

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Rule:
        from guardrails.validators import VALIDATORS

        needs = {
            "pattern": self.patterns,
            "keywords": self.keywords,
            "validator": self.validator,
            "threshold": self.signal is not None and self.below is not None,
            "classifier": self.model is not None and self.above is not None,
        }
        if not needs[self.kind]:
            what = {
                "pattern": "a non-empty 'patterns' list",
                "keywords": "a non-empty 'keywords' list",
                "validator": "a 'validator' name",
                "threshold": "'signal' and 'below'",
                "classifier": "'model' and 'above'",
            }[self.kind]
            raise ValueError(f"kind {self.kind!r} needs {what}")
        if self.kind == "validator" and self.validator not in VALIDATORS:
            raise ValueError(f"unknown validator {self.validator!r}; known: {', '.join(sorted(VALIDATORS))}")
        if self.action in ("block", "annotate", "disclaimer") and not self.message.strip():
            raise ValueError(f"action {self.action!r} needs a 'message'")
        if self.action == "rewrite" and self.replacement is None:
            raise ValueError("action 'rewrite' needs a 'replacement'")
        if self.kind in ("threshold", "classifier") and self.action in ("redact", "rewrite"):
            raise ValueError(f"a {self.kind} rule has no span to redact or rewrite")
        if self.kind == "classifier":
            from guardrails.classifier import load_classifier

            try:
                load_classifier(self.model)  # a missing or broken model file is a pack error, named here
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return self


class Pack(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    rules: tuple[Rule, ...]


def _explain(error: ValidationError, raw: dict) -> str:
    problems = []
    for item in error.errors():
        loc = list(item["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = raw.get("rules") or []
            rule = rules[loc[1]] if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else {}
            where = f"rule {rule.get('id', f'#{loc[1] + 1}')!r}"
            loc = loc[2:]
        field = ".".join(str(p) for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}{': ' if where and field else ''}{field}{': ' if where or field else ''}{message}")
    return "; ".join(problems)


def load_pack(name_or_path: str | Path) -> Pack:
    path = BUILTIN / f"{name_or_path}.yaml" if (BUILTIN / f"{name_or_path}.yaml").exists() else Path(name_or_path)
    if not path.exists():
        builtin = ", ".join(sorted(p.stem for p in BUILTIN.glob("*.yaml")))
        raise PackError(f"no rule pack {str(name_or_path)!r}: not a built-in pack ({builtin}) nor a file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PackError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise PackError(f"{path}: a pack is a mapping with 'name' and 'rules'")
    try:
        pack = Pack.model_validate(raw)
    except ValidationError as exc:
        raise PackError(f"{path}: {_explain(exc, raw)}") from None
    seen: set[str] = set()
    for rule in pack.rules:
        if rule.id in seen:
            raise PackError(f"{path}: rule {rule.id!r} appears twice")
        seen.add(rule.id)
    return pack
