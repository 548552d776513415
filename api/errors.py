"""HTTP status codes for the errors the assistant raises on purpose (shared by the handlers and the streams)."""

from __future__ import annotations

import errno

from core.errors import CollectionBusy, ConversationBusy, CorruptCollection, DiskFull, IngestFailed, NotFound, UserError
from generator.bounded import GeneratorBusy


def error_status(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """HTTP status, message and headers for an exception raised by the assistant."""
    from generator.openai_compat import BackendError

    if isinstance(exc, GeneratorBusy):
        return 503, str(exc), {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, NotFound):  # a collection, or a conversation (someone else's reads as unknown)
        return 404, str(exc), {}
    if isinstance(exc, (CollectionBusy, ConversationBusy)):
        return 409, str(exc), {"Retry-After": "5"}
    if isinstance(exc, UserError):
        return 400, str(exc), {}
    if isinstance(exc, CorruptCollection):
        return 503, f"{exc}; run `assistant check`", {}
    if isinstance(exc, BackendError):
        return 502, str(exc), {}
    if isinstance(exc, DiskFull):  # 507 Insufficient Storage: the write was rolled back, the rest keeps serving
        return 507, str(exc), {}
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507, "no space left on the server's disk; free space and retry (what was committed before is kept)", {}
    if isinstance(exc, IngestFailed):
        return 500, str(exc), {}
    return 500, "internal error; the server log has the details", {}
