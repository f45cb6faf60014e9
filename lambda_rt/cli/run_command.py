"""``lambda-rt run``: the daemon and N speed processes, supervised (:mod:`lambda_rt.supervisor`)."""

from __future__ import annotations

import typer

from lambda_rt.cli.context import CliContext, settings_of
from lambda_rt.cli.errors import usage_error

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command()
    def run(
        ctx: typer.Context,
        speed_processes: int | None = typer.Option(
            None,
            "--speed-processes",
            help="Speed-layer processes [default: the topic's partitions, at most one per core].",
        ),
        port: int | None = typer.Option(None, "--port", help="The daemon's TCP port [default: serve.port]."),
        no_schedule: bool = typer.Option(False, "--no-schedule", help="The daemon hosts no batch schedule."),
    ) -> None:
        """Start the daemon and the speed processes; restart any that dies; SIGTERM stops all."""
        if speed_processes is not None and speed_processes < 0:
            raise usage_error("--speed-processes must be 0 or more")
        if port is not None and not 0 <= port < 65536:
            raise usage_error("--port must be a TCP port (0-65535)")
        from lambda_rt.supervisor import Supervisor, default_speed_processes

        settings = settings_of(ctx)
        obj = ctx.find_object(CliContext)
        global_args: list[str] = ["--state-dir", str(settings.state_dir)]
        if obj is not None and obj.config_file is not None:
            global_args += ["--config", str(obj.config_file)]
        serve_args: list[str] = []
        if port is not None:
            serve_args += ["--port", str(port)]
        if no_schedule:
            serve_args.append("--no-schedule")
        n = default_speed_processes(settings) if speed_processes is None else speed_processes
        supervisor = Supervisor.for_platform(settings, n, global_args=global_args, serve_args=serve_args)
        typer.echo(f"run: daemon + {n} speed process(es); status in {supervisor.run_file}", err=True)
        raise typer.Exit(supervisor.run())
