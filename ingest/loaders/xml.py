"""XML: MedQuAD question/answer files, or any other XML as its text.

MedQuAD comes in three layouts (checked on all 9 shared folders): ``<Document id source url>`` with
``<QAPairs><QAPair>`` (almost all files), ``<DiseaseFile fid source url>`` (one CDC file) and a lower-case
``<doc docid corpus url><qaPairs><pair><question>/<answer>`` (four NINDS files). Tag names are therefore
matched case-insensitively and the id/source attributes under each spelling.

Input is untrusted: the parser never fetches DTDs or external entities (no network, no file reads) and does
not expand entity declarations, so "billion laughs" files cannot blow up memory.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from core.errors import LoadError
from core.types import LoadedDocument

from .options import LoadOptions


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _name(element) -> str:
    return etree.QName(element).localname.lower() if isinstance(element.tag, str) else ""


def _child(element, *names: str):
    return next((c for c in element if _name(c) in names), None)


def _itertext(element):
    """Like ``itertext()``, but unexpanded entity references (left by resolve_entities=False) give no text;
    the text that follows them (their tail) is kept."""
    if element.text and isinstance(element.tag, str):
        yield element.text
    for child in element:
        if isinstance(child.tag, str):
            yield from _itertext(child)
        if child.tail:
            yield child.tail


def _text(element) -> str:
    return "".join(_itertext(element)).strip() if element is not None else ""


def _attr(element, *names: str) -> str | None:
    return next((element.get(n) for n in names if element.get(n) is not None), None)


def _medquad(path: Path, root, pairs) -> list[LoadedDocument]:
    common = {
        "url": _attr(root, "url"),
        "focus": _text(_child(root, "focus", "doctitle-focus")) or None,
        "medquad_id": _attr(root, "id", "docid", "fid"),
        "source_name": _attr(root, "source", "corpus"),
    }
    docs = []
    for pair in pairs:
        if _name(pair) not in ("qapair", "pair"):
            continue
        question, answer = _child(pair, "question"), _child(pair, "answer")
        answer_text = _text(answer)
        if not answer_text:
            continue  # three MedQuAD subsets had their answers removed for copyright; nothing to index
        question_text = " ".join(_text(question).split())
        docs.append(
            LoadedDocument(
                title=question_text or f"{path.stem} pair {pair.get('pid')}",
                text=answer_text,
                metadata={
                    **common,
                    "qid": question.get("qid") if question is not None else None,
                    "qtype": question.get("qtype") if question is not None else None,
                },
            )
        )
    if not docs:
        raise LoadError("no answered question/answer pairs")
    return docs


def _generic(path: Path, root) -> list[LoadedDocument]:
    text = "\n".join(s.strip() for s in _itertext(root) if s.strip())
    title_element = next(root.iter("{*}title", "{*}Title"), None)
    title = " ".join(_text(title_element).split())
    return [LoadedDocument(title=title if 0 < len(title) <= 300 else path.stem, text=text, metadata={})]


def load(path: Path, data: bytes, *, options: LoadOptions = LoadOptions()) -> list[LoadedDocument]:
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as err:
        raise LoadError(f"malformed XML: {err.msg or err}") from None
    if root is None:
        raise LoadError("no text")
    pairs = _child(root, "qapairs")
    if pairs is not None:
        return _medquad(path, root, pairs)
    return _generic(path, root)
