"""What a rail decides: events, and the result of checking one text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Stage = Literal["input", "ingest", "output"]
Action = Literal["block", "redact", "rewrite", "annotate", "disclaimer"]


@dataclass(frozen=True)
class GuardEvent:
    """One rule firing. ``span`` is a character span in the text as the rule saw it (before any
    redaction by this check); it never carries the matched value itself, so events are safe to log."""

    rule_id: str
    stage: Stage
    action: Action
    category: str  # what the rule guards against: injection, harmful, pii, emergency, grounding, ...
    message: str
    span: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GuardResult:
    text: str  # the text to carry on with: redactions and rewrites applied, disclaimers appended
    events: list[GuardEvent] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return any(e.action == "block" for e in self.events)

    @property
    def reply(self) -> str | None:
        """The fixed reply of the first blocking rule, when the text is blocked."""
        return next((e.message for e in self.events if e.action == "block"), None)

    def to_dict(self) -> dict:
        return {"blocked": self.blocked, "reply": self.reply, "text": self.text, "events": [e.to_dict() for e in self.events]}
