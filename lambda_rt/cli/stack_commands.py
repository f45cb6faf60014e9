"""``lambda-rt up | down | status``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from lambda_rt.cli.context import settings_of
from lambda_rt.stack import launcher

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the stack commands to ``app``."""

    @app.command()
    def up(ctx: typer.Context) -> None:
        """Start the embedded stack (S3, broker, Redis) and wait until each answers."""
        console = Console(stderr=True)
        with console.status("starting the embedded stack..."):
            states = launcher.up(settings_of(ctx))
        for st in states:
            verb = "started" if st.started else "already running"
            console.print(f"{st.name:6} {verb:16} {st.endpoint}  (pid {st.pid})")

    @app.command()
    def down(ctx: typer.Context) -> None:
        """Stop the servers this state dir started."""
        stopped = launcher.down(settings_of(ctx))
        Console(stderr=True).print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")

    @app.command()
    def status(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Each endpoint and whether it answers."""
        report = launcher.status(settings_of(ctx))
        if as_json:
            print(json.dumps(report, indent=2))
            return
        table = Table(title=f"lambda-rt stack ({report['state_dir']})")
        for col in ("service", "endpoint", "up"):
            table.add_column(col)
        table.add_row("kafka", report["kafka"]["bootstrap"], _yes(report["kafka"]["up"]))
        table.add_row("redis", report["redis"]["url"], _yes(report["redis"]["up"]))
        for node in report.get("redis_ha", {}).get("nodes", []):
            table.add_row(f"  {node['name']} ({node['role'] or 'down'})", node["endpoint"], _yes(node["up"]))
        for sentinel in report.get("redis_ha", {}).get("sentinels", []):
            table.add_row(f"  {sentinel['name']}", sentinel["endpoint"], _yes(sentinel["up"]))
        table.add_row("s3", report["s3"]["endpoint"], _yes(report["s3"]["up"]))
        table.add_row("clickhouse", report["clickhouse"]["dsn"], "in-process")
        processes = report.get("processes") or {}
        for child in processes.get("children", []) if processes.get("running") else []:
            exit_ = child.get("last_exit") or {}
            detail = f"pid {child['pid']}, up {child['uptime_s']} s" if child["pid"] else "restarting"
            detail += f", {child['restarts']} restarts"
            if exit_:
                detail += f", last exit {exit_.get('signal') or exit_.get('code')}"
            table.add_row(f"run: {child['name']}", detail, _yes(child["pid"] is not None))
        Console().print(table)


def _yes(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"
