"""Request and response bodies of the HTTP API (they are its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FilterValue = str | int | float | bool | list[str | int | float | bool]
Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="A collection under ASSISTANT_INDEX_DIR.")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 422, not silently ignored


class AskRequest(Strict):
    question: str = Field(min_length=1, max_length=4000, pattern=r"\S")
    collection: str = Name
    k: int = Field(5, ge=1, le=50, description="Passages retrieved and given to the model.")
    filters: dict[str, FilterValue] | None = Field(None, description="source, document_id or a metadata key -> value or any-of list.")
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    dense_weight: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    as_of: int | None = Field(
        None,
        ge=0,
        description="Answer from the collection as it was at this version (a `collection_version` an earlier answer reported; "
        "`GET /v1/collections/{name}/versions` lists them). 404 when that version is no longer kept.",
    )
    conversation_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Continue this conversation of yours: its last turns are the question's history, and the answer becomes its next "
        "turn. Unset: a new conversation is started (its id is in the response).",
    )


class Passage(BaseModel):
    number: int = Field(description="The [n] the answer cites it by.")
    chunk_id: int
    document_id: str
    title: str
    source: str
    snippet: str
    start: int = Field(description="Character span of the passage in its document.")
    end: int
    score: float
    flags: list[str] = Field(description="Ingest-rail rules that flagged the passage (it addresses the model).")
    # Defaults: turns stored before these fields existed lack them.
    ingested_at: str = Field("", description="When the version of the document cited here was ingested (its content hash: document_id).")
    page: int | None = Field(None, description="The page the passage starts on, for paged documents (PDF, scanned pages).")


class StoredPassage(Passage):
    changed: bool | None = Field(
        None,
        description="Its document was replaced or removed since the answer (the passage is from the version ingested at "
        "`ingested_at`); null: unknown (the collection cannot be opened).",
    )


class GuardEventOut(BaseModel):
    rule_id: str
    stage: str
    action: str
    category: str
    message: str
    span: list[int] | None = None


class Operand(BaseModel):
    row: str = Field(description="The row label of the cell.")
    column: str = Field(description="The column header of the cell.")
    text: str = Field(description="The cell as the table writes it.")
    value: float = Field(description="The number it states, signed (accounting parentheses are negative).")
    unit: str = Field(description='"%", a currency symbol, or "".')
    passage: int | None = Field(description="The passage ([n]) whose text shows the cell's row.")


class ComputationOut(BaseModel):
    operation: str = Field(description="change, pct_change, average, sum, share, ratio or count.")
    program: str = Field(description='The program run, e.g. "pct_change({Revenue | 2018}, {Revenue | 2019})".')
    operands: list[Operand] = Field(description="The cells it read, each cited to a passage.")
    value: float | None = Field(description="The result; null when the computation failed.")
    result: str = Field(description='The result as the answer states it, e.g. "12.14%" or "$162 million".')
    work: str = Field(description='The arithmetic with the values, e.g. "(1,496 - 1,334) / 1,334 * 100 = 12.14%".')
    error: str | None = Field(description="Why the computation failed (a division by zero), in words.")


class AskResponse(BaseModel):
    answer: str = Field(description="The checked answer to show (after the output rails).")
    question: str = Field(description="The question as answered (personal data redacted).")
    standalone: str = Field(
        description='The question searched: in a conversation, a follow-up made standalone ("How is glaucoma treated?" for "How is it treated?").'
    )
    rewritten: bool = Field(description="Whether `standalone` is a rewrite of the question (false: searched as written).")
    history_cut: int = Field(description="Earlier turns of the conversation left out of what the model read (the history limit).")
    collection: str
    citations: list[Passage] = Field(description="The passages the answer cites, in order of first citation.")
    sources: list[Passage] = Field(description="Every passage the model was given.")
    cited: list[int] = Field(description="The passage numbers the answer cites, in order of first citation.")
    invalid_citations: list[int] = Field(description="Numbers the model cited that match no passage (removed from the answer).")
    answerable: bool = Field(description="Whether the documents answer the question (false: the answer says why, as `reason`).")
    answerability: float = Field(description="The answerability check's probability that the passages answer the question.")
    reason: str | None = Field(description='Why the documents do not answer it, e.g. "The documents do not mention Tesla."')
    computation: ComputationOut | None = Field(
        description="Set when the question was answered by arithmetic in code over table cells (finish_reason `computed`)."
    )
    finish_reason: str
    blocked: bool
    relevant: bool
    relevance: float
    guard_events: list[GuardEventOut]
    raw_text: str = Field(description="The text as the model generated (and streamed) it, before the output rails.")
    tokens: int = Field(description="Tokens generated.")
    prompt_tokens: int = Field(description="Tokens of the prompt the model read.")
    generator: str
    collection_version: int
    timings_ms: dict[str, float]


class AskInConversation(AskResponse):
    conversation_id: str | None = Field(
        description="The conversation the answer was kept in: send it back to ask a follow-up. Null when a new conversation's "
        "first question was refused by the input rails or abandoned by the client (nothing is kept then)."
    )


class Conversation(BaseModel):
    id: str
    title: str = Field(description="From the first question, until renamed.")
    collection: str = Field(description="The collection its last turn was answered from.")
    created: str
    updated: str
    turn_count: int = Field(description="Turns stored (at most ASSISTANT_CONVERSATION__MAX_TURNS, the oldest dropped beyond).")


class ConversationTurn(BaseModel):
    number: int = Field(description="1 for the first turn; numbers stay when old turns are dropped.")
    message: str = Field(description="The question as asked (personal data redacted).")
    standalone: str = Field(description="The question searched: the message made standalone from the turns before it.")
    answer: str = Field(description="The checked answer shown.")
    collection: str
    collection_version: int
    citations: list[StoredPassage] = Field(description="The passages the answer cites.")
    note: str | None = Field(description='What changed with this turn, e.g. "switched collection from medical to finance".')
    created: str


class ConversationDetail(Conversation):
    turns: list[ConversationTurn] = Field(description="Oldest first.")


class RenameConversation(Strict):
    title: str = Field(min_length=1, max_length=200, pattern=r"\S")


class ConversationDeleted(BaseModel):
    id: str
    turns_removed: int


class Hit(BaseModel):
    rank: int = Field(description="1 for the best hit.")
    chunk_id: int
    document_id: str
    title: str
    source: str
    snippet: str
    start: int
    end: int
    score: float
    scores: dict[str, float]
    flags: list[str]
    metadata: dict[str, Any]
    ingested_at: str = Field(description="When this version of the document was ingested.")
    page: int | None = Field(description="The page the passage starts on, for paged documents.")


class SearchResponse(BaseModel):
    query: str
    collection: str
    hits: list[Hit]
    relevant: bool
    relevance: float
    collection_version: int
    timings_ms: dict[str, float]


class Chunking(BaseModel):
    splitter: str
    chunk_tokens: int
    overlap_tokens: int
    embed_title: bool


class CollectionInfo(BaseModel):
    name: str
    documents: int
    chunks: int
    files: int
    embedder: str
    dim: int
    index_kind: str
    version: int
    chunking: Chunking
    format_version: int
    created_at: str
    updated_at: str


class FileAdded(BaseModel):
    file: str
    size_bytes: int
    note: str | None = Field(
        None, description='A remark on a file that was read: "pages 4, 9 of 12 gave no text (blank, or unreadable by OCR)".'
    )


class FileSkipped(BaseModel):
    file: str
    reason: str


class UploadResponse(BaseModel):
    collection: str
    files: list[FileAdded] = Field(description="Files received and read.")
    skipped: list[FileSkipped] = Field(description="Files refused or unreadable, with the reason; the rest were ingested.")
    documents_added: int
    documents_removed: int
    documents_unchanged: int
    chunks_added: int
    chunks_flagged: int
    totals: dict[str, int]
    collection_version: int


class DeleteResponse(BaseModel):
    collection: str
    document_id: str
    documents_removed: int
    chunks_removed: int
    collection_version: int


class CollectionVersion(BaseModel):
    version: int = Field(description="The collection_version answers and searches report at that point.")
    created_at: str
    operation: str = Field(description='What made it: "ingest", "upload", "delete ...", "rollback to N".')
    documents: int
    chunks: int
    files: int
    added: int = Field(description="Documents added since the version listed before it.")
    removed: int = Field(description="Documents removed (or replaced by a new version) since the version listed before it.")


class VersionHistory(BaseModel):
    collection: str
    version: int = Field(description="The current version.")
    oldest_kept: int = Field(description="Versions from this one to the current can be restored or read (`as_of`); -1: no history yet.")
    versions: list[CollectionVersion] = Field(description="The listed versions, newest first.")


class RollbackRequest(Strict):
    to: int = Field(ge=0, description="The version to go back to.")


class RollbackResponse(BaseModel):
    collection: str
    to: int
    version: int = Field(description="The new version the rollback was recorded as (the versions in between stay kept).")
    documents_restored: int
    chunks_restored: int
    documents_removed: int
    chunks_removed: int
    totals: dict[str, int]


class Error(BaseModel):
    detail: str


# --- OpenAI-compatible ------------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send name, tool_calls, ... which we ignore
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI clients send options we do not use (n=1, user, seed, ...)
    model: str = Field(min_length=1, max_length=64, description="A collection name: the model answers from that collection.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    n: int | None = Field(None, ge=1, le=1, description="Only 1 is supported.")


class ChatChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ChatChoiceMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    citations: list[Passage] = Field(description="Extra field: the cited passages.")
    guard_events: list[GuardEventOut] = Field(description="Extra field: the guardrail decisions.")
    computation: ComputationOut | None = Field(description="Extra field: the computation, when the answer is one.")


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


# Error responses shown in the OpenAPI schema, per route.
ERRORS: dict[int | str, dict] = {
    400: {"model": Error},
    401: {"model": Error},
    404: {"model": Error},
    422: {"model": Error},
    429: {"model": Error},
}
BUSY: dict[int | str, dict] = {503: {"model": Error, "description": "Generation queue full; retry after Retry-After seconds"}}
CONVERSATION_BUSY: dict[int | str, dict] = {
    409: {"model": Error, "description": "The conversation is still answering an earlier question; retry after Retry-After seconds"}
}
