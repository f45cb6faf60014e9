"""Commands that run a layer: each imports its layer only when invoked."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the layer commands to ``app``."""

    @app.command()
    def demo(
        ctx: typer.Context,
        events: int = typer.Option(200_000, "--events", help="How many events to generate."),
        rate: float | None = typer.Option(None, "--rate", help="Messages per second."),
        bad_fraction: float = typer.Option(0.01, "--bad-fraction", help="Fraction of malformed messages."),
    ) -> None:
        """Bring the stack up, produce traffic and show what arrived."""
        from lambda_rt.cli.context import settings_of
        from lambda_rt.demo import run_demo

        run_demo(settings_of(ctx), events=events, rate=rate, bad_fraction=bad_fraction)
