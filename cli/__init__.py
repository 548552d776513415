"""The `assistant` command line: verbs over collections, answers, training and the front ends, each with
--json for scripts (the shapes of assistant/views.py).

Exit codes: 0 success, 1 a check found problems or the collection is damaged, 2 a user mistake
(one line on stderr, no traceback), 130 interrupted.

One module per group of verbs: collections.py (ingest, delete, check, reindex, collections), answers.py (search,
ask, shell, guard), training.py (finetune), frontends.py (eval, serve, ui); output.py prints.
"""

from __future__ import annotations

import os
import sys

import click

from cli.answers import ask, guard, search, shell
from cli.collections import check, collections_cmd, delete, ingest, prune, reindex, rollback
from cli.frontends import eval_cmd, serve, ui_cmd
from cli.training import finetune
from core.config import Settings
from core.errors import AssistantError, CorruptCollection, UserError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="domain-assistant")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Domain assistant for medical and finance questions.

    Collections live under ASSISTANT_INDEX_DIR (default ./indexes); every setting is an ASSISTANT_* variable.
    """
    try:
        ctx.obj = Settings()
    except Exception as exc:  # pydantic's validation message names the bad variable
        raise UserError(f"invalid settings: {exc}".replace("\n", " ")) from exc


for command in (
    ingest,
    search,
    delete,
    check,
    reindex,
    collections_cmd,
    rollback,
    prune,
    shell,
    ask,
    guard,
    finetune,
    eval_cmd,
    serve,
    ui_cmd,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="assistant", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except CorruptCollection as exc:
        click.echo(f"error: damaged collection: {exc}", err=True)
        sys.exit(1)
    except AssistantError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # unwritable index folder, full disk: the machine's problem, said in one line
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
