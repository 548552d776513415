"""Errors shared by every layer.

``UserError`` is a mistake the user can fix (bad path, wrong setting, unknown collection): the CLI prints
its message on one line and exits 2, the API maps it to a 4xx. Anything else is a bug and keeps its traceback.
"""


class AssistantError(Exception):
    """Base class for errors this project raises on purpose."""


class UserError(AssistantError):
    """A mistake in what the user asked for; the message says how to fix it."""


class NotFound(UserError):
    """What was named does not exist (or is not the caller's to see): a 404 in the API."""


class CollectionNotFound(NotFound):
    pass


class VersionNotKept(NotFound):
    """A collection version older than its kept history, or newer than the collection."""


class ConversationNotFound(NotFound):
    """No conversation with that id for this owner: someone else's is reported the same way as an unknown one."""


class CollectionMismatch(UserError):
    """The collection on disk was built with other embedder or chunking settings than the current ones."""


class CollectionBusy(UserError):
    """Another process holds the collection's write lock."""


class ConversationBusy(UserError):
    """Another question on the same conversation did not finish in time (they are answered one at a time)."""


class DiskFull(AssistantError):
    """The disk holding a collection is full (SQLite's SQLITE_FULL): the write was rolled back whole, what was
    committed before stays; free space and run it again. (A file write's own ENOSPC stays an OSError; the API
    answers both with 507, the CLI with one line and exit 1.)"""


class IngestFailed(AssistantError):
    """An ingest stopped on an unexpected error (a model that failed, ...): what was committed before it is
    kept and whole, the rest is not stored; the message names the error, the log has its traceback."""


class CorruptCollection(AssistantError):
    """The files of a collection are unreadable or disagree in a way that cannot be repaired automatically."""


class LoadError(AssistantError):
    """A file could not be turned into documents; ``reason`` is shown to the user and the file is skipped."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
