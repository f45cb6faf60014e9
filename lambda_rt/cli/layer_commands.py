"""Commands that run a layer: each imports its layer only when invoked."""

from __future__ import annotations

import typer

from lambda_rt.cli.errors import usage_error

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the layer commands to ``app``."""

    @app.command()
    def demo(
        ctx: typer.Context,
        duration: float | None = typer.Option(
            None, "--duration", help="Seconds of live traffic [default 120; --quick: 10]."
        ),
        rate: float | None = typer.Option(
            None,
            "--rate",
            help="Live base events per second [default 50000; --quick: 5000]; lowered to what "
            "this machine measured on the backlog unless --no-fit-rate.",
        ),
        fit_rate: bool = typer.Option(
            True, "--fit-rate/--no-fit-rate", help="Scale the base rate to the measured capacity."
        ),
        burst: float = typer.Option(5.0, "--burst", help="Flash-sale rate multiplier (5-10x)."),
        backlog: int | None = typer.Option(
            None, "--backlog", help="Events spread over the past 2 days [default 300000; --quick: 10000]."
        ),
        bad_fraction: float = typer.Option(0.005, "--bad-fraction", help="Fraction of malformed messages."),
        keep_running: bool = typer.Option(
            False, "--keep-running", help="Keep the daemon and speed layer running until Ctrl-C."
        ),
        quick: bool = typer.Option(False, "--quick", help="A small run (about a minute)."),
    ) -> None:
        """Run the platform end to end: traffic, live view, batch jobs, merged query, chart."""
        if duration is not None and duration <= 0:
            raise usage_error("--duration must be > 0 seconds")
        if rate is not None and rate <= 0:
            raise usage_error("--rate must be > 0 events per second")
        if burst < 1:
            raise usage_error("--burst must be >= 1")
        if backlog is not None and backlog < 0:
            raise usage_error("--backlog must be >= 0")
        if not 0 <= bad_fraction <= 1:
            raise usage_error("--bad-fraction must be within [0, 1]")
        from dataclasses import replace

        from lambda_rt.cli.context import CliContext, settings_of
        from lambda_rt.demo import DemoOptions, run_demo

        options = DemoOptions.quick() if quick else DemoOptions()
        plan = replace(options.plan, burst=burst, bad_fraction=bad_fraction)
        if duration is not None:
            plan = replace(plan, duration_s=duration)
        if rate is not None:
            plan = replace(plan, rate=rate)
        if backlog is not None:
            plan = replace(plan, backlog_events=backlog)
        obj = ctx.find_object(CliContext)
        run_demo(
            settings_of(ctx),
            replace(options, plan=plan, keep_running=keep_running, fit_rate=fit_rate),
            config_file=obj.config_file if obj else None,
        )
