"""The evaluation report as text tables (what `assistant eval` prints) and as one self-contained HTML file:
inline CSS and hand-written inline SVG (metric bars, latency histograms, confidence intervals), no scripts,
no external assets, every text escaped."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eval.scoring import DOMAINS, FOLLOW_UP_METRICS, GUARD_SUITE, NOT_COVERED_SUITES, RAILS, RETRIEVAL_METRICS

ANSWER_COLUMNS = (
    ("token_f1", "token F1"),
    ("rouge_l", "ROUGE-L"),
    ("faithfulness", "faithful"),
    ("citation_precision", "cite P"),
    ("citation_recall", "cite R"),
    ("numeric_match", "numeric"),
    ("refused", "refused"),
    ("answer_words", "words"),
)
RETRIEVAL_COLUMNS = tuple((m, m.replace("recall@", "R@").replace("mrr@", "MRR@").replace("ndcg@", "nDCG@")) for m in RETRIEVAL_METRICS)
COLORS = ("#3b6fb6", "#e08a2c")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _seconds(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms / 1000:.2f} s"


def _md(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    rows = [[str(c) for c in row] for row in rows]
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


# --- tables (shared by the text summary and the HTML) -------------------------------------------------


def tables(report: Mapping[str, Any], which: str = "main") -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for the answer, retrieval, refusal, guardrail and latency tables of one config."""
    part = report if which == "main" else report["compare"]
    metrics, summary, counts = part["metrics"], part["summary"], report["counts"]
    out = []
    answer_suites = [s for s in metrics if s != GUARD_SUITE]  # the shipped ones, conversations, eval files
    if answer_suites:
        rows = []
        for s in answer_suites:
            a = metrics[s]["answers"]
            rows.append(
                [s, str(counts[s]["items"])]
                + [_fmt(a[m]["mean"], 1 if m == "answer_words" else 3) if a[m]["n"] else "-" for m, _ in ANSWER_COLUMNS]
            )
        out.append(("Answers", ["suite", "items", *[label for _, label in ANSWER_COLUMNS]], rows))
        rows = []
        for s in answer_suites:
            for field, label in (("retrieval", s), ("retrieval_open", f"{s} (open)")):
                r = metrics[s].get(field)
                if r and r["n_queries"]:
                    rows.append([label, str(r["n_queries"])] + [_fmt(r[m]) for m, _ in RETRIEVAL_COLUMNS])
        if rows:
            out.append(("Retrieval", ["suite", "queries", *[label for _, label in RETRIEVAL_COLUMNS]], rows))
        rows = [
            [
                s,
                _fmt(metrics[s]["refusal"]["accuracy"]),
                _fmt(metrics[s]["refusal"]["refusal_rate"]),
                _fmt(metrics[s]["refusal"]["false_refusal_rate"]),
            ]
            for s in answer_suites
        ]
        if "refusal.accuracy" in summary:  # over single questions (a conversation's turns are not in it)
            rows.append(
                [
                    "all answer suites",
                    _fmt(summary.get("refusal.accuracy")),
                    _fmt(summary.get("refusal.refusal_rate")),
                    _fmt(summary.get("refusal.false_refusal_rate")),
                ]
            )
        out.append(("Refusals", ["suite", "accuracy", "refusal rate (unanswerable)", "false refusals (answerable)"], rows))
        rows = []
        for s in [s for s in answer_suites if "follow_up" in metrics[s]]:
            for metric in FOLLOW_UP_METRICS:
                rows.append(
                    [s, metric, str(metrics[s]["follow_up"]["turns"])]
                    + [_fmt(summary.get(f"{s}.follow_up.{mode}{metric}")) for mode in ("", "last_turn.", "gold.")]
                    + [_fmt(summary.get(f"{s}.follow_up.{metric}_of_gold"))]
                )
        if rows:
            headers = ["suite", "metric", "follow-ups", "as searched (standalone)", "last turn alone", "gold standalone", "searched / gold"]
            out.append(("Follow-up retrieval", headers, rows))
        rows = [
            [domain]
            + [
                _fmt(summary.get(f"answerability.{domain}.{m}"))
                for m in ("uncovered_refused", "uncovered_evidence", "false_refusal", "evidence_only", "reason_named", "reason_true")
            ]
            for domain in DOMAINS
            if f"answerability.{domain}.uncovered_refused" in summary
        ]
        if rows:
            headers = ["domain (test half)", "not covered: refused", "not covered: evidence shown", "answerable: refused", "answerable: evidence only",
                       "reasons naming a term", "of those, true"]  # fmt: skip
            out.append(("Answerability", headers, rows))
    if GUARD_SUITE in metrics:
        g = metrics[GUARD_SUITE]
        rows = [
            [rail, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), _fmt(v["fp_rate"]), f"{v['tp']}/{v['fp']}/{v['fn']}/{v['tn']}"]
            for rail, v in g["rails"].items()
        ]
        rows.append(["any rule (benign texts blocked)", "", "", "", _fmt(g["benign_block_rate"]), f"of {g['n_benign']} benign"])
        out.append(
            (
                f"Guardrails ({g['items']} texts, accuracy {_fmt(g['accuracy'])}, check p95 {_fmt(g['check_ms']['p95'], 2)} ms)",
                ["rail", "precision", "recall", "F1", "FP rate", "tp/fp/fn/tn"],
                rows,
            )
        )
    latency = part.get("latency") or {}
    if latency:
        rows = [
            [
                name,
                str(v["n"]),
                _seconds(v["ttft_ms"]["p50"]),
                _seconds(v["ttft_ms"]["p95"]),
                _seconds(v["total_ms"]["p50"]),
                _seconds(v["total_ms"]["p95"]),
            ]
            for name, v in latency.items()
            if v["n"]  # "overall" is over single questions: none when only conversations ran
        ]
        out.append(("Latency", ["suite", "answers", "TTFT p50", "TTFT p95", "total p50", "total p95"], rows))
    return out


_DETAIL = re.compile(r"^(?!latency\.)\w+\.(ttft|total)_p\d+_ms$|recall@[13]$|^guardrails\.\w+\.(f1|tp|fp|fn|tn)$")


def delta_rows(report: Mapping[str, Any], *, headline: bool = False) -> list[list[str]]:
    """One row per summary metric; ``headline`` leaves out per-suite latency, Recall@1/3 and rail F1 (the
    HTML lists everything)."""
    rows = []
    for key, d in report["compare"]["deltas"].items():
        if headline and _DETAIL.search(key):
            continue
        ci = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d.get("ci_low") is not None else ""
        mark = " *" if d.get("significant") else ""
        rows.append([key, _fmt(d["a"]), _fmt(d["b"]), ("n/a" if d["delta"] is None else f"{d['delta']:+.3f}") + mark, ci])
    return rows


def summary_text(report: Mapping[str, Any]) -> str:
    """Markdown tables: what the command prints (and what goes into the README as the baseline)."""
    config = report["config"]
    lines = [
        f"Evaluation of {config['name']!r} ({report['suite']}"
        + (f", first {report['limit']} per suite" if report.get("limit") else "")
        + f"; {report['created_at']}; config {config['hash']})",
        "",
    ]
    compare = report.get("compare")
    for which in ("main", "compare") if compare else ("main",):
        if compare:
            name = config["name"] if which == "main" else compare["config"]["name"]
            lines += [f"## {name}", ""]
        for title, header, rows in tables(report, which):
            lines += [f"{title}:", "", *_md(header, rows), ""]
    if compare:
        lines += [
            f"Compare: {compare['config']['name']} minus {config['name']} (95 % paired bootstrap CI; * = excludes 0):",
            "",
            *_md(["metric", config["name"], compare["config"]["name"], "delta", "95% CI"], delta_rows(report, headline=True)),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def gate_text(gate: Mapping[str, Any]) -> str:
    lines = []
    for r in gate["results"]:
        lines.append(f"gate {r['status'].upper():4} {r['metric']}: {r['reason']}")
    return "\n".join(lines)


# --- SVG ----------------------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[str], width: int = 560) -> str:
    """Horizontal bars in [0, 1]: one group per row, one bar per series."""
    label_w, bar_h, gap = 190, 13, 8
    plot_w = width - label_w - 60
    group_h = bar_h * len(series) + gap
    legend_h = 22 if len(series) > 1 else 0
    height = legend_h + group_h * len(rows) + 24
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for i, name in enumerate(series if len(series) > 1 else []):
        x = label_w + i * 160
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{COLORS[i % 2]}"/><text x="{x + 16}" y="15">{_e(name)}</text>')
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * plot_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{legend_h}" x2="{x:.1f}" y2="{height - 18}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle" class="tick">{tick:g}</text>'
        )
    for r, (label, values) in enumerate(rows):
        y0 = legend_h + r * group_h
        parts.append(f'<text x="{label_w - 6}" y="{y0 + group_h / 2 + 1:.1f}" text-anchor="end">{_e(label)}</text>')
        for i, value in enumerate(values):
            y = y0 + i * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + bar_h - 2}" class="tick">n/a</text>')
                continue
            w = max(0.0, min(1.0, float(value))) * plot_w
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{COLORS[i % 2]}">'
                f"<title>{_e(label)}: {value:.3f}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" class="tick">{value:.3f}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    series: Sequence[tuple[str, Sequence[float]]], *, bins: int = 20, width: int = 560, height: int = 180, unit: str = "s"
) -> str:
    """Overlaid histograms (counts per bin) of one or two value series."""
    values = [v for _, vs in series for v in vs]
    if not values:
        return '<p class="muted">no values</p>'
    low, high = 0.0, max(values)
    high = high if high > low else low + 1.0
    step = (high - low) / bins
    left, bottom, top = 40, 30, 22
    plot_w, plot_h = width - left - 36, height - bottom - top
    counts = [[0] * bins for _ in series]
    for s, (_, vs) in enumerate(series):
        for v in vs:
            counts[s][min(bins - 1, int((v - low) / step))] += 1
    peak = max(max(c) for c in counts) or 1
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for s, (name, vs) in enumerate(series):
        x = left + s * 200
        parts.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{COLORS[s % 2]}" fill-opacity="0.7"/>'
            f'<text x="{x + 16}" y="15">{_e(name)} (n={len(vs)})</text>'
        )
    bar_w = plot_w / bins
    for s in range(len(series)):
        for b, c in enumerate(counts[s]):
            if not c:
                continue
            h = c / peak * plot_h
            x = left + b * bar_w + (bar_w / len(series)) * s
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w / len(series) - 1:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[s % 2]}" fill-opacity="0.8"><title>{low + b * step:.2f}-{low + (b + 1) * step:.2f} {unit}: {c}</title></rect>'
            )
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>')
    for i in range(5):
        v = low + (high - low) * i / 4
        x = left + plot_w * i / 4
        parts.append(f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" class="tick">{v:.1f} {unit}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{peak}</text>')
    parts.append("</svg>")
    return "".join(parts)


def ci_strip(low: float | None, high: float | None, mean: float | None, scale: float, width: int = 160) -> str:
    """A small interval plot: the CI as a line, the mean as a dot, 0 as a vertical rule; ``scale`` = the
    absolute value mapped to the half width."""
    if low is None or high is None or mean is None:
        return ""
    scale = scale or 1.0
    mid, half = width / 2, width / 2 - 6

    def x(v: float) -> float:
        return mid + max(-1.0, min(1.0, v / scale)) * half

    color = COLORS[0] if low > 0 else COLORS[1] if high < 0 else "#888"
    return (
        f'<svg width="{width}" height="14" viewBox="0 0 {width} 14"><line x1="{mid}" y1="0" x2="{mid}" y2="14" class="axis"/>'
        f'<line x1="{x(low):.1f}" y1="7" x2="{x(high):.1f}" y2="7" stroke="{color}" stroke-width="3"/>'
        f'<circle cx="{x(mean):.1f}" cy="7" r="3.5" fill="{color}"/></svg>'
    )


# --- HTML ---------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 14px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#777}.pass{color:#217a3c;font-weight:600}.fail{color:#b3261e;font-weight:600}.skip{color:#777}
.chart text{font-size:11px;fill:#333}.chart .tick{fill:#666;font-size:10px}.grid{stroke:#eee}.axis{stroke:#999}
.failures{color:#b3261e}details summary{cursor:pointer}pre{white-space:pre-wrap;margin:4px 0;font:13px/1.4 ui-monospace,monospace;background:#f8f8f8;padding:6px}
.items td{font-size:13px}.q{max-width:340px}.a{max-width:420px}.grid2{display:flex;flex-wrap:wrap;gap:24px}
"""


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{_e(c)}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _metric_bars(report: Mapping[str, Any]) -> str:
    compare = report.get("compare")
    parts = []
    names = [report["config"]["name"]] + ([compare["config"]["name"]] if compare else [])
    summaries = [report["summary"]] + ([compare["summary"]] if compare else [])
    for suite in [s for s in report["metrics"] if s != GUARD_SUITE]:
        keys = [(m, label) for m, label in ANSWER_COLUMNS if m != "answer_words"] + list(RETRIEVAL_COLUMNS)
        if suite in NOT_COVERED_SUITES:
            keys = [("refusal_accuracy", "refusal accuracy"), ("reason_true", "reason true"), ("faithfulness", "faithful")]
        rows = [(label, [s.get(f"{suite}.{m}") for s in summaries]) for m, label in keys if any(f"{suite}.{m}" in s for s in summaries)]
        if rows:
            parts.append(f"<div><h3>{_e(suite)}</h3>{bar_chart(rows, names)}</div>")
    if GUARD_SUITE in report["metrics"]:
        rows = [
            (f"{rail} {m}", [s.get(f"{GUARD_SUITE}.{rail}.{m}") for s in summaries])
            for rail in RAILS
            for m in ("precision", "recall", "f1", "fp_rate")
        ]
        rows.append(("benign blocked", [s.get(f"{GUARD_SUITE}.benign_block_rate") for s in summaries]))
        parts.append(f"<div><h3>guardrails</h3>{bar_chart(rows, names)}</div>")
    return '<div class="grid2">' + "".join(parts) + "</div>"


def _latency_plots(report: Mapping[str, Any]) -> str:
    compare = report.get("compare")
    items = [i for i in report["items"] if i["suite"] != GUARD_SUITE]
    if not items:
        return ""
    out = []
    for kind, title in (("ttft", "Time to first token"), ("total", "Total answer time")):
        series = [(report["config"]["name"], [i["latency_ms"][kind] / 1000 for i in items if i["latency_ms"].get(kind) is not None])]
        if compare:
            series.append(
                (
                    compare["config"]["name"],
                    [
                        i["compare"]["latency_ms"][kind] / 1000
                        for i in items
                        if (i["compare"].get("latency_ms") or {}).get(kind) is not None
                    ],
                )
            )
        out.append(f"<div><h3>{title}</h3>{histogram(series)}</div>")
    return '<div class="grid2">' + "".join(out) + "</div>"


def _items_table(report: Mapping[str, Any]) -> str:
    compare = report.get("compare")
    items = list(report["items"])

    def order(item: Mapping[str, Any]) -> tuple:
        s = item["scores"]
        return (-len(item["failures"]), s.get("token_f1", s.get("correct", 1.0)), item["suite"], item["id"])

    items.sort(key=order)
    header = ["#", "suite", "question", "answer", "failures", "scores"] + (["compare"] if compare else [])
    rows = []
    for n, item in enumerate(items, start=1):
        scores = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in item["scores"].items()
            if not k.startswith("open.") and k not in ("recall@1", "recall@3")
        )
        details = []
        if item.get("reference"):
            details.append(f"<b>reference</b><pre>{_e(item['reference'])}</pre>")
        if item.get("sources"):
            details.append(
                "<b>passages</b><ol>"
                + "".join(f"<li>{_e(s['title'])}{' <b>(gold)</b>' if s.get('gold') else ''}</li>" for s in item["sources"])
                + "</ol>"
            )
        if item.get("latency_ms"):
            details.append(
                f"<span class='muted'>first token {_seconds(item['latency_ms']['ttft'])}, total {_seconds(item['latency_ms']['total'])}, "
                f"finish {_e(item.get('finish_reason'))}</span>"
            )
        if item["suite"] == GUARD_SUITE:
            details.append(
                f"<span class='muted'>expected {_e(item.get('expected'))}; fired {_e(', '.join(item.get('fired') or []) or 'nothing')}</span>"
            )
        answer = item.get("answer") or ""
        short = answer if len(answer) <= 220 else answer[:217] + "..."
        cell = f"<details><summary>{_e(short)}</summary><pre>{_e(answer)}</pre>{''.join(details)}</details>"
        row = [
            f'<td class="num">{n}</td>',
            f"<td>{_e(item['suite'])}</td>",
            f"<td class='q'><span class='muted'>{_e(item['id'])}</span><br>{_e(item['question'])}</td>",
            f"<td class='a'>{cell}</td>",
            f"<td class='failures'>{'<br>'.join(_e(f) for f in item['failures'])}</td>",
            f"<td>{_e(scores)}</td>",
        ]
        if compare:
            c = item.get("compare") or {}
            delta = ", ".join(
                f"{k} {v:+.2f}"
                for k, v in (c.get("delta") or {}).items()
                if v and not k.startswith("open.") and k not in ("recall@1", "recall@3")
            )
            b_answer = c.get("answer") or ""
            row.append(
                f"<td class='a'><details><summary>{_e(b_answer[:200])}</summary><pre>{_e(b_answer)}</pre></details>"
                f"<span class='failures'>{'<br>'.join(_e(f) for f in c.get('failures') or [])}</span>"
                f"<br><span class='muted'>{_e(delta or 'no change')}</span></td>"
            )
        rows.append("<tr>" + "".join(row) + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f'<table class="items"><tr>{head}</tr>{"".join(rows)}</table>'


def _compare_section(report: Mapping[str, Any]) -> str:
    compare = report["compare"]
    deltas = compare["deltas"]
    a, b = report["config"]["name"], compare["config"]["name"]
    rows = []
    for key, d in deltas.items():
        scale = max(abs(d["ci_low"]), abs(d["ci_high"]), 1e-9) if d.get("ci_low") is not None else 1.0
        scale = 1.0 if scale <= 1.0 and not key.endswith("_ms") and not key.endswith("answer_words") else scale
        delta = "n/a" if d["delta"] is None else f"{d['delta']:+.3f}"
        ci = f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]" if d.get("ci_low") is not None else ""
        mark = "significant" if d.get("significant") else ""
        rows.append(
            f"<tr><td>{_e(key)}</td><td class='num'>{_fmt(d['a'])}</td><td class='num'>{_fmt(d['b'])}</td><td class='num'>{delta}</td>"
            f"<td class='num'>{ci}</td><td>{ci_strip(d.get('ci_low'), d.get('ci_high'), d.get('paired_mean'), scale)}</td><td>{mark}</td></tr>"
        )
    head = "".join(f"<th>{_e(h)}</th>" for h in ("metric", a, b, f"delta ({b} - {a})", "95% CI (paired bootstrap)", "", ""))
    return f"<h2>Comparison: {_e(b)} vs {_e(a)}</h2><p class='muted'>delta = {_e(b)} minus {_e(a)}; intervals resample the per-item differences (1000 resamples, seed 0); aggregates that are not item means (rail precision, latency percentiles) show the difference only.</p><table><tr>{head}</tr>{''.join(rows)}</table>"


def _gate_section(gate: Mapping[str, Any]) -> str:
    verdict = "<span class='pass'>passed</span>" if gate["passed"] else f"<span class='fail'>failed: {_e(', '.join(gate['failed']))}</span>"
    rows = "".join(
        f"<tr><td class='{r['status']}'>{r['status']}</td><td>{_e(r['metric'])}</td><td class='num'>{_fmt(r['value'])}</td>"
        f"<td class='num'>{_fmt(r['min'])}</td><td class='num'>{_fmt(r['max'])}</td><td>{_e(r['reason'])}</td></tr>"
        for r in gate["results"]
    )
    return (
        f"<h2>Gate ({_e(gate.get('file') or '')}): {verdict}</h2><table><tr><th>status</th><th>metric</th><th>value</th>"
        f"<th>min</th><th>max</th><th>why</th></tr>{rows}</table>"
    )


def render_html(report: Mapping[str, Any]) -> str:
    config = report["config"]
    compare = report.get("compare")
    title = f"Evaluation: {config['name']}" + (f" vs {compare['config']['name']}" if compare else "")
    counts = [[s, c["items"], c["run"], c["cached"], c["failures"], c["refused"]] for s, c in report["counts"].items()]
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{_e(report['created_at'])} · suite {_e(report['suite'])}"
        + (f" · first {_e(report['limit'])} items per suite" if report.get("limit") else "")
        + f" · configuration hash {_e(config['hash'])} · {_e(report.get('wall_s'))} s</p>",
        _table(["suite", "items", "run now", "from cache", "with failures", "refused / blocked"], counts),
    ]
    if report.get("gate"):
        body.append(_gate_section(report["gate"]))
    body.append("<h2>Metrics</h2>" + _metric_bars(report))
    for which in ("main", "compare") if compare else ("main",):
        if compare:
            body.append(f"<h2>{_e(config['name'] if which == 'main' else compare['config']['name'])}</h2>")
        for table_title, header, rows in tables(report, which):
            body.append(f"<h3>{_e(table_title)}</h3>" + _table(header, rows))
    if compare:
        body.append(_compare_section(report))
    latency = _latency_plots(report)
    if latency:
        body.append("<h2>Latency histograms</h2>" + latency)
    body.append(f"<h2>Questions ({len(report['items'])}; failures first)</h2>" + _items_table(report))
    settings = {"main": {k: config.get(k) for k in ("file", "overrides", "eval", "settings", "collections")}}
    if compare:
        settings["compare"] = {k: compare["config"].get(k) for k in ("file", "overrides", "eval", "settings", "collections")}
    body.append(f"<h2>Configuration</h2><pre>{_e(json.dumps(settings, indent=2, ensure_ascii=False, default=str))}</pre>")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
