"""The ``lambda-rt`` entry point: global options and command registration.

Commands that belong to a layer import it inside the command body, so
``lambda_rt`` never imports ``speed_layer``, ``batch_layer`` or ``serving`` at
import time (ARCHITECTURE.md: dependencies flow one way).

Logging is set up here, once per invocation, before any command runs
(:mod:`lambda_rt.cli.logs`); the modules below only log.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from pathlib import Path

import typer

from lambda_rt.cli import (
    batch_commands,
    generate_command,
    layer_commands,
    run_command,
    serve_commands,
    speed_command,
    stack_commands,
)
from lambda_rt.cli.context import CliContext
from lambda_rt.cli.errors import run_cli
from lambda_rt.cli.logs import LogFormat, LogLevel, configure_logging

__all__ = ["app", "main"]

app = typer.Typer(
    name="lambda-rt",
    help="Real-time analytics for e-commerce events (lambda architecture).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Embedded stack state dir [env LAMBDA_RT_STATE_DIR; default ./.lambda-rt]."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="A lambda-rt.toml [env LAMBDA_RT_CONFIG; default ./lambda-rt.toml]."
    ),
    log_level: LogLevel = typer.Option(
        LogLevel.info,
        "--log-level",
        envvar="LAMBDA_RT_LOG_LEVEL",
        case_sensitive=False,
        help="Level of lambda-rt's own log records on stderr.",
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.text,
        "--log-format",
        envvar="LAMBDA_RT_LOG_FORMAT",
        case_sensitive=False,
        help="text, or json: one object per line for a log collector.",
    ),
) -> None:
    configure_logging(log_level, log_format)
    ctx.obj = CliContext(state_dir=state_dir, config_file=config)


stack_commands.register(app)
generate_command.register(app)
layer_commands.register(app)
speed_command.register(app)
batch_commands.register(app)
serve_commands.register(app)
run_command.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # `kill -USR1 PID` prints every thread's Python stack to stderr: a hung
    # daemon or speed process can be diagnosed without a debugger.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    command = typer.main.get_command(app)
    code = run_cli(command, argv if argv is not None else sys.argv[1:])
    if "chdb" in sys.modules:
        # The embedded ClickHouse engine's own teardown at interpreter exit is
        # fragile (it logs a shutdown error and has crashed with SIGSEGV after a
        # clean stop). Every command has closed and flushed its work by now, so
        # leave without running that teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
