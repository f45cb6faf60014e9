"""``lambda-rt ingest`` and ``lambda-rt batch run|schedule``: the batch layer's commands.

``batch_layer`` is imported inside the command bodies only (lambda_rt never
imports a layer at import time). A bad ``--start``/``--end`` is a usage error
(one line, exit 2); an engine owned by another process is a one-line error.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from enum import StrEnum

import typer

from lambda_rt.cli.errors import usage_error
from lambda_rt.config import Settings
from lambda_rt.signals import stop_event_on_signals
from lambda_rt.vocabulary import RUNNABLE_JOBS

__all__ = ["parse_iso", "register"]


# typer offers the choices of an Enum; its members are the vocabulary's job names
BatchJob = StrEnum("BatchJob", {kind: kind for kind in RUNNABLE_JOBS})  # type: ignore[misc]


def parse_iso(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed; naive means UTC) or a usage error."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise usage_error(
            f"{option}: {value!r} is not an ISO 8601 time (e.g. 2026-11-26T10:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _run_through_daemon(settings: Settings, kind: str, lo: datetime | None, hi: datetime | None) -> bool:
    """Send the job to a running ``lambda-rt serve`` (it owns the embedded engine).

    Returns False when no daemon answers for this state dir, so the caller runs
    the job in this process instead.
    """
    from serving.client import connect, find_daemon

    url = find_daemon(settings)
    if url is None:
        return False
    typer.echo(f"running '{kind}' in the daemon at {url}", err=True)
    if kind != "tier":
        from lambda_rt.demo.processes import dask_dashboard

        typer.echo(dask_dashboard(settings, settings.dask.dashboard_address), err=True)
    client = connect(settings, url=url)
    try:
        report = client.run_job(kind, lo, hi)
    finally:
        client.close()
    for summary in report.get("summaries", []):
        typer.echo(summary)
    return True


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and the ``batch`` group to ``app``."""
    batch = typer.Typer(help="Batch layer: recompute, tiering, schedule.", no_args_is_help=True)
    app.add_typer(batch, name="batch")

    @app.command()
    def ingest(
        ctx: typer.Context,
        until_idle: float | None = typer.Option(
            None, "--until-idle", help="Stop after SECONDS without a message (default: run until Ctrl-C)."
        ),
    ) -> None:
        """Consume the events topic (group 'ingest') into ClickHouse events_hot."""
        from batch_layer.ingest import Ingestor
        from lambda_rt.cli.context import settings_of
        from lambda_rt.clients.clickhouse import open_clickhouse

        if until_idle is not None and until_idle <= 0:
            raise usage_error("--until-idle must be > 0 seconds")
        settings = settings_of(ctx)
        client = open_clickhouse(settings)
        stop = stop_event_on_signals()
        report = Ingestor(settings, client).run(stop=stop, until_idle_s=until_idle)
        typer.echo(report.summary())

    @batch.command("run")
    def run(
        ctx: typer.Context,
        job: BatchJob = typer.Argument(..., help="The job to run (all: recompute, then tier)."),
        start: str | None = typer.Option(None, "--start", help="Backfill from this ISO time (recompute)."),
        end: str | None = typer.Option(None, "--end", help="Backfill up to this ISO time (recompute)."),
    ) -> None:
        """Run a batch job once (for cron or a Kubernetes CronJob)."""
        lo, hi = parse_iso(start, "--start"), parse_iso(end, "--end")
        if lo is not None and hi is not None and hi <= lo:
            raise usage_error("--end must be after --start")
        if job.value == "tier" and (lo or hi):
            raise usage_error("--start/--end apply to recompute (and all), not to tier")
        from batch_layer.jobs import jobs_for
        from lambda_rt.cli.context import settings_of
        from lambda_rt.clients.clickhouse import open_clickhouse

        settings = settings_of(ctx)
        if _run_through_daemon(settings, job.value, lo, hi):
            return
        client = open_clickhouse(settings)
        jobs = jobs_for(job.value, lo, hi)
        if any(j.uses_dask for j in jobs) and importlib.util.find_spec("bokeh") is None:
            # The job prints its LocalCluster's dashboard link; without bokeh it is dead.
            typer.echo("Dask dashboard: not available (bokeh is not installed: pip install bokeh)", err=True)
        for j in jobs:
            typer.echo(j.run(settings, client, progress=True).summary())

    @batch.command("schedule")
    def schedule(ctx: typer.Context) -> None:
        """Run recompute and tier jobs on their schedule (APScheduler) until Ctrl-C."""
        from batch_layer.schedule import BatchScheduler
        from lambda_rt.cli.context import settings_of
        from lambda_rt.clients.clickhouse import open_clickhouse

        settings = settings_of(ctx)
        client = open_clickhouse(settings)
        typer.echo(
            f"batch schedule: recompute every {settings.batch.recompute_every_s} s, "
            f"tier on '{settings.batch.tier_cron}' (UTC); Ctrl-C to stop"
        )
        BatchScheduler(settings, client).run(stop_event_on_signals())
