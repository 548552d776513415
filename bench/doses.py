"""The dose rail (guardrails/output_checks.py: uncopied_doses, the medical pack's medical.dose_not_copied):
precision and recall on doses copied right and wrong, and how often it fires on real answers.

    python bench/doses.py [--data ../shared/data] [--report reports/report.json] [--json FILE]

Cases: every sentence of the PubMedQA abstracts and MedQuAD answers (the shared dev data) that states a
dose (a number with mg, mL, units, tablets, "times a day", ...), answered with a citation of its own passage:
- copied (must pass): the sentence as written, and with the dose reformatted but equal ("500mg" for
  "500 mg", "500 milligrams", "1000 mg" for "1,000 mg");
- altered (must be flagged): the dose's number changed (doubled, or one more), its unit changed (mg <-> g,
  mg <-> mcg, mL <-> L), or a frequency changed ("2 times a day" -> "3 times a day").
A flagged altered case is a true positive, a flagged copy a false positive. ``--report`` also counts, over a
report of ``assistant eval --suite medical``, the answers that state a dose and those the rail flagged.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(REPO))

from bench.tables import fmt, markdown_table  # noqa: E402
from core.citations import split_sentences  # noqa: E402
from guardrails.output_checks import doses, uncopied_doses  # noqa: E402

_UNIT_SWAP = {"mg": "g", "g": "mg", "mcg": "mg", "ml": "L", "l": "mL", "units": "mg", "mg/kg": "g/kg"}


def passages(data: Path) -> list[str]:
    out = []
    pqa = json.loads((data / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    out += [" ".join(item["CONTEXTS"]) for item in pqa.values()]
    for path in sorted((data / "medquad").rglob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        out += [a.text for a in root.iter("Answer") if a.text]
    return out


def _reformatted(sentence: str, span: tuple[int, int]) -> str | None:
    """The same dose written differently: "500 mg" -> "500mg", "1,000 mg" -> "1000 mg"."""
    dose = sentence[span[0] : span[1]]
    if re.search(r"\d,\d{3}\b", dose):
        new = re.sub(r"(\d),(\d{3})\b", r"\1\2", dose)
    elif re.search(r"\d\s+[a-zA-Zµ]", dose):
        new = re.sub(r"(\d)\s+([a-zA-Zµ])", r"\1\2", dose, count=1)
    else:
        return None
    return sentence[: span[0]] + new + sentence[span[1] :]


def _altered(sentence: str, span: tuple[int, int], key: str) -> list[str]:
    dose = sentence[span[0] : span[1]]
    number = re.match(r"\d+(?:[.,]\d+)?", dose)
    out = []
    if number:
        value = float(number.group(0).replace(",", ""))
        changed = f"{value * 2:g}" if value else "1"
        out.append(sentence[: span[0]] + changed + dose[number.end() :] + sentence[span[1] :])
    unit = key.split(" ", 1)[1]
    if unit in _UNIT_SWAP:
        match = re.search(r"[a-zA-Zµ/]+\s*$", dose)
        if match:
            out.append(sentence[: span[0]] + dose[: match.start()] + _UNIT_SWAP[unit] + sentence[span[1] :])
    return out


def cases(texts: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(copied, altered): (answer sentence citing [1], its passage) pairs."""
    copied, altered = [], []
    for text in texts:
        for sentence in split_sentences(text):
            found = doses(sentence)
            if not found:
                continue
            copied.append((f"{sentence} [1]", text))
            for span, key in found[:1]:
                same = _reformatted(sentence, span)
                if same:
                    copied.append((f"{same} [1]", text))
                altered += [(f"{a} [1]", text) for a in _altered(sentence, span, key)]
    return copied, altered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--report", type=Path, help="an eval report.json whose medical answers to count")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    copied, altered = cases(passages(args.data))

    def flagged(answer: str, passage: str) -> bool:
        return bool(uncopied_doses(answer, {"passages": [passage]}))

    fp = sum(flagged(a, p) for a, p in copied)
    tp = sum(flagged(a, p) for a, p in altered)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / len(altered) if altered else None
    figures = {"copied": len(copied), "altered": len(altered), "tp": tp, "fp": fp, "precision": precision, "recall": recall}
    rows = [["doses copied (must pass)", len(copied), fp, "-"], ["doses altered (must be flagged)", len(altered), tp, "-"]]
    rows.append(["precision / recall", "", "", f"{fmt(precision, 3)} / {fmt(recall, 3)}"])
    print(markdown_table(["cases", "n", "flagged", "precision / recall"], rows))
    if args.report:
        report = json.loads(args.report.read_text(encoding="utf-8"))
        medical = [i for i in report["items"] if i.get("suite") == "medical"]
        with_dose = [i for i in medical if doses(i["answer"])]
        figures["report"] = {"answers": len(medical), "with_dose": len(with_dose)}
        print(f"\n{args.report}: {len(with_dose)} of {len(medical)} medical answers state a dose")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
