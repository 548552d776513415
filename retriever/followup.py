"""Follow-up questions made standalone before retrieval.

In a chat, "How is it treated?" after "What is glaucoma?" means "How is glaucoma treated?". Searching the
follow-up alone finds treatments of anything; searching the whole conversation pasted together drowns the new
question in the old ones (MTRAG's human data: nDCG@10 0.61 for the last turn, 0.25 concatenated, 0.66 for a
human rewrite). So the follow-up is rewritten into a standalone question, and the rewrite is what is searched
and shown ("searched for: How is glaucoma treated?").

Strategies (``conversation.standalone``; measured against each other by ``bench/conversations.py``):

- ``rules`` (the default: no generation, well under a millisecond): the previous standalone question's
  *focus* (its key terms that are not aspect words like "symptoms" or "change", as the phrase it wrote them in:
  "Ehlers-Danlos syndrome", "operating income") replaces a pronoun that refers back ("it", "its", "this
  condition", "they"); an elliptical turn ("What about 2018?", "And the symptoms?") takes the previous question
  with the year, or the focus, swapped, or is asked about the focus; a turn with no subject of its own ("What
  items should I keep?") carries the focus along. A turn that names its own subject is searched as written.
- ``generator``: the answering model rewrites the turn from the conversation (few-shot); right for a large
  model behind the OpenAI-compatible backend, slow and unreliable for the embedded 135M one.
- ``fusion`` (in the pipeline: ``fused_search``): the rules' question and the previous standalone question are
  both searched and their rankings fused (RRF, the previous one at half weight).
- ``off``: every turn is searched as written.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.types import Hit
from retriever.answerability import key_terms
from retriever.fusion import reciprocal_rank_fusion

STRATEGIES = ("rules", "fusion", "generator", "off")

# What a question asks about a subject, not the subject: never part of the focus that a follow-up refers to.
ASPECT_WORDS = frozenset(
    # medical question types (MedQuAD's and people's)
    "symptom symptoms sign signs cause causes caused treatment treatments treat treated treating therapy therapies "
    "diagnosis diagnose diagnosed test tests testing prevent prevented prevention outlook prognosis risk risks "
    "inherited inheritance hereditary genetic genetics gene genes change changes research trials clinical "
    "complication complications effect effects side dose doses dosage frequency common rare many people affected "
    "susceptible who what information support options care manage management stages stage expect cure cured "
    "contagious spread "
    # finance question shapes
    "change changes changed difference increase increased decrease decreased percentage percent proportion ratio "
    "average total sum value amount amounts number growth rate grew fell rise rose year years fiscal period "
    "compare compared respective respectively cost costs price "
    # verbs that tie an aspect to its subject ("the genetic changes related to it", "the research being done")
    "related relate relates associated linked done doing involved available "
    # modifiers that narrow an aspect without naming a subject ("the usual dose", "the latest figure")
    "usual normal typical recommended safe maximum minimum daily main first next last latest current previous "
    "same right correct".split()
)
# A turn that refers back: a pronoun or a demonstrative standing for the previous subject.
_REFERRING = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|this|that|these|those|he|she|him|his|her|such)\b"
    r"(?:\s+(?:condition|disease|disorder|illness|syndrome|drug|medicine|medication|treatment|company|firm|"
    r"business|segment|report|filing|item|one|ones|amount|figure|number|year|period))?",
    re.I,
)
# A turn that continues the previous one without a verb of its own: "And in 2018?", "What about the symptoms?"
_ELLIPTICAL = re.compile(r"^\s*(?:and|also|what about|how about|same for|same with|and what about|and how about|or)\b[\s,]*", re.I)
_YEAR = re.compile(r"\b(?:FY\s?)?(?:19|20)\d\d\b")


@dataclass(frozen=True)
class Standalone:
    question: str  # what is searched
    rewritten: bool  # False when the message was already standalone (or there is no history)
    strategy: str  # "none" (searched as written), "rules" or "generator"
    ms: float


def _content_terms(text: str) -> list[str]:
    return [t.key for t in key_terms(text) if t.key not in ASPECT_WORDS and not t.year]


def focus(question: str) -> str:
    """The subject of a standalone question as it writes it: the span from its first to its last content
    term that is not an aspect or a year ("What are the treatments for Ehlers-Danlos syndrome ?" ->
    "Ehlers-Danlos syndrome"; "What was the change in operating income from 2018 to 2019?" -> "operating
    income"); "" when it has none."""
    wanted = set(_content_terms(question))
    spans = []
    for match in re.finditer(r"[A-Za-z0-9][A-Za-z0-9&'\-]*", question):
        key = re.sub(r"'s$|'$", "", match.group(0)).strip("-'").lower()
        if key in wanted:
            spans.append((match.start(), match.end()))
    if not spans:
        return ""
    # The last run of content terms that stand together (at most one joining word between them): the subject
    # is usually the question's last noun phrase ("the symptoms of X", "the revenue of segment X").
    runs: list[list[tuple[int, int]]] = [[spans[0]]]
    for start, end in spans[1:]:
        gap = question[runs[-1][-1][1] : start].split()
        if len(gap) <= 1 and (not gap or gap[0].lower() in ("of", "and", "&", "-", "for", "in")):
            runs[-1].append((start, end))
        else:
            runs.append([(start, end)])
    # The longest run names the subject best; the later one wins a tie.
    run = max(reversed(runs), key=len)
    return question[run[0][0] : run[-1][1]].strip()


def names_own_subject(message: str, previous_focus: str) -> bool:
    """The turn names a subject of its own: a content word that is not an aspect, a year, part of a reference
    back ("this condition") or of the previous subject. It is searched as written, pronouns and all: in "What
    were the obligations that are due within a year?" the "that" joins a clause, and in "Can women play it?"
    the turn's own words find its passages better than a guessed substitution. An elliptical turn ("What
    about cataracts?") continues the previous question instead (``rules``)."""
    if _ELLIPTICAL.match(message):
        return False
    known = {t.key for t in key_terms(previous_focus)}
    own = [t for t in key_terms(_REFERRING.sub(" ", message)) if not t.year and t.key not in ASPECT_WORDS]
    return any(t.key not in known for t in own)


def _replace_reference(message: str, subject: str) -> str:
    def swap(match: re.Match) -> str:
        word = match.group(0).split()[0].lower()
        if word in ("its", "their", "theirs", "his", "her"):
            return f"{subject}'s" if not subject.endswith("s") else f"{subject}'"
        return subject

    return _REFERRING.sub(swap, message, count=1)


def _elliptical(message: str, previous: str, subject: str) -> str:
    rest = _ELLIPTICAL.sub("", message, count=1).strip().rstrip("?. ").strip()
    rest = re.sub(r"^(?:in|for|of|the)\s+", "", rest, flags=re.I).strip()
    if not rest:
        return previous
    new_years = _YEAR.findall(rest)
    old_years = _YEAR.findall(previous)
    if new_years and old_years and not _content_terms(rest):
        # "And in 2018?" after "What was the revenue in 2019?": the same question for the other year.
        swapped = previous
        for old, new in zip(old_years, new_years, strict=False):
            swapped = swapped.replace(old, new, 1)
        if len(new_years) == 1 and len(old_years) > 1:  # "from 2018 to 2019" -> one year asked: keep its first
            swapped = previous.replace(old_years[0], new_years[0], 1)
        return swapped
    aspects = [t.key for t in key_terms(rest) if t.key in ASPECT_WORDS]
    if subject and aspects and not _content_terms(rest):
        return f"What about the {rest.removeprefix('the ')} of {subject}?"  # "And the symptoms?"
    if subject and subject.lower() in previous.lower() and _content_terms(rest):
        return re.sub(re.escape(subject), rest, previous, count=1, flags=re.I)  # "What about cataracts?"
    return f"{rest} ({subject})?" if subject else message


def rules(message: str, history: Sequence[str]) -> str | None:
    """The standalone form of ``message`` after ``history`` (earlier standalone questions, oldest first), or
    None when it already stands alone (or nothing before named a subject)."""
    # The conversation's subject is the last one a question named (a turn like "Who is at risk?" names none).
    previous, subject = next(((h, focus(h)) for h in reversed(history) if focus(h)), ("", ""))
    if not subject or names_own_subject(message, subject):
        return None
    if subject.lower() in message.lower():
        return None  # it already names the subject
    if _ELLIPTICAL.match(message):
        return _elliptical(message, previous, subject)
    if _REFERRING.search(message):
        return _replace_reference(message, subject)
    # No subject of its own and no reference: the subject is carried along ("What items should I keep?").
    body = message.rstrip().rstrip("?.!").rstrip()
    return f"{body} ({subject})?"


REWRITE_PROMPT = (
    "Rewrite the last question of the conversation so that it can be understood without the conversation: "
    "replace words like 'it' or 'they' with what they refer to. Write only the rewritten question."
)
_EXAMPLES = (
    (["What is glaucoma?"], "How is it treated?", "How is glaucoma treated?"),
    (["What was the revenue of the cloud segment in 2019?"], "And in 2018?", "What was the revenue of the cloud segment in 2018?"),
)


def rewrite_messages(message: str, history: Sequence[str], *, shots: bool = True) -> list[dict[str, str]]:
    """A prompt asking a model for the standalone form of ``message``: few-shot, or without the examples
    (``shots=False``) for the task adapter, which was trained on this prompt (training/tasks.py)."""

    def shown(turns: Sequence[str], last: str) -> str:
        lines = [f"User: {t}" for t in turns] + [f"Last question: {last}"]
        return "\n".join(lines)

    messages = [{"role": "system", "content": REWRITE_PROMPT}]
    for turns, last, rewrite in _EXAMPLES if shots else ():
        messages += [{"role": "user", "content": shown(turns, last)}, {"role": "assistant", "content": rewrite}]
    messages.append({"role": "user", "content": shown(list(history)[-3:], message)})
    return messages


def _usable_rewrite(text: str, message: str) -> str | None:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:rewritten question|question|last question)\s*:\s*", "", line, flags=re.I).strip().strip('"')
    # A rewrite far longer than the turn is an answer, not a question; one with no words is nothing.
    if not re.search(r"[A-Za-z]", line) or len(line) > 3 * len(message) + 80:
        return None
    return line


def contextualize(
    message: str,
    history: Sequence[str],
    *,
    rewrite: Callable[[list[dict[str, str]]], str] | None = None,
    strategy: str = "rules",
    shots: bool = True,
) -> Standalone:
    """``message`` made standalone with ``strategy`` (see the module doc); ``history`` holds the earlier turns'
    standalone questions, oldest first. "fusion" rewrites with the rules (the pipeline then fuses searches);
    "generator" needs ``rewrite``, which answers chat messages (``rewrite_messages``) with the model's text;
    ``shots=False`` leaves the prompt's examples out (for the task adapter, trained without them)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown standalone strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    message = " ".join(message.split())
    question, used = None, "none"
    if history and strategy in ("rules", "fusion"):
        question, used = rules(message, history), "rules"
    elif history and strategy == "generator":
        if rewrite is None:
            raise ValueError("the generator strategy needs a model to rewrite with")
        previous = next((h for h in reversed(history) if h.strip()), "")
        # Skipped when the turn names its own subject: a rewrite would only cost time (and may drift).
        if previous and not names_own_subject(message, focus(previous)):
            question, used = _usable_rewrite(rewrite(rewrite_messages(message, history, shots=shots)), message), "generator"
    ms = (time.perf_counter() - started) * 1000
    if not question or question == message:
        return Standalone(message, False, "none", ms)
    return Standalone(question, True, used, ms)


def fuse(current: Sequence[Hit], before: Sequence[Hit], k: int) -> list[Hit]:
    """``current`` (the turn's hits) fused by RRF with ``before`` (the previous standalone question's) at half
    weight: the new turn leads, the conversation's subject breaks its ties."""
    return _fused(current, before, 0.5, k)


def _fused(lead: Sequence[Hit], other: Sequence[Hit], weight: float, k: int) -> list[Hit]:
    """The top ``k`` of ``lead`` and ``other`` fused by RRF, ``other`` at ``weight``; ties go to ``lead``."""
    by_id = {h.chunk_id: h for h in [*other, *lead]}
    rankings = {"lead": [(h.chunk_id, h.score) for h in lead], "other": [(h.chunk_id, h.score) for h in other]}
    fused = reciprocal_rank_fusion(rankings, weights={"lead": 1.0, "other": weight})
    return [by_id[chunk] for chunk, _ in fused[:k]]


def fused_search(retriever: Any, message: str, previous: str | None, k: int, filters: dict[str, Any] | None = None) -> list[Hit]:
    """The hits for ``message`` (already made standalone) fused with those for the previous standalone question."""
    current = retriever.search(message, k, filters).hits
    return fuse(current, retriever.search(previous, k, filters).hits, k) if previous else current


# --- the parts of the collection a conversation has drawn on ----------------------------------------------


def source_group(hit: Hit) -> tuple[tuple[str, Any], ...]:
    """The part of the collection a passage belongs to, as filter items: its file, and its report where a
    loader splits one file into reports (TAT-QA's ``report_uid``)."""
    group: list[tuple[str, Any]] = [("source", hit.source)] if hit.source else []
    if hit.metadata.get("report_uid") is not None:
        group.append(("report_uid", hit.metadata["report_uid"]))
    return tuple(group)


class ConversationSources:
    """Votes for the parts of the collection (``source_group``) a conversation's questions found: the first
    ``depth`` distinct parts among a question's hits get 1, 1/2, 1/3. A follow-up that never names its
    company ("What was the change in revenue?") is most likely about the report the conversation has been
    reading, and the questions agree on it more often than any one of them finds it."""

    def __init__(self, depth: int = 3):
        self.depth = depth
        self.votes: Counter[tuple[tuple[str, Any], ...]] = Counter()

    def add(self, hits: Sequence[Hit]) -> None:
        groups = list(dict.fromkeys(source_group(h) for h in hits))[: self.depth]
        for rank, group in enumerate(groups):
            self.votes[group] += 1.0 / (rank + 1)

    def leading(self) -> dict[str, Any] | None:
        """The most voted part as filters, or None before any question."""
        return dict(self.votes.most_common(1)[0][0]) if self.votes else None


def anchor(
    retriever: Any, hits: Sequence[Hit], question: str, k: int, earlier: Sequence[str], filters: dict[str, Any] | None = None
) -> list[Hit]:
    """``hits`` (the follow-up's) fused by RRF, at equal weight, with the follow-up's hits within the file or
    report the ``earlier`` standalone questions' searches vote for (``ConversationSources``); ``hits`` as they
    are without earlier questions. For a follow-up the rules left as written: one they rewrote names its
    subject already."""
    sources = ConversationSources()
    for asked in earlier:
        sources.add(retriever.search(asked, k, filters).hits)
    scope = sources.leading()
    if not scope:  # no earlier question, or passages that say nothing of where they come from
        return list(hits)
    return _fused(hits, retriever.search(question, k, {**(filters or {}), **scope}).hits, 1.0, k)
