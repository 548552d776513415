#!/usr/bin/env python3
"""Build the small sample corpora shipped in ``data/samples/`` from the shared data folder.

    python scripts/build_samples.py --shared ../shared/data --out data/samples

What it writes (and nothing else):

* ``<out>/medical/medquad/<folder>/<file>.xml`` -- whole MedQuAD XML files, copied byte for byte, drawn
  evenly from each of the 9 answered MedQuAD folders until each folder's quota of answered QA pairs is met.
* ``<out>/medical/LICENSE.txt`` (copied) and ``<out>/medical/ATTRIBUTION.md`` (generated).
* ``<out>/finance/tatqa_sample.json`` -- TAT-QA report objects (table + paragraphs + questions) taken
  unchanged from the evaluation part (last 20 %, by file order) of ``tatqa_dataset_dev.json``.
* ``<out>/finance/LICENSE`` (copied) and ``<out>/finance/ATTRIBUTION.md`` (generated).
* ``<out>/MANIFEST.json`` -- every file above with its sha256 and counts.

The build is deterministic: sorted traversal, no randomness, no timestamps, so the same input gives
byte-identical output. ``financial-qa-10k`` (no declared licence) is never read.

Only the standard library is used, so it runs from any Python >= 3.10.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "samples"

# --- selection parameters (change them and the samples change; keep tests in step) -------------------
MEDQUAD_FOLDERS = (
    "1_CancerGov_QA",
    "2_GARD_QA",
    "3_GHR_QA",
    "4_MPlus_Health_Topics_QA",
    "5_NIDDK_QA",
    "6_NINDS_QA",
    "7_SeniorHealth_QA",
    "8_NHLBI_QA_XML",
    "9_CDC_QA",
)
MEDQUAD_TARGET_PAIRS = 300  # split evenly over the 9 folders (first folders take the remainder)
TATQA_TARGET_REPORTS = 40
TATQA_TRAIN_FRACTION = 0.8  # reports [0, int(0.8 * N)) are reserved for fine-tuning; never shipped here
FORBIDDEN_SOURCES = ("financial-qa-10k",)  # no declared licence: must never be copied into the repo

CC_BY_4_URL = "https://creativecommons.org/licenses/by/4.0/"
SCRIPT_NAME = "scripts/build_samples.py"


class BuildError(Exception):
    """A problem with the input; reported as one line with exit status 2."""


# --- helpers ------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def check_source(path: Path) -> None:
    if any(part in FORBIDDEN_SOURCES for part in path.parts):
        raise BuildError(f"refusing to read {path}: financial-qa-10k has no licence and is never copied")


def read_source(path: Path) -> bytes:
    check_source(path)
    return path.read_bytes()


# --- MedQuAD ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MedquadFile:
    path: Path
    folder: str
    pairs: int  # all <QAPair> elements
    answered: int  # <QAPair> whose <Answer> has non-whitespace text
    longest_answer: int  # characters in the longest answer


def scan_medquad_file(path: Path, folder: str) -> MedquadFile:
    try:
        root = ET.fromstring(read_source(path))
    except ET.ParseError as exc:
        raise BuildError(f"cannot parse MedQuAD file {path}: {exc}") from exc
    answers = [(qa.findtext("Answer") or "").strip() for qa in root.iter("QAPair")]
    answered = [a for a in answers if a]
    return MedquadFile(
        path=path,
        folder=folder,
        pairs=len(answers),
        answered=len(answered),
        longest_answer=max((len(a) for a in answered), default=0),
    )


def folder_quotas(total: int, folders: tuple[str, ...]) -> dict[str, int]:
    base, extra = divmod(total, len(folders))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(folders)}


def select_medquad_folder(files: list[MedquadFile], quota: int) -> list[MedquadFile]:
    """Pick files from one folder, spread evenly over its sorted file list, until ``quota`` answered pairs.

    Candidates: files in which every QAPair is answered (at least one), and whose longest answer is no
    longer than the folder's median longest answer (prefer answers that are not enormous). Candidates are
    visited with a stride chosen so that the expected number of files spans the whole folder:
    c[0], c[s], c[2s], ..., then c[1], c[1+s], ... (a fixed permutation, no randomness).
    """
    complete = [f for f in files if f.answered > 0 and f.answered == f.pairs]
    if not complete:
        return []
    longest = sorted(f.longest_answer for f in complete)
    cap = longest[(len(longest) - 1) // 2]  # lower median
    candidates = [f for f in complete if f.longest_answer <= cap]
    per_file = sorted(f.answered for f in candidates)[(len(candidates) - 1) // 2]
    files_needed = max(1, math.ceil(quota / max(1, per_file)))
    stride = max(1, len(candidates) // files_needed)
    order = [candidates[i] for offset in range(stride) for i in range(offset, len(candidates), stride)]
    chosen: list[MedquadFile] = []
    count = 0
    for f in order:
        if count >= quota:
            break
        chosen.append(f)
        count += f.answered
    return sorted(chosen, key=lambda f: f.path.name)


def build_medquad(shared: Path, out: Path) -> tuple[list[dict], dict]:
    src_root = shared / "medquad"
    if not src_root.is_dir():
        raise BuildError(f"MedQuAD folder not found: {src_root}")
    quotas = folder_quotas(MEDQUAD_TARGET_PAIRS, MEDQUAD_FOLDERS)
    dest_root = out / "medical" / "medquad"
    if dest_root.exists():
        shutil.rmtree(dest_root)  # generated tree: rebuilt from scratch so no stale file survives

    entries: list[dict] = []
    per_folder: dict[str, dict] = {}
    for folder in MEDQUAD_FOLDERS:
        src_dir = src_root / folder
        if not src_dir.is_dir():
            raise BuildError(f"MedQuAD folder not found: {src_dir}")
        files = [scan_medquad_file(p, folder) for p in sorted(src_dir.glob("*.xml"))]
        chosen = select_medquad_folder(files, quotas[folder])
        if not chosen:
            raise BuildError(f"no answered QA pairs found in {src_dir}")
        for f in chosen:
            data = read_source(f.path)
            rel = Path("medical") / "medquad" / folder / f.path.name
            write_bytes(out / rel, data)
            entries.append(
                {
                    "path": rel.as_posix(),
                    "source": f"medquad/{folder}/{f.path.name}",
                    "sha256": sha256_bytes(data),
                    "bytes": len(data),
                    "qa_pairs": f.pairs,
                    "answered_pairs": f.answered,
                }
            )
        per_folder[folder] = {
            "files": len(chosen),
            "answered_pairs": sum(f.answered for f in chosen),
            "source_files": len(files),
        }

    summary = {
        "source": "MedQuAD (github.com/abachaa/MedQuAD)",
        "licence": "CC BY 4.0",
        "files": len(entries),
        "qa_pairs": sum(e["qa_pairs"] for e in entries),
        "answered_pairs": sum(e["answered_pairs"] for e in entries),
        "bytes": sum(e["bytes"] for e in entries),
        "per_folder": per_folder,
    }

    licence = read_source(src_root / "LICENSE.txt")
    write_bytes(out / "medical" / "LICENSE.txt", licence)
    write_text(out / "medical" / "ATTRIBUTION.md", medquad_attribution(summary))
    return entries, summary


def medquad_attribution(summary: dict) -> str:
    folders = "\n".join(f"| `{name}` | {info['files']} | {info['answered_pairs']} |" for name, info in summary["per_folder"].items())
    return f"""# Attribution: MedQuAD sample

The files under `medquad/` are a subset of **MedQuAD: Medical Question Answering Dataset**.

- **Source:** https://github.com/abachaa/MedQuAD (commit `577bd37b96c02d1833b2c9eed2de9f96964e96cb`).
  The answers were collected by the authors from U.S. National Institutes of Health websites
  (cancer.gov, GARD, Genetics Home Reference, MedlinePlus Health Topics, NIDDK, NINDS, NIHSeniorHealth,
  NHLBI, CDC); each XML file names its source site and page URL in its `<Document>` element.
- **Authors:** Asma Ben Abacha and Dina Demner-Fushman.
- **Citation:** Asma Ben Abacha and Dina Demner-Fushman. "A Question-Entailment Approach to Question
  Answering". BMC Bioinformatics 20(1):511, 2019.
  https://bmcbioinformatics.biomedcentral.com/articles/10.1186/s12859-019-3119-4
- **Licence:** Creative Commons Attribution 4.0 International (CC BY 4.0), {CC_BY_4_URL}
  The full licence text, as shipped with MedQuAD, is in `LICENSE.txt` next to this file. The material is
  provided as-is, without warranties of any kind (see Section 5 of the licence).
- **Changes:** a subset of {summary["files"]} files ({summary["answered_pairs"]} answered QA pairs) selected
  by `{SCRIPT_NAME}`; files unchanged (copied byte for byte, under their original folder and file names).

| folder | files | answered QA pairs |
|---|---|---|
{folders}

This sample is for demonstrating and testing the software; it is not medical advice.
"""


# --- TAT-QA -------------------------------------------------------------------------------------------


def evaluation_indices(n_reports: int) -> list[int]:
    """Indices of the shipped reports: evenly spread over the last 20 % (by file order), in order."""
    start = int(TATQA_TRAIN_FRACTION * n_reports)
    pool = n_reports - start
    if pool <= TATQA_TARGET_REPORTS:
        return list(range(start, n_reports))
    return [start + (i * pool) // TATQA_TARGET_REPORTS for i in range(TATQA_TARGET_REPORTS)]


def build_tatqa(shared: Path, out: Path) -> tuple[list[dict], dict]:
    src_root = shared / "tatqa"
    src = src_root / "tatqa_dataset_dev.json"
    if not src.is_file():
        raise BuildError(f"TAT-QA file not found: {src}")
    raw = read_source(src)
    try:
        reports = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuildError(f"cannot parse {src}: {exc}") from exc
    if not isinstance(reports, list) or not reports:
        raise BuildError(f"{src} is not a non-empty JSON list of reports")

    indices = evaluation_indices(len(reports))
    sample = [reports[i] for i in indices]  # objects unchanged (json keeps key order)
    text = json.dumps(sample, indent=2, ensure_ascii=False) + "\n"
    data = text.encode("utf-8")
    rel = Path("finance") / "tatqa_sample.json"
    write_bytes(out / rel, data)

    questions = sum(len(r.get("questions", [])) for r in sample)
    entry = {
        "path": rel.as_posix(),
        "source": "tatqa/tatqa_dataset_dev.json",
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "reports": len(sample),
        "questions": questions,
    }
    summary = {
        "source": "TAT-QA dev split (github.com/NExTplusplus/TAT-QA)",
        "licence": "CC BY 4.0 (data)",
        "source_sha256": sha256_bytes(raw),
        "source_reports": len(reports),
        "evaluation_start_index": int(TATQA_TRAIN_FRACTION * len(reports)),
        "source_indices": indices,
        "table_uids": [r.get("table", {}).get("uid") for r in sample],
        "reports": len(sample),
        "questions": questions,
        "bytes": len(data),
    }

    licence = read_source(src_root / "LICENSE")
    write_bytes(out / "finance" / "LICENSE", licence)
    write_text(out / "finance" / "ATTRIBUTION.md", tatqa_attribution(summary))
    return [entry], summary


def tatqa_attribution(summary: dict) -> str:
    return f"""# Attribution: TAT-QA sample

`tatqa_sample.json` is a subset of **TAT-QA** (Tabular And Textual dataset for Question Answering), a
question-answering benchmark over tables and paragraphs from real-world financial reports.

- **Source:** https://github.com/NExTplusplus/TAT-QA (commit `870accc41953dcde885aabeb963d94aabdc0fbc3`),
  file `dataset_raw/tatqa_dataset_dev.json` (the dev split). Website: https://nextplusplus.github.io/TAT-QA/
- **Authors:** Fengbin Zhu, Wenqiang Lei, Youcheng Huang, Chao Wang, Shuo Zhang, Jiancheng Lv, Fuli Feng
  and Tat-Seng Chua.
- **Citation:** Fengbin Zhu et al. "TAT-QA: A Question Answering Benchmark on a Hybrid of Tabular and
  Textual Content in Finance". Proceedings of the 59th Annual Meeting of the Association for Computational
  Linguistics and the 11th International Joint Conference on Natural Language Processing (ACL-IJCNLP 2021),
  pages 3277-3287. https://aclanthology.org/2021.acl-long.254 (doi:10.18653/v1/2021.acl-long.254)
- **Licence:** the TAT-QA dataset is licensed under Creative Commons Attribution 4.0 International
  (CC BY 4.0), {CC_BY_4_URL} (as stated in the TAT-QA README). The `LICENSE` file next to this one is
  the TAT-QA repository's own licence file (MIT, Copyright (c) 2021 Fengbin Zhu), copied unchanged. The
  material is provided as-is, without warranties of any kind.
- **Changes:** a subset of {summary["reports"]} reports ({summary["questions"]} questions) selected by
  `{SCRIPT_NAME}` from the last 20 % of the dev split's {summary["source_reports"]} reports (file order,
  indices {summary["evaluation_start_index"]}-{summary["source_reports"] - 1}); report objects unchanged
  (tables, paragraphs, questions and answers as published), written as one JSON list with 2-space
  indentation.
"""


# --- main ---------------------------------------------------------------------------------------------


def build(shared: Path, out: Path) -> dict:
    if not shared.is_dir():
        raise BuildError(f"shared data folder not found: {shared} (pass --shared PATH)")
    out.mkdir(parents=True, exist_ok=True)
    med_entries, med_summary = build_medquad(shared, out)
    fin_entries, fin_summary = build_tatqa(shared, out)

    extra = []
    for rel in ("medical/ATTRIBUTION.md", "medical/LICENSE.txt", "finance/ATTRIBUTION.md", "finance/LICENSE"):
        data = (out / rel).read_bytes()
        extra.append({"path": rel, "sha256": sha256_bytes(data), "bytes": len(data)})

    manifest = {
        "generated_by": SCRIPT_NAME,
        "command": "python scripts/build_samples.py --shared ../shared/data --out data/samples",
        "medical": med_summary,
        "finance": fin_summary,
        "files": sorted(med_entries + fin_entries + extra, key=lambda e: e["path"]),
    }
    write_text(out / "MANIFEST.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared data folder (default: {DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.shared, args.out)
    except BuildError as exc:
        print(f"build_samples: error: {exc}", file=sys.stderr)
        return 2
    med, fin = manifest["medical"], manifest["finance"]
    total = sum(e["bytes"] for e in manifest["files"]) + (args.out / "MANIFEST.json").stat().st_size
    print(
        f"medical: {med['files']} MedQuAD files, {med['answered_pairs']} answered QA pairs ({med['bytes']} bytes)\n"
        f"finance: {fin['reports']} TAT-QA reports, {fin['questions']} questions ({fin['bytes']} bytes)\n"
        f"total: {len(manifest['files']) + 1} files, {total} bytes in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
