"""Ingest benchmark: our pipeline vs LangChain's FAISS vector store on the same chunks and model.

    python bench/ingest.py --data ../shared/data/medquad [--limit-files N] [--repeat N] [--json]

1. ours: `assistant ingest` of every MedQuAD folder into a fresh collection (load XML, clean, chunk with
   the model's tokenizer, embed, write SQLite + FTS5 + FAISS). Seconds exclude the one-off model load.
2. LangChain: the very chunks we stored (the same embedding inputs, title included) through
   HuggingFaceEmbeddings with the same local model and FAISS.from_texts: embedding + index only, so
   LangChain does strictly less work than we do.
3. re-ingest: `assistant ingest` of the same, unchanged files again.

Each step runs in its own process so peak memory (max RSS) is that step's alone. With --repeat N every
step runs N times (a fresh collection each time) and the table shows medians: machines are noisy. Needs the `bench`
extra (`pip install -e .[bench]`) for LangChain; skips with a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "medquad"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker_ours(index_dir: str, paths: list[str]) -> dict:
    """Run the real CLI in-process (so the peak RSS is this process's) and return its --json summary."""
    os.environ["ASSISTANT_INDEX_DIR"] = index_dir
    sys.path.insert(0, str(REPO))
    from cli import main

    buffer = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        main(["ingest", *paths, "--collection", "bench", "--json", "--quiet"])
    summary = json.loads(buffer.getvalue())
    return {
        "documents": summary["totals"]["documents"],
        "chunks": summary["chunks_added"],
        "embedded": summary["chunks_embedded"],
        "seconds": summary["seconds"],
        "wall_seconds": time.perf_counter() - started,
        "skipped": len(summary["skipped"]),
        "peak_rss_mb": _peak_rss_mb(),
    }


def worker_langchain(index_dir: str) -> dict:
    from langchain_community.vectorstores import FAISS
    from langchain_huggingface import HuggingFaceEmbeddings

    sys.path.insert(0, str(REPO))
    from core.embedding.sentence_transformer import embedded_model_path
    from ingest.chunking import embedding_input

    db = sqlite3.connect(Path(index_dir) / "bench" / "docs.sqlite")
    manifest = json.loads((Path(index_dir) / "bench" / "manifest.json").read_text())
    rows = db.execute("SELECT d.title, c.text, d.source, d.pk FROM chunks c JOIN documents d ON d.pk = c.doc_pk ORDER BY c.id").fetchall()
    embed_title = manifest["chunking"]["embed_title"]
    texts = [embedding_input(title, text, embed_title) for title, text, _, _ in rows]
    metadatas = [{"source": source} for _, _, source, _ in rows]
    started = time.perf_counter()
    embeddings = HuggingFaceEmbeddings(model_name=embedded_model_path(manifest["embedder"]["name"]) or manifest["embedder"]["name"])
    loaded = time.perf_counter()
    store = FAISS.from_texts(texts, embeddings, metadatas=metadatas)
    done = time.perf_counter()
    assert store.index.ntotal == len(texts)
    return {
        "documents": len({pk for *_, pk in rows}),
        "chunks": len(texts),
        "seconds": done - loaded,
        "wall_seconds": done - started,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"worker {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(results: list[dict]) -> dict:
    """Field-wise median over repeated runs (counts are identical across runs)."""
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MedQuAD folder (default: ../shared/data/medquad)")
    parser.add_argument("--limit-files", type=int, default=0, help="use N XML files spread evenly over all folders (0: all)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the table shows medians")
    parser.add_argument("--skip-langchain", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        kind, index_dir, *paths = args.worker
        result = worker_ours(index_dir, paths) if kind == "ours" else worker_langchain(index_dir)
        print(json.dumps(result))
        return

    if not args.data.is_dir():
        print(f"skipped: MedQuAD folder not found at {args.data} (pass --data PATH)", file=sys.stderr)
        return
    files = sorted(str(p) for p in args.data.glob("*/*.xml"))
    if args.limit_files:
        step = max(1, len(files) // args.limit_files)  # every step-th file: all folders represented
        files = files[::step][: args.limit_files]
    # Pass folders when using everything (short command line), files when limited.
    targets = sorted(str(p) for p in args.data.iterdir() if p.is_dir()) if not args.limit_files else files
    runs: dict[str, list[dict]] = {"ours": [], "reingest": [], "langchain": []}
    for _ in range(max(1, args.repeat)):
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as index_dir:
            runs["ours"].append(_run_worker("ours", index_dir, *targets))
            runs["reingest"].append(_run_worker("ours", index_dir, *targets))
            if not args.skip_langchain:
                runs["langchain"].append(_run_worker("langchain", index_dir))
    ours, again = _median(runs["ours"]), _median(runs["reingest"])
    lang = _median(runs["langchain"]) if runs["langchain"] else None
    results = {
        "files": len(files),
        "repeat": max(1, args.repeat),
        "ours": ours,
        "reingest": again,
        "langchain": lang,
        "speed_ratio": (ours["chunks"] / ours["seconds"]) / (lang["chunks"] / lang["seconds"]) if lang else None,
        "reingest_fraction": again["seconds"] / ours["seconds"],
        "runs": runs,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    rows = [("ours: load+clean+chunk+embed+store", ours)]
    if lang:
        rows.append(("LangChain: embed+FAISS, same chunks", lang))
    rows.append(("ours: re-ingest, files unchanged", again))
    print(f"MedQuAD: {len(files)} XML files from {args.data}; median of {results['repeat']} run(s)\n")
    print("| pipeline | documents | chunks | seconds | chunks/s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, r in rows:
        rate = r["chunks"] / r["seconds"] if r["chunks"] and r["seconds"] else 0.0
        print(f"| {label} | {r['documents']} | {r['chunks']} | {r['seconds']:.1f} | {rate:.1f} | {r['peak_rss_mb']:.0f} |")
    print()
    if lang:
        print(f"speed ratio ours / LangChain (chunks/s): {results['speed_ratio']:.2f}  (target >= 1.0)")
    print(f"re-ingest time / first ingest time:       {results['reingest_fraction'] * 100:.1f}%  (target < 5%)")


if __name__ == "__main__":
    main()
