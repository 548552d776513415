"""The verbs that start a front end: eval (the offline evaluation suite), serve (the HTTP API), ui (the chat).
The command line is the one place that imports the front ends, which is why cli/ sits above them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cli.output import emit
from core.config import Settings
from core.errors import UserError


@click.command("eval")
@click.option(
    "--suite",
    default=None,
    type=click.Choice(["medical", "finance", "unanswerable", "uncovered", "conversation", "guardrails", "all"]),
    help="A shipped suite, or all of them (the default without --suite-file).",
)
@click.option(
    "--suite-file",
    "suite_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An eval file (JSONL, the shipped sets' format: questions or conversations) run as a suite named after the file; repeatable.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML: Settings overrides merged over the environment's, plus `name` and `eval: {k, closed}`.",
)
@click.option(
    "--compare",
    "compare_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A second configuration: both run on the same items, with deltas and bootstrap intervals.",
)
@click.option(
    "--gate",
    "gate_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML thresholds (metric: min, or metric: {min, max}); exit 1 when one fails.",
)
@click.option("--limit", type=click.IntRange(1), help="Only the first N items of each suite (deterministic).")
@click.option(
    "--out",
    default=Path("reports"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for report.json, report.html and the per-item cache (an interrupted run resumes from it).",
)
@click.option(
    "--data",
    "data_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with the eval sets (default: the shipped data/eval).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary, metrics and gate as JSON instead of tables.")
@click.pass_obj
def eval_cmd(
    settings: Settings, suite: str | None, suite_files, config_file, compare_file, gate_file, limit, out: Path, data_dir, as_json: bool
) -> None:
    """Offline evaluation: answer quality, retrieval, refusals, guardrails and latency, with an HTML report."""
    from eval.report import gate_text, summary_text
    from eval.runner import EVAL_DIR, evaluate

    report = evaluate(
        settings,
        suite or (None if suite_files else "all"),
        files=list(suite_files),
        config_file=config_file,
        compare_file=compare_file,
        gate_file=gate_file,
        limit=limit,
        out=out,
        data_dir=data_dir or EVAL_DIR,
        progress=not as_json,
    )
    gate = report.get("gate")
    if as_json:
        emit(
            {
                k: report[k]
                for k in (
                    "created_at",
                    "suite",
                    "limit",
                    "config",
                    "summary",
                    "metrics",
                    "latency",
                    "counts",
                    "gate",
                    "compare",
                    "wall_s",
                    "paths",
                )
                if k in report
            }
        )
    else:
        click.echo(summary_text(report))
        if gate:
            click.echo(gate_text(gate))
        click.echo(f"report: {report['paths']['html']} and {report['paths']['json']} ({report['wall_s']:.0f} s)")
    if gate and not gate["passed"]:
        click.echo(f"error: gate failed: {', '.join(gate['failed'])}", err=True)
        sys.exit(1)


@click.command()
@click.option("--host", default=None, help="Address to listen on (default ASSISTANT_API__HOST, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default ASSISTANT_API__PORT, 8000).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without API keys.")
@click.option("--no-warm-up", is_flag=True, help="Load collections and models on first use instead of at startup.")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None, insecure: bool, no_warm_up: bool) -> None:
    """Serve the HTTP API (FastAPI on uvicorn): /v1/ask, /v1/ask/stream, /v1/chat/completions, /v1/search, ..."""
    import ipaddress

    import uvicorn

    from api.app import create_app
    from api.auth import KeyStore
    from core import logs

    host = host or settings.api.host
    port = settings.api.port if port is None else port
    keys = KeyStore.parse(settings.api_keys.get_secret_value() if settings.api_keys else None)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not keys.enabled and not loopback and not insecure:
        raise UserError(
            f"no API keys configured (ASSISTANT_API_KEYS): refusing to serve on {host} without authentication; "
            "set keys, bind to 127.0.0.1, or pass --insecure"
        )
    if not keys.enabled:
        click.echo("warning: no API keys configured (ASSISTANT_API_KEYS): every caller is admin", err=True)
    # text: uvicorn's own log lines, as always; json: every logger through core/logs.py's formatter, and the
    # API's access log (with the request id and duration) in place of uvicorn's.
    log_config = logs.log_config(settings.log.format, settings.log.level)
    extra = {} if log_config is None else {"log_config": log_config, "access_log": False}
    uvicorn.run(
        create_app(settings, warm_up=not no_warm_up),
        host=host,
        port=port,
        log_level=settings.log.level,
        **extra,
        timeout_graceful_shutdown=int(settings.api.shutdown_grace_s) or None,
        limit_concurrency=1024,
    )


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the chat listens on.")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port (default ASSISTANT_UI__PORT, 8501).")
@click.pass_obj
def ui_cmd(settings: Settings, host: str, port: int | None) -> None:
    """Start the Streamlit chat (the assistant in-process, or a running API with ASSISTANT_UI__API_URL)."""
    import ui

    app = Path(ui.__file__).resolve().parent / "app.py"
    port = settings.ui.port if port is None else port
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--server.maxUploadSize",
        str(max(1, int(settings.api.max_upload_mb * settings.api.max_upload_files))),
    ]
    click.echo(f"chat on http://{host}:{port} (Ctrl+C stops it)")
    sys.stdout.flush()
    # Streamlit replaces this process rather than running as its child: a SIGTERM from a supervisor (or a
    # test) reaches the server itself instead of orphaning it.
    os.execv(sys.executable, command)
