"""``lambda-rt speed``: run the speed layer (imported only when invoked)."""

from __future__ import annotations

import typer

from lambda_rt.cli.context import settings_of
from lambda_rt.cli.errors import usage_error

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``speed`` to ``app``."""

    @app.command()
    def speed(
        ctx: typer.Context,
        until_idle: float | None = typer.Option(
            None, "--until-idle", help="Exit 0 after SECONDS without a new message (tests, scripts)."
        ),
        metrics_port: int | None = typer.Option(
            None,
            "--metrics-port",
            help="Serve Prometheus metrics on this port [default: speed.metrics_port].",
        ),
    ) -> None:
        """Run the speed layer: Kafka -> validate -> aggregates in Redis (exactly-once)."""
        if until_idle is not None and until_idle <= 0:
            raise usage_error("--until-idle must be positive")
        if metrics_port is not None and not 0 < metrics_port < 65536:
            raise usage_error("--metrics-port must be a TCP port (1-65535)")
        from speed_layer.pipeline import run_speed

        report = run_speed(settings_of(ctx), until_idle_s=until_idle, metrics_port=metrics_port)
        typer.echo(
            f"speed: {report.messages} messages, {report.events} events applied, "
            f"{report.dead_letters} to the DLQ, {report.shed} shed, {report.replayed} replayed "
            f"in {report.seconds:.1f} s",
            err=True,
        )
