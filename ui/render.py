"""What the chat shows besides the text: sources with the cited span highlighted, and guardrail notices.
Plain functions over the answer view (``assistant.views.answer_view``), so they are tested without a UI."""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from core.citations import cited_numbers, split_sentences
from guardrails.output_checks import content_words, lexical_support

MIN_SUPPORT = 0.3  # share of a citing sentence's content words a passage sentence must hold to be highlighted


def citing_sentences(answer: str, n_sources: int) -> dict[int, list[str]]:
    """Source number -> the answer's sentences that cite it."""
    out: dict[int, list[str]] = defaultdict(list)
    for sentence in split_sentences(answer):
        for number in cited_numbers(sentence, n_sources):
            out[number].append(sentence)
    return out


def cited_spans(passage: str, claims: list[str]) -> list[tuple[int, int]]:
    """Character spans of the passage's sentences that best support each claim (at most one per claim)."""
    sentences: list[tuple[int, int, str]] = []
    cursor = 0
    for sentence in split_sentences(passage):
        start = passage.find(sentence, cursor)
        if start < 0:
            continue
        sentences.append((start, start + len(sentence), sentence))
        cursor = start + len(sentence)
    spans = set()
    for claim in claims:
        if not content_words(claim):
            continue
        scored = [(lexical_support(claim, [text]), start, end) for start, end, text in sentences]
        if scored:
            support, start, end = max(scored)
            if support >= MIN_SUPPORT:
                spans.add((start, end))
    return sorted(spans)


def highlighted_html(passage: str, spans: list[tuple[int, int]]) -> str:
    """The passage as escaped HTML, the spans in <mark>, line breaks kept."""
    parts, cursor = [], 0
    for start, end in spans:
        parts.append(html.escape(passage[cursor:start]))
        parts.append(f"<mark>{html.escape(passage[start:end])}</mark>")
        cursor = end
    parts.append(html.escape(passage[cursor:]))
    return "".join(parts).replace("\n", "<br>")


def source_link(source: str) -> str:
    """A clickable link for web sources, the file path otherwise."""
    if source.startswith(("http://", "https://")):
        return f"[{source}]({source})"
    return f"`{source}`"


_REDACTED = {
    "pii.email": "an e-mail address",
    "pii.phone": "a phone number",
    "pii.ssn": "a social security number",
    "pii.credit_card": "a card number",
    "pii.iban": "an IBAN",
    "pii.date_of_birth": "a date of birth",
    "pii.mrn": "a medical record number",
}


def notices(view: dict[str, Any]) -> list[tuple[str, str]]:
    """(level, text) pairs saying plainly what the guardrails did; level is error / warning / info."""
    events = view.get("guard_events", [])
    out: list[tuple[str, str]] = []
    if view.get("blocked"):
        rule = next((e for e in events if e["action"] == "block"), None)
        why = {
            "injection": "it looks like an attempt to change how the assistant works",
            "harmful": "it asks for something harmful",
            "emergency": "it describes an emergency",
            "self_harm": "it mentions self-harm",
        }.get(rule["category"] if rule else "", "a safety rule applies")
        out.append(("error", f"Not answered from the documents: {why} (rule `{rule['rule_id'] if rule else '?'}`)."))
    redacted = sorted({_REDACTED.get(e["rule_id"], e["rule_id"]) for e in events if e["stage"] == "input" and e["action"] == "redact"})
    if redacted:
        out.append(("info", f"Removed from your question before searching and logging: {', '.join(redacted)}."))
    if view.get("finish_reason") == "not_covered":
        out.append(("warning", f"Not covered by the documents, so nothing was generated: {view.get('reason') or 'no passage answers it.'}"))
    elif view.get("answerable") is False and view.get("reason"):
        out.append(("warning", f"The documents do not answer this: {view['reason']}"))
    if view.get("finish_reason") == "degenerate":
        out.append(("warning", "The model started repeating itself and was stopped; what the passages say is shown as evidence instead."))
    removed = [e for e in events if e["rule_id"] == "output.grounding"]
    if any(e["rule_id"] == "output.grounding_fallback" for e in events):
        out.append(
            (
                "warning",
                "No sentence of the generated answer was supported by its sources; the source sentences that bear on the question are shown as evidence.",
            )
        )
    elif removed:
        verb = "marked" if any(e["action"] == "rewrite" for e in removed) else "removed"
        out.append(("warning", f"{len(removed)} sentence(s) not supported by the cited sources were {verb}."))
    invalid = [e for e in events if e["rule_id"] == "output.citation_invalid"]
    if invalid:
        out.append(("warning", f"{len(invalid)} citation(s) to passages that were never given were removed."))
    if any(e["rule_id"] == "output.citation_missing" for e in events):
        out.append(("warning", "The answer cites no source."))
    if any(e["rule_id"] == "output.numbers" for e in events):
        out.append(("warning", "Some numbers in the answer do not appear in the sources: check them against the passages."))
    if any(e["rule_id"] == "finance.promissory" for e in events):
        out.append(("info", 'Promissory wording (e.g. "guaranteed returns") was rewritten.'))
    if any(e["stage"] == "output" and e["rule_id"].startswith("output.pii.") for e in events):
        out.append(("info", "Personal data in the answer was redacted."))
    if view.get("finish_reason") in ("length", "timeout"):
        out.append(("info", f"The answer was cut short ({view['finish_reason']})."))
    return out
