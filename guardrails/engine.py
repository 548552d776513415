"""The guard: runs the rules of one stage over a text and applies their actions.

Matching happens on the normalised text (guardrails/normalize.py) for pattern and keyword rules, so
spacing, case, invisible characters and leetspeak do not hide a phrase; spans are mapped back to the
original. Validators (PII, citations, grounding, numbers) see the original text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.citations import COULD_NOT_ANSWER, MARKER, NO_ANSWER
from guardrails.audit import AuditLog
from guardrails.classifier import load_classifier
from guardrails.events import GuardEvent, GuardResult, Stage
from guardrails.normalize import Normalised, normalise, strip_accents
from guardrails.output_checks import quote_fallback
from guardrails.packs import Pack, PackError, Rule, load_pack
from guardrails.validators import VALIDATORS

Span = tuple[int, int]


def _keyword_regex(keywords: Sequence[str]) -> re.Pattern:
    # Keywords are normalised like the text, matched as whole words, any whitespace between their words.
    alternatives = sorted({r"\s+".join(map(re.escape, normalise(k).text.split())) for k in keywords}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    regexes: tuple[re.Pattern, ...]
    requires: tuple[re.Pattern, ...]
    unless: tuple[re.Pattern, ...] = ()

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        if rule.kind == "pattern":
            # Patterns are written with accents ("möchte"); the normalised text has none.
            regexes = tuple(re.compile(strip_accents(p), re.IGNORECASE) for p in rule.patterns)
        elif rule.kind == "keywords":
            regexes = (_keyword_regex(rule.keywords),)
        else:
            regexes = ()

        def compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern, ...]:
            return tuple(re.compile(strip_accents(p), re.IGNORECASE) for p in patterns)

        return cls(rule, regexes, compiled(rule.requires), compiled(rule.unless))

    def spans(self, text: str, norm: Normalised, context: Mapping[str, Any]) -> list[Span | None]:
        rule = self.rule
        if self.requires and not any(r.search(norm.text) for r in self.requires):
            return []
        if self.unless and any(r.search(norm.text) for r in self.unless):
            return []
        if rule.kind in ("pattern", "keywords"):
            return [norm.span(*m.span()) for regex in self.regexes for m in regex.finditer(norm.text) if m.end() > m.start()]
        if rule.kind == "validator":
            return list(VALIDATORS[rule.validator](text, context))
        if rule.kind == "classifier":
            return [(0, len(text))] if load_classifier(rule.model).score(norm.text) >= rule.above else []
        value = context.get(rule.signal)
        return [None] if isinstance(value, (int, float)) and value < rule.below else []


def _replace(text: str, replacements: list[tuple[Span, str]]) -> str:
    """Apply span replacements; where spans overlap the earlier (then longer) one wins."""
    kept: list[tuple[Span, str]] = []
    for span, new in sorted(replacements, key=lambda r: (r[0][0], -r[0][1])):
        if kept and span[0] < kept[-1][0][1]:
            continue
        kept.append((span, new))
    for (start, end), new in reversed(kept):
        text = text[:start] + new + text[end:]
    return text


class Guard:
    def __init__(self, packs: Sequence[Pack], *, audit: AuditLog | None = None):
        self.packs = list(packs)
        self.audit = audit
        self.rules: dict[str, list[CompiledRule]] = {"input": [], "ingest": [], "output": []}
        seen: dict[str, str] = {}
        for pack in self.packs:
            for rule in pack.rules:
                if rule.id in seen:
                    raise PackError(f"rule {rule.id!r} is in both pack {seen[rule.id]!r} and pack {pack.name!r}")
                seen[rule.id] = pack.name
                self.rules[rule.stage].append(CompiledRule.of(rule))

    @classmethod
    def from_packs(cls, names: Sequence[str], *, audit: AuditLog | None = None) -> Guard:
        return cls([load_pack(n) for n in names], audit=audit)

    def check(self, text: str, stage: Stage, context: Mapping[str, Any] | None = None, *, kinds: set[str] | None = None) -> GuardResult:
        """Every rule of ``stage`` (of the given ``kinds``, default all) over ``text``. Blocking rules do not
        stop the others: the events say everything that fired (redactions included), so the audit log and
        the user see the whole picture.

        Output checks whose grounding rule leaves nothing of the answer fall back to quoting the passages'
        most relevant sentences with their citations (``context["question"]``, ``context["passages"]``),
        so the user always gets something true."""
        context = context or {}
        started = time.perf_counter()
        norm = normalise(text)
        events: list[GuardEvent] = []
        replacements: list[tuple[Span, str]] = []
        disclaimers: list[str] = []
        for compiled in self.rules[stage]:
            rule = compiled.rule
            if kinds is not None and rule.kind not in kinds:
                continue
            spans = compiled.spans(text, norm, context)
            if not spans:
                continue
            if rule.action in ("redact", "rewrite"):
                new = rule.replacement if rule.replacement is not None else f"[{rule.category.upper()}]"
                for span in spans:
                    span = span or (0, len(text))
                    events.append(GuardEvent(rule.id, stage, rule.action, rule.category, rule.message, span))
                    # "{text}" in a replacement keeps the matched text (e.g. to mark a sentence, not drop it).
                    replacements.append((span, new.replace("{text}", text[span[0] : span[1]])))
                continue
            events.append(GuardEvent(rule.id, stage, rule.action, rule.category, rule.message, spans[0]))
            if rule.action == "disclaimer" and rule.message not in disclaimers:
                disclaimers.append(rule.message)
        removed = [span for span, new in replacements if new == "" and span]
        # A note about text another rule removed would point at nothing the user sees.
        events = [
            e for e in events if not (e.action == "annotate" and e.span and any(a <= e.span[0] and e.span[1] <= b for a, b in removed))
        ]
        out = _replace(text, replacements)
        if any(new == "" for _, new in replacements):  # removed sentences or markers leave gaps behind
            out = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", out)).strip()
        emptied = not re.search(r"[^\W_]", MARKER.sub("", out))
        if stage == "output" and emptied and any(e.category in ("grounding", "numbers") and e.action == "redact" for e in events):
            passages = [str(p) for p in context.get("passages") or []]
            quotes = quote_fallback(
                str(context.get("question", "")), passages, evidence=context.get("evidence"), terms=context.get("terms")
            )
            out = f"{COULD_NOT_ANSWER}\n{quotes}" if quotes else NO_ANSWER
            # The quotation carries its own citations: a "cites nothing" note about the replaced text would mislead.
            events = [e for e in events if not (e.category == "citation" and e.action == "annotate")]
            message = (
                "No sentence of the answer was supported by its passages; the passage sentences that bear on the question are shown as evidence."
                if quotes
                else "No sentence of the answer was supported by its passages, and no passage sentence bears on the question."
            )
            events.append(GuardEvent("output.grounding_fallback", stage, "rewrite", "grounding", message))
        if disclaimers:
            out = out.rstrip() + "\n\n" + "\n".join(disclaimers)
        result = GuardResult(out, events)
        if self.audit is not None:
            self.audit.record(stage, result, elapsed_ms=(time.perf_counter() - started) * 1000, context=context)
        return result
