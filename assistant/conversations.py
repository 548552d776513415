"""Conversations: follow-up questions answered in the context of the earlier turns.

``ConversationStore`` keeps them in one SQLite file (WAL; ``conversation_path``): a conversation belongs to
an owner (an API key's principal id, or "" for local use) and stays on one collection; each turn keeps the
message as given (already redacted by the input rails), the question actually searched, the answer and the
passages it cites (the answer view's ``citations`` shape). Someone else's conversation is reported exactly
like an unknown one. ``Turn`` is what ``Assistant.stream(history=...)`` reads; ``Exchange`` is one question
in a conversation, for the API and the command line: its history read, its answer kept, two questions on one
conversation answered one after the other.
"""

from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.views import passage_view
from core.config import Settings
from core.errors import AssistantError, ConversationBusy, ConversationNotFound, UserError

if TYPE_CHECKING:
    from assistant.pipeline import Answer

SCHEMA_VERSION = 1
TITLE_CHARS = 60
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    title TEXT NOT NULL,
    collection TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    touched INTEGER NOT NULL  -- order of last use: timestamps of two quick turns can be equal
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, touched);
CREATE TABLE IF NOT EXISTS turns (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    message TEXT NOT NULL,
    standalone TEXT NOT NULL,
    collection TEXT NOT NULL,
    collection_version INTEGER NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,  -- JSON: the cited passages, as the answer view's `citations`
    note TEXT,
    created TEXT NOT NULL,
    PRIMARY KEY (conversation, number)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Turn:
    """An earlier turn as the pipeline reads it: the message as asked, the question searched, the answer."""

    message: str
    standalone: str
    answer: str
    collection: str


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str
    title: str
    collection: str  # the last turn's: a turn on another collection moves the conversation there
    created: str
    updated: str
    turn_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The API's and ``--json``'s shape (api/schemas.py: Conversation); the owner is the caller."""
        return {k: v for k, v in asdict(self).items() if k != "owner"}


@dataclass(frozen=True)
class TurnRecord:
    """A stored turn: what was asked and searched, the answer, the passages it cites, and a note such as a
    switch of collection."""

    number: int
    message: str
    standalone: str
    answer: str
    collection: str
    collection_version: int
    citations: tuple[dict[str, Any], ...]
    note: str | None
    created: str

    @property
    def turn(self) -> Turn:
        return Turn(self.message, self.standalone, self.answer, self.collection)

    def to_dict(self) -> dict[str, Any]:
        """The API's shape (api/schemas.py: ConversationTurn)."""
        return {**asdict(self), "citations": list(self.citations)}


def conversation_path(settings: Settings) -> Path:
    """The store's file: ASSISTANT_CONVERSATION__PATH, else conversations.sqlite in the index folder."""
    return settings.conversation.path or Path(settings.index_dir) / "conversations.sqlite"


def open_conversations(settings: Settings) -> ConversationStore:
    cfg = settings.conversation

    def current_documents(collection: str, document_ids: list[str]) -> set[str]:
        from core.collection import Collection, collection_path
        from core.collection.history import live_document_ids

        # The database alone: reopening a conversation must not read the collection's vector index.
        with closing(Collection.open_store(collection_path(settings.index_dir, collection))) as store:
            return live_document_ids(store.db, document_ids)

    return ConversationStore(
        conversation_path(settings), max_turns=cfg.max_turns, max_conversations=cfg.max_conversations, current_documents=current_documents
    )


def keeps(answer: Answer) -> bool:
    """Whether an answer becomes a turn. Not a question the input rails refused (it was never redacted and
    answers nothing), nor one whose client left before it was complete (nobody read that answer)."""
    return not answer.blocked and answer.finish_reason != "cancelled"


def turn_of(answer: Answer) -> Turn:
    return Turn(answer.question, answer.standalone or answer.question, answer.text, answer.collection)


def title_from(message: str) -> str:
    """A title from a first message: its first TITLE_CHARS characters, cut at a word."""
    text = " ".join(message.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1].rsplit(" ", 1)[0] or text[: TITLE_CHARS - 1]
    return cut.rstrip(" ,;:.-") + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _shown(conversation_id: str) -> str:
    return repr(conversation_id if len(conversation_id) <= 64 else conversation_id[:64] + "...")


def unknown_conversation(conversation_id: str) -> ConversationNotFound:
    """The error for an unknown conversation (and for someone else's, which reads the same)."""
    return ConversationNotFound(f"no conversation {_shown(conversation_id)}")


class ConversationStore:
    """Conversations and their turns in SQLite. One connection behind a lock, so any thread may call it (each
    call is a few queries); writes are IMMEDIATE transactions, so another process writing the file waits its
    turn instead of interleaving. At most ``max_turns`` turns per conversation (the oldest dropped) and
    ``max_conversations`` per owner (the least recently used dropped)."""

    def __init__(
        self,
        path: Path,
        *,
        max_turns: int = 200,
        max_conversations: int = 500,
        current_documents: Callable[[str, list[str]], set[str]] | None = None,
    ):
        """``current_documents(collection, ids)``: which of these documents the collection holds now, so a
        reopened conversation can mark the passages whose document changed since (``detail``)."""
        self.path = Path(path)
        self._current_documents = current_documents
        self.max_turns = max_turns
        self.max_conversations = max_conversations
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UserError(f"{self.path} was written by a newer version of the assistant (conversation schema {version})")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA foreign_keys = ON")  # deleting a conversation deletes its turns
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UserError(f"{self.path} is not a conversation store ({exc}); move it away or set ASSISTANT_CONVERSATION__PATH") from None
        except BaseException:
            self._db.close()
            raise
        self._lock = threading.Lock()
        self._turn_locks: dict[str, tuple[threading.Lock, int]] = {}  # id -> (lock, holders and waiters)
        self._turn_locks_guard = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ conversations

    def create(self, owner: str, collection: str, title: str | None = None) -> Conversation:
        """A new, empty conversation; untitled ones take their title from the first message."""
        with self._write() as db:
            conversation_id = self._create(db, owner, collection, _clean_title(title) if title is not None else "")
        return self.get(conversation_id, owner)

    def _create(self, db: sqlite3.Connection, owner: str, collection: str, title: str) -> str:
        stale = db.execute(
            "SELECT id FROM conversations WHERE owner = ? ORDER BY touched DESC LIMIT -1 OFFSET ?", (owner, self.max_conversations - 1)
        ).fetchall()
        db.executemany("DELETE FROM conversations WHERE id = ?", stale)
        conversation_id = secrets.token_urlsafe(12)  # 96 random bits: not guessable, so the id alone reveals nothing
        now = _now()
        db.execute(
            "INSERT INTO conversations (id, owner, title, collection, created, updated, touched) "
            "VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(touched), 0) + 1 FROM conversations))",
            (conversation_id, owner, title, collection, now, now),
        )
        return conversation_id

    def list(self, owner: str) -> list[Conversation]:
        """The owner's conversations, the most recently used first."""
        rows = self._read(
            "SELECT c.id, c.owner, c.title, c.collection, c.created, c.updated, "
            "(SELECT COUNT(*) FROM turns t WHERE t.conversation = c.id) FROM conversations c WHERE c.owner = ? ORDER BY c.touched DESC",
            (owner,),
        )
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str, owner: str) -> Conversation:
        """The conversation; ConversationNotFound for an unknown id and for someone else's alike."""
        rows = self._read(
            "SELECT c.id, c.owner, c.title, c.collection, c.created, c.updated, "
            "(SELECT COUNT(*) FROM turns t WHERE t.conversation = c.id) FROM conversations c WHERE c.id = ? AND c.owner = ?",
            (conversation_id, owner),
        )
        if not rows:
            raise ConversationNotFound(f"no conversation {_shown(conversation_id)}")
        return Conversation(*rows[0])

    def collections(self, conversation_id: str, owner: str) -> set[str]:
        """The collections a conversation has been on: its own and its kept turns'. ConversationNotFound as ``get``."""
        self.get(conversation_id, owner)
        rows = self._read(
            "SELECT collection FROM conversations WHERE id = ? UNION SELECT collection FROM turns WHERE conversation = ?",
            (conversation_id, conversation_id),
        )
        return {row[0] for row in rows}

    def collections_by_conversation(self, owner: str) -> dict[str, set[str]]:
        """``collections`` for each of the owner's conversations, in one query."""
        rows = self._read(
            "SELECT id, collection FROM conversations WHERE owner = ? "
            "UNION SELECT t.conversation, t.collection FROM turns t JOIN conversations c ON c.id = t.conversation WHERE c.owner = ?",
            (owner, owner),
        )
        out: dict[str, set[str]] = {}
        for conversation_id, collection in rows:
            out.setdefault(conversation_id, set()).add(collection)
        return out

    def rename(self, conversation_id: str, owner: str, title: str) -> Conversation:
        title = _clean_title(title)
        if not title:
            raise UserError("a conversation's title cannot be empty")
        with self._write() as db:
            found = db.execute(
                "UPDATE conversations SET title = ?, updated = ?, touched = (SELECT MAX(touched) + 1 FROM conversations) "
                "WHERE id = ? AND owner = ?",
                (title, _now(), conversation_id, owner),
            )
            if not found.rowcount:
                raise ConversationNotFound(f"no conversation {_shown(conversation_id)}")
        return self.get(conversation_id, owner)

    def delete(self, conversation_id: str, owner: str) -> int:
        """Delete a conversation and its turns; returns how many turns went with it."""
        with self._write() as db:
            (turns,) = db.execute("SELECT COUNT(*) FROM turns WHERE conversation = ?", (conversation_id,)).fetchone()
            if not db.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)).rowcount:
                raise ConversationNotFound(f"no conversation {_shown(conversation_id)}")
        return int(turns)

    # ------------------------------------------------------------------ turns

    def add_turn(
        self,
        conversation_id: str,
        owner: str,
        *,
        message: str,
        standalone: str,
        answer: str,
        collection: str,
        collection_version: int = 0,
        citations: Iterable[dict[str, Any]] = (),
    ) -> TurnRecord:
        """Append a turn. A turn on another collection than the conversation's moves the conversation there and
        says so in its note; an untitled conversation takes its title from the message."""
        with self._write() as db:
            return self._add_turn(db, conversation_id, owner, message, standalone, answer, collection, collection_version, tuple(citations))

    def _add_turn(
        self,
        db: sqlite3.Connection,
        conversation_id: str,
        owner: str,
        message: str,
        standalone: str,
        answer: str,
        collection: str,
        collection_version: int,
        citations: tuple[dict[str, Any], ...],
    ) -> TurnRecord:
        found = db.execute("SELECT title, collection FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)).fetchone()
        if found is None:
            raise ConversationNotFound(f"no conversation {_shown(conversation_id)}")
        title, previous = found
        (last,) = db.execute("SELECT COALESCE(MAX(number), 0) FROM turns WHERE conversation = ?", (conversation_id,)).fetchone()
        note = f"switched collection from {previous} to {collection}" if last and previous != collection else None
        now = _now()
        record = TurnRecord(last + 1, message, standalone, answer, collection, collection_version, citations, note, now)
        db.execute(
            "INSERT INTO turns (conversation, number, message, standalone, collection, collection_version, answer, citations, note, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conversation_id, record.number, message, standalone, collection, collection_version, answer, json.dumps(citations), note, now),
        )
        db.execute("DELETE FROM turns WHERE conversation = ? AND number <= ?", (conversation_id, record.number - self.max_turns))
        db.execute(
            "UPDATE conversations SET collection = ?, updated = ?, title = ?, "
            "touched = (SELECT MAX(touched) + 1 FROM conversations) WHERE id = ?",
            (collection, now, title or title_from(message), conversation_id),
        )
        return record

    def record(self, answer: Answer, owner: str, conversation_id: str | None = None) -> str | None:
        """Keep ``answer`` as the next turn of the conversation (a new one, in the same transaction, when
        ``conversation_id`` is None). Returns the conversation's id; None when a new conversation's first
        answer is not kept (``keeps``), so nothing was created."""
        if not keeps(answer):
            return conversation_id
        citations = tuple(passage_view(s) for s in answer.citations)
        with self._write() as db:
            if conversation_id is None:
                conversation_id = self._create(db, owner, answer.collection, "")
            self._add_turn(
                db,
                conversation_id,
                owner,
                answer.question,
                answer.standalone or answer.question,
                answer.text,
                answer.collection,
                answer.collection_version,
                citations,
            )
        return conversation_id

    def turns(self, conversation_id: str, owner: str) -> builtins.list[TurnRecord]:  # `list` here is the method above
        """Every stored turn, oldest first."""
        self.get(conversation_id, owner)
        rows = self._read(
            "SELECT number, message, standalone, answer, collection, collection_version, citations, note, created "
            "FROM turns WHERE conversation = ? ORDER BY number",
            (conversation_id,),
        )
        return [_record(row) for row in rows]

    def detail(self, conversation_id: str, owner: str) -> dict[str, Any]:
        """A conversation with every turn, in the API's shape (api/schemas.py: ConversationDetail)."""
        turns = [t.to_dict() for t in self.turns(conversation_id, owner)]
        self._mark_changed(turns)
        return {**self.get(conversation_id, owner).to_dict(), "turns": turns}

    def _mark_changed(self, turns: list[dict[str, Any]]) -> None:
        """Give every cited passage ``changed``: its document was replaced or removed since the answer (the
        chat then says which version it came from). Unknown (None) where the collection cannot be opened."""
        by_collection: dict[str, set[str]] = {}
        for turn in turns:
            by_collection.setdefault(turn["collection"], set()).update(c["document_id"] for c in turn["citations"])
        current: dict[str, set[str] | None] = {}
        for collection, ids in by_collection.items():
            try:
                current[collection] = self._current_documents(collection, sorted(ids)) if self._current_documents else None
            except AssistantError:  # the collection was deleted or is damaged: say nothing rather than fail the conversation
                current[collection] = None
        for turn in turns:
            live = current[turn["collection"]]
            for citation in turn["citations"]:
                citation["changed"] = None if live is None else citation["document_id"] not in live

    def history(self, conversation_id: str, owner: str, max_turns: int) -> builtins.list[Turn]:
        """The last ``max_turns`` turns, oldest first: what a new question is read with."""
        self.get(conversation_id, owner)
        if max_turns <= 0:
            return []
        rows = self._read(
            "SELECT message, standalone, answer, collection FROM turns WHERE conversation = ? ORDER BY number DESC LIMIT ?",
            (conversation_id, max_turns),
        )
        return [Turn(*row) for row in reversed(rows)]

    @contextmanager
    def turn_lock(self, conversation_id: str, timeout: float | None = None) -> Iterator[None]:
        """Held around reading a conversation's history, answering and adding the turn, so two questions on it
        are answered one after the other, the second with the first in its history. ConversationBusy when the
        one before does not finish within ``timeout`` seconds. Locks are counted and dropped when unused, so
        the table does not grow with every conversation ever asked about."""
        with self._turn_locks_guard:
            lock, users = self._turn_locks.get(conversation_id, (threading.Lock(), 0))
            self._turn_locks[conversation_id] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=-1 if timeout is None else timeout):
                raise ConversationBusy(f"conversation {_shown(conversation_id)} is still answering another question; retry later")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._turn_locks_guard:
                lock, users = self._turn_locks[conversation_id]
                if users == 1:
                    del self._turn_locks[conversation_id]
                else:
                    self._turn_locks[conversation_id] = (lock, users - 1)


def _record(row: tuple) -> TurnRecord:
    number, message, standalone, answer, collection, version, citations, note, created = row
    return TurnRecord(number, message, standalone, answer, collection, version, tuple(json.loads(citations)), note, created)


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if len(title) > 200:
        raise UserError(f"a conversation's title has at most 200 characters, got {len(title)}")
    return title


class Exchange:
    """One question in a conversation, for the API and the command line. ``run(answer)`` reads the
    conversation's last ``history_turns`` turns, answers with them (``answer(history)`` is the pipeline's
    stream) and keeps the answer as the next turn, all under the conversation's turn lock; a new conversation
    (``conversation_id`` None) is created with its first kept answer. ``conversation_id`` is set before the
    Answer is yielded (None when a new conversation's first question was not kept)."""

    def __init__(
        self, store: ConversationStore, owner: str, conversation_id: str | None = None, *, history_turns: int, wait_s: float | None = None
    ):
        self.store = store
        self.owner = owner
        self.conversation_id = conversation_id
        self.history_turns = history_turns
        self.wait_s = wait_s

    def run(self, answer: Callable[[Sequence[Turn]], Iterable[str | Answer]]) -> Iterator[str | Answer]:
        from assistant.pipeline import Answer  # here: the pipeline imports Turn from this module

        with self._turn():
            history = self.store.history(self.conversation_id, self.owner, self.history_turns) if self.conversation_id else []
            for item in answer(history):
                if isinstance(item, Answer):
                    self.conversation_id = self.store.record(item, self.owner, self.conversation_id)
                yield item

    def _turn(self) -> AbstractContextManager[None]:
        if self.conversation_id is None:
            return nullcontext()  # nobody else knows a conversation that does not exist yet
        self.store.get(self.conversation_id, self.owner)  # an unknown id fails before waiting for the lock
        return self.store.turn_lock(self.conversation_id, self.wait_s)
