"""Versions of a collection (core/collection/history.py): what the history costs on disk, and whether a rollback
and a read "as of" a version give back that version's search results and answers exactly.

    python bench/versions.py [--rounds 5] [--questions 30] [--answers 3] [--embedder all-MiniLM-L6-v2] [--json FILE]
    python bench/versions.py --embedder hash:384 --answers 0       # a quick run without the models

The collection: the MedQuAD sample (data/samples/medical/medquad, 97 files) copied to a temporary folder and
ingested: version A. Measured:
- disk of an unchanged collection: docs.sqlite after ``VACUUM`` with the history (its tables, columns, indexes and
  the ``versions`` rows), against a copy of the same database with all of that dropped and vacuumed. Then the
  folder is ingested again ``--noop`` times unchanged (no version is made: sizes must not move);
- --rounds rounds of changes, each one ingest (two files edited, one deleted, one new file: a version) and the
  disk after each, against keeping a full copy of the collection per version (the alternative a user has);
- exactness: the hybrid top 10 of --questions MedQuAD questions (data/eval/medical.jsonl) at version A, read as
  of A while the collection is at the last version (a copy rolled back, built once: its time is shown), then
  after ``rollback --to A`` on the collection itself: chunk ids, scores and texts must be identical for every
  question; and --answers questions answered by the embedded generator (greedy) at A and after the rollback:
  identical text and citations.
Exit status 0 when it ran, 1 when a target is missed (history of an unchanged collection >= 1 % of its disk, or
any result that differs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from assistant import compose  # noqa: E402
from assistant.pipeline import Assistant  # noqa: E402
from core.collection import Collection  # noqa: E402
from core.config import Settings  # noqa: E402

SAMPLE = REPO / "data" / "samples" / "medical" / "medquad"
QUESTIONS = REPO / "data" / "eval" / "medical.jsonl"
HISTORY_TABLES = ("versions", "documents_archive", "chunks_archive", "files_archive")


def db_bytes(folder: Path) -> int:
    """docs.sqlite's size once vacuumed (so free pages do not count), plus the FAISS file."""
    with sqlite3.connect(folder / "docs.sqlite") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
    return (folder / "docs.sqlite").stat().st_size + (folder / "vectors.faiss").stat().st_size


def without_history_bytes(folder: Path, scratch: Path) -> int:
    """The same collection with everything history adds dropped: what it would take without versions."""
    copy = scratch / "nohistory.sqlite"
    copy.unlink(missing_ok=True)
    with sqlite3.connect(folder / "docs.sqlite") as db:
        db.execute("VACUUM INTO ?", (str(copy),))
    db = sqlite3.connect(copy)
    for table in HISTORY_TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    db.execute("ALTER TABLE documents DROP COLUMN added_gen")
    db.execute("ALTER TABLE files DROP COLUMN added_gen")
    db.execute("DELETE FROM meta WHERE key IN ('history_since', 'pruned_before')")
    db.commit()
    db.execute("VACUUM")
    db.close()
    return copy.stat().st_size + (folder / "vectors.faiss").stat().st_size


def ingest(settings: Settings, path: Path, docs: Path) -> int:
    ingestor = compose.ingestor(settings, path, compose.embedder(settings), name="medical", progress=False)
    with ingestor.collection:
        ingestor.ingest([docs])
    with Collection.open(path) as c:
        return c.version


def change(docs: Path, round_: int) -> None:
    files = sorted(docs.rglob("*.xml"))
    for f in files[round_ * 3 : round_ * 3 + 2]:
        f.write_text(f.read_text(encoding="utf-8").replace("</Answer>", f" Reviewed in round {round_}.</Answer>", 1), encoding="utf-8")
    files[round_ * 3 + 2].unlink()
    (docs / f"note-{round_}.txt").write_text(
        f"Clinic note {round_}: flu vaccines are offered every autumn to adults over 65.", encoding="utf-8"
    )


def top10(assistant: Assistant, questions: list[str], as_of: int | None) -> list[list[tuple]]:
    retriever = assistant.retriever("medical", as_of)
    return [[(h.chunk_id, round(h.score, 6), h.text) for h in retriever.search(q, 10).hits] for q in questions]


def answers(assistant: Assistant, questions: list[str], as_of: int | None = None) -> list[tuple]:
    out = []
    for q in questions:
        a = assistant.ask(q, "medical", as_of=as_of) if as_of is not None else assistant.ask(q, "medical")
        out.append((a.text, [s.chunk_id for s in a.citations], a.collection_version))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--noop", type=int, default=3)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--answers", type=int, default=3)
    parser.add_argument("--embedder", default=None, help="ASSISTANT_EMBEDDER__MODEL (default: the configured one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-versions-"))
    try:
        docs = scratch / "medquad"
        shutil.copytree(SAMPLE, docs)
        overrides = {"index_dir": scratch / "indexes", "guardrails": {"audit_log": scratch / "audit.jsonl"}}
        if args.embedder:
            overrides["embedder"] = {"model": args.embedder}
        settings = Settings(**overrides)
        path = scratch / "indexes" / "medical"
        questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines()[: args.questions]]

        a = ingest(settings, path, docs)
        with_history, without = db_bytes(path), without_history_bytes(path, scratch)
        for _ in range(args.noop):
            ingest(settings, path, docs)
        after_noop = db_bytes(path)
        with Collection.open(path) as c:
            listed_after_noop = len(c.versions())
        rows = [("A (ingest)", a, with_history, without)]
        for r in range(args.rounds):
            change(docs, r)
            rows.append((f"round {r + 1}", ingest(settings, path, docs), db_bytes(path), None))
        last = rows[-1][1]

        with Assistant(settings) as assistant:
            # Read version A now, as of A (a copy rolled back), then roll the collection itself back and compare;
            # a collection built afresh from version A's files is the reference for both (below).
            started = time.perf_counter()
            as_of = top10(assistant, questions, a)
            as_of_s = time.perf_counter() - started
            answered_as_of = answers(assistant, questions[: args.answers], a) if args.answers else []
        with Collection.open(path, writable=True) as c:
            started = time.perf_counter()
            c.rollback(a)
            rollback_s = time.perf_counter() - started
        with Assistant(settings) as assistant:
            rolled = top10(assistant, questions, None)
            answered_rolled = answers(assistant, questions[: args.answers]) if args.answers else []

        # The reference: version A built afresh from the sample as it was (a collection that never changed).
        fresh_settings = settings.model_copy(update={"index_dir": scratch / "fresh"})
        ingest(fresh_settings, scratch / "fresh" / "medical", SAMPLE)
        with Assistant(fresh_settings) as assistant:
            at_a = top10(assistant, questions, None)
            answered_fresh = answers(assistant, questions[: args.answers]) if args.answers else []

        def same_texts(x: list[list[tuple]], y: list[list[tuple]]) -> int:
            return sum([(s, t) for _, s, t in p] == [(s, t) for _, s, t in q] for p, q in zip(x, y))

        identical_as_of = sum(p == q for p, q in zip(as_of, rolled))
        same_as_fresh = same_texts(rolled, at_a)
        answers_equal = sum(p[:2] == q[:2] for p, q in zip(answered_as_of, answered_rolled))
        answers_fresh = sum(p[0] == q[0] for p, q in zip(answered_rolled, answered_fresh))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    overhead = with_history / without - 1
    print(f"\nMedQuAD sample ({len(list(SAMPLE.rglob('*.xml')))} files), embedder {settings.embedder.model}\n")
    print("| version | made by | disk (DB + index) | a full copy per version |")
    print("|---|---|---:|---:|")
    for i, (label, version, size, _) in enumerate(rows):
        print(f"| {version} | {label} | {size / 1e6:.2f} MB | {without * (i + 1) / 1e6:.2f} MB |")
    print(f"\nUnchanged collection: {with_history:,} B with history, {without:,} B without: +{overhead * 100:.2f} % (target < 1 %)")
    print(f"{args.noop} unchanged ingests: {after_noop:,} B afterwards, {listed_after_noop} version(s) listed")
    print(f"History after {args.rounds} versions of changes: +{(rows[-1][2] - with_history) / 1e6:.3f} MB over version A")
    print(f"\nRead as of version {a} (collection at {last}): first read {as_of_s:.1f} s (copy rolled back and indexed)")
    print(f"rollback --to {a}: {rollback_s:.2f} s")
    print(f"Top 10 as of A == top 10 after rollback (ids, scores, texts): {identical_as_of}/{len(questions)}")
    print(f"Top 10 after rollback == a collection built afresh from version A's files (scores, texts): {same_as_fresh}/{len(questions)}")
    if args.answers:
        print(f"Answers as of A == answers after rollback (text, citations): {answers_equal}/{args.answers}")
        print(f"Answers after rollback == answers from the fresh build (text): {answers_fresh}/{args.answers}")
    ok = overhead < 0.01 and identical_as_of == len(questions) and after_noop <= with_history and answers_equal == args.answers
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "overhead": overhead,
                    "identical_as_of": identical_as_of,
                    "same_as_fresh": same_as_fresh,
                    "answers_equal": answers_equal,
                    "answers_fresh": answers_fresh,
                    "rollback_s": rollback_s,
                    "as_of_s": as_of_s,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
