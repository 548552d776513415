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


def source_caption(source: dict) -> str:
    """Where a cited passage comes from: the file (and page), its span and score, and, when its document
    has changed since the answer, the version it was taken from."""
    where = source_link(source["source"]) + (f", page {source['page']}" if source.get("page") else "")
    caption = f"{where}, characters {source['start']}-{source['end']}, score {source['score']:.3f}"
    if source.get("changed") and source.get("ingested_at"):
        caption += f". From the version of {source['ingested_at'][:10]}; the document has changed since"
    return caption


def _row_cells(line: str) -> tuple[str, list[tuple[str, str]]]:
    """A table row as the text shows it ("Revenue | 2019: $ 1,496 | 2018: $ 1,334") -> label, (header, value)s."""
    label, *cells = [part.strip() for part in line.split(" | ")]
    out = []
    for cell in cells:
        header, sep, value = cell.rpartition(": ")
        out.append((header, value) if sep else ("", cell))
    return label, out


def computation_html(view: dict[str, Any]) -> str | None:
    """For an answer computed in code: the table rows its operands come from, as the cited passages show them,
    each operand cell in <mark> with its passage number, and the arithmetic under the table."""
    computation = view.get("computation")
    if not computation or computation.get("error") or not computation.get("operands"):
        return None
    snippets = {s["number"]: s["snippet"] for s in view.get("sources", [])}
    rows: dict[tuple[int, str], list[tuple[str, str]]] = {}
    for operand in computation["operands"]:
        key = (operand["passage"], operand["row"])
        if key in rows:
            continue
        line = next((ln for ln in snippets.get(operand["passage"], "").splitlines() if ln.startswith(operand["row"] + " | ")), None)
        rows[key] = _row_cells(line)[1] if line else [(operand["column"], operand["text"])]
    columns = list(dict.fromkeys(header for cells in rows.values() for header, _ in cells))
    marked = {(o["passage"], o["row"], o["column"]) for o in computation["operands"]}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns, "source"])
    body = []
    for (number, label), cells in rows.items():
        values = dict(cells)
        tds = []
        for column in columns:
            value = html.escape(values.get(column, ""))
            tds.append(f"<td><mark>{value}</mark></td>" if (number, label, column) in marked else f"<td>{value}</td>")
        body.append(f"<tr><th>{html.escape(label)}</th>{''.join(tds)}<td>[{number}]</td></tr>")
    work = html.escape(computation["work"])
    return f"<table><tr>{head}</tr>{''.join(body)}</table><p>Computed in code: <code>{work}</code></p>"


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
    if view.get("finish_reason") == "computed":
        computation = view.get("computation") or {}
        if computation.get("error"):
            out.append(("warning", f"The computation could not be done: {computation['error']}."))
        else:
            out.append(("info", "Computed in code from the cited table cells, not by the language model."))
    if any(e["rule_id"] == "finance.numbers_unshown" for e in events):
        out.append(("warning", "A sentence stating a number that no cited source holds (arithmetic done by the model) was removed."))
    if any(e["rule_id"] == "medical.dose_not_copied" for e in events):
        out.append(("warning", "A dose in the answer is not written that way in the source it cites: check it against the source."))
    if any(e["rule_id"] == "output.numbers" for e in events):
        out.append(("warning", "Some numbers in the answer do not appear in the sources: check them against the passages."))
    if any(e["rule_id"] == "finance.promissory" for e in events):
        out.append(("info", 'Promissory wording (e.g. "guaranteed returns") was rewritten.'))
    if any(e["stage"] == "output" and e["rule_id"].startswith("output.pii.") for e in events):
        out.append(("info", "Personal data in the answer was redacted."))
    if view.get("finish_reason") in ("length", "timeout"):
        out.append(("info", f"The answer was cut short ({view['finish_reason']})."))
    return out
