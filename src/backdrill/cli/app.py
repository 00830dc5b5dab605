"""The ``backdrill`` entry point: global options, sub-command groups, and the one
top-level handler that turns exceptions into an exit code and one line."""

from __future__ import annotations

import enum
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from backdrill import __version__
from backdrill.cli import (
    backup_cmd,
    catalog_cmd,
    config_cmd,
    drill_cmd,
    prune_cmd,
    restore_cmd,
    restore_files_cmd,
    serve_cmd,
    standards_cmd,
    status_cmd,
    unlock_cmd,
    verify_cmd,
)
from backdrill.cli.attempt_record import record_attempts
from backdrill.cli.errors import report_error, report_interrupt
from backdrill.cli.metrics_file import write_metrics_file
from backdrill.cli.state import AppState
from backdrill.runtime import interrupts
from backdrill.runtime.errors import BackdrillError, Interrupted
from backdrill.runtime.logs import LogFormat, default_format, new_run_id, setup_logging
from backdrill.runtime.redact import SECRETS
from backdrill.runtime.text import terminal

log = logging.getLogger("backdrill")


class LogFormatChoice(enum.StrEnum):
    text = "text"
    json = "json"


app = typer.Typer(
    name="backdrill",
    help="PostgreSQL/Odoo backups, and restore drills that prove RPO and RTO.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=True,  # --install-completion / --show-completion (typer's vendored click)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command
)


def _group(name: str, help_text: str) -> typer.Typer:
    """A sub-command group of ``app``; the command modules attach their commands to it."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


# One registration style: every cli/*_cmd.py module exposes ``register(parent)``, which
# attaches its commands to the Typer it is given: the root, or a group built here.
config_cmd.register(
    _group("config", "Validate the configuration and reach PostgreSQL and storage.")
)
backup_cmd.register(
    _group("backup", "Run a backup (from cron: db at 03:00 UTC, files at 04:00 UTC).")
)
_restore = _group("restore", "Restore during an incident, safely.")
restore_cmd.register(_restore)
restore_files_cmd.register(_restore)
drill_cmd.register(_group("drill", "Restore drills: prove the backups restore and meet RPO/RTO."))
standards_cmd.register(_group("standards", "Enterprise-standards validation of the repository."))
catalog_cmd.register(app)
prune_cmd.register(app)
verify_cmd.register(app)
status_cmd.register(app)
serve_cmd.register(app)
unlock_cmd.register(app)

_debug = False
_state: AppState | None = None
#: the one line of the error the command ended with, for its attempt record
_last_error: str | None = None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"backdrill {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (else $BACKDRILL_CONFIG, "
            "./backdrill.yaml, /etc/backdrill/backdrill.yaml).",
        ),
    ] = None,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option("--log-format", help="text or json (default: text on a terminal)."),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="Correlation id (default: $BACKDRILL_RUN_ID or random)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="After the command, write the repository's metrics here (node_exporter "
            "textfile collector).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    global _debug  # noqa: PLW0603 - read by the top-level handler outside click
    _debug = debug
    fmt = log_format.value if log_format is not None else default_format()
    chosen: LogFormat = "json" if fmt == "json" else "text"
    rid = run_id or os.environ.get("BACKDRILL_RUN_ID") or new_run_id()
    setup_logging(chosen, rid, debug=debug)
    global _state  # noqa: PLW0603 - read by main() after the command, for --metrics-file
    state = AppState(
        config_path=config, log_format=chosen, run_id=rid, debug=debug, metrics_file=metrics_file
    )
    _state = state
    ctx.obj = state
    ctx.call_on_close(state.close)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    # the first signal starts the clean-up; later ones must not interrupt it
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.deliver(signum)  # raises Interrupted, or defers it past a clean-up


def install_signal_handlers() -> None:
    """SIGTERM and SIGINT become an Interrupted exception in the main thread, so every
    ``with`` block (child processes, uploads, sandboxes, locks) cleans up on the way out."""
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)


def main(argv: list[str] | None = None, *, process: bool = False) -> int:
    """Run the CLI; return the exit code (README "Exit codes"). With ``process`` (the
    console script), a signal arriving once the work is over is ignored: the process
    exits with the work's code instead of dying by the signal half-way through its exit
    (Python restores the default handlers while it finalizes)."""
    global _state  # noqa: PLW0603
    _state = None
    code = _dispatch(argv, process=process)
    if _state is not None:
        record_attempts(_state, code, _last_error)
    if _state is not None and _state.metrics_file is not None:
        write_metrics_file(_state, code)
    return code


def _dispatch(argv: list[str] | None, *, process: bool) -> int:
    global _debug, _last_error  # noqa: PLW0603
    _debug = False
    _last_error = None
    interrupts.reset()
    install_signal_handlers()
    try:
        command = typer.main.get_command(app)
        result = command.main(args=argv, prog_name="backdrill", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: the vendored click's, typer's own
        show_usage_error(exc)
        return int(exc.exit_code)
    except typer.Abort:
        print("backdrill: interrupted", file=sys.stderr)
        return 130
    except BackdrillError as exc:
        if _debug:
            traceback.print_exc()
        report_error(exc)
        _last_error = str(exc)
        return exc.exit_code
    except Interrupted as exc:
        report_interrupt(exc)
        _last_error = str(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        report_interrupt(Interrupted(signal.SIGINT))
        return 130
    except Exception as exc:
        if _debug:
            traceback.print_exc()
        text = SECRETS.redact(f"{type(exc).__name__}: {exc}")
        _last_error = f"internal error: {text}"
        print(
            f"backdrill: internal error: {terminal(text)} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        if process:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    return result if isinstance(result, int) else 0


def show_usage_error(exc: typer.TyperException) -> None:
    """Print a command-line error as click does (usage, then the error); typer names no
    public class with ``show`` (it lives in its private vendored click), so look it up."""
    show = getattr(exc, "show", None)
    if callable(show):
        show()
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)


def run() -> None:  # console script
    sys.exit(main(process=True))
