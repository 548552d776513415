"""Bytes to ``str`` for the text-like formats (plain text, Markdown, HTML, CSV, JSON).

One place decides what counts as text so every format reports the same reasons: UTF-8 with or without
a BOM, UTF-16/32 only with a BOM (without one they are indistinguishable from binary), and anything else
only through an encoding the user named. Guessing encodings silently would index mojibake.
"""

from __future__ import annotations

import codecs

from core.errors import LoadError

# UTF-32 LE must be tried before UTF-16 LE: its BOM (FF FE 00 00) starts with the UTF-16 LE one (FF FE).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

FALLBACK_SETTING = "ASSISTANT_INGEST__ENCODING_FALLBACK"


def decode_text(data: bytes, *, encoding_fallback: str | None = None, declared_encoding: str | None = None) -> str:
    """Decode ``data`` or raise ``LoadError`` saying why it is not text.

    ``declared_encoding`` is what the file says about itself (an HTML ``<meta charset>``); it is tried after
    UTF-8 because pages often declare Latin-1 while actually being UTF-8, and valid UTF-8 is rarely an
    accident. ``encoding_fallback`` is the user's setting, tried last.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as err:
                raise LoadError(f"not valid {encoding.upper()} despite its byte-order mark (offset {err.start + len(bom)})") from None
    if b"\x00" in data:
        raise LoadError("binary data, not text (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        utf8_error = err
    if declared_encoding:
        try:
            return data.decode(declared_encoding)
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong or unknown declaration is the file's problem; fall through to the user's setting
    bad = f"byte 0x{data[utf8_error.start]:02x} at offset {utf8_error.start}"
    if encoding_fallback:
        try:
            return data.decode(encoding_fallback)
        except LookupError:
            raise LoadError(f"unknown encoding {encoding_fallback!r} in {FALLBACK_SETTING}") from None
        except UnicodeDecodeError:
            raise LoadError(f"not valid UTF-8 ({bad}) and not valid {encoding_fallback} either") from None
    raise LoadError(f"not valid UTF-8 ({bad}); set {FALLBACK_SETTING}=cp1252 to read it as cp1252")
