"""``lambda-rt serve`` and ``lambda-rt query``: the serving layer, imported when invoked.

``query`` validates its arguments before touching any service (a bad
argument is one line on stderr and exit 2), then asks ``serving.connect()``:
the running daemon over HTTP, else the engine in this process.
"""

from __future__ import annotations

import sys

import typer

from lambda_rt.cli.context import settings_of
from lambda_rt.cli.errors import usage_error

__all__ = ["register"]

FORMATS = ("table", "json", "csv")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``query`` to ``app``."""

    @app.command()
    def serve(
        ctx: typer.Context,
        host: str | None = typer.Option(None, "--host", help="Bind address [default: serve.host]."),
        port: int | None = typer.Option(None, "--port", help="TCP port, 0 = any free [default: serve.port]."),
        no_ingest: bool = typer.Option(False, "--no-ingest", help="Do not host the batch ingest."),
        no_schedule: bool = typer.Option(False, "--no-schedule", help="Do not host the batch schedule."),
        grpc_port: int | None = typer.Option(
            None,
            "--grpc-port",
            help="gRPC port, 0 = any free [default: serve.grpc_port, 28090; any free with --port 0].",
        ),
        no_grpc: bool = typer.Option(False, "--no-grpc", help="Do not serve the gRPC API."),
    ) -> None:
        """Run the platform daemon: owns ClickHouse, hosts ingest + schedule, serves HTTP, GraphQL, gRPC."""
        if port is not None and not 0 <= port < 65536:
            raise usage_error("--port must be a TCP port (0-65535)")
        if grpc_port is not None and not 0 <= grpc_port < 65536:
            raise usage_error("--grpc-port must be a TCP port (0-65535)")
        from lambda_rt.daemon import run_daemon

        run_daemon(
            settings_of(ctx),
            host=host,
            port=port,
            ingest=not no_ingest,
            schedule=not no_schedule,
            grpc_port=grpc_port,
            grpc=not no_grpc,
        )

    @app.command()
    def query(
        ctx: typer.Context,
        metric: str = typer.Argument(..., help="events, orders, revenue, refunds, unique_customers, ..."),
        by: str | None = typer.Option(
            None, "--by", help="Dimensions: store_id,event_type (product_id), or campaign_id[,event_type]."
        ),
        start: str | None = typer.Option(None, "--start", help="ISO-8601 UTC [default: end - 24 h]."),
        end: str | None = typer.Option(None, "--end", help="ISO-8601 UTC, exclusive [default: now]."),
        granularity: str = typer.Option("hour", "--granularity", help="minute, hour or day."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv."),
        strict: bool = typer.Option(False, "--strict", help="Fail (exit 1) if a range is in no layer."),
    ) -> None:
        """Query one metric, merged from the batch and speed views, with coverage."""
        if fmt not in FORMATS:
            raise usage_error(f"unknown --format {fmt!r}: use table, json or csv")
        from serving import InvalidQueryError, connect, make_spec

        try:
            spec = make_spec(metric, by, start, end, granularity)
        except InvalidQueryError as exc:
            raise usage_error(str(exc)) from exc
        with connect(settings_of(ctx)) as client:
            try:
                result = client.query_result(metric, spec.by, start, end, granularity, strict=strict)
            except InvalidQueryError as exc:
                raise usage_error(str(exc)) from exc
        if fmt == "json":
            sys.stdout.write(result.to_json().decode() + "\n")
        elif fmt == "csv":
            frame = result.frame.copy()
            frame["bucket"] = [r["bucket"] for r in result.rows()]
            frame.to_csv(sys.stdout, index=False, lineterminator="\n")
        else:
            _print_table(result)


def _print_table(result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from serving import QueryResult

    assert isinstance(result, QueryResult)
    cov = result.coverage.to_dict()
    title = f"{result.metric} per {result.granularity}" + (f" by {', '.join(result.by)}" if result.by else "")
    table = Table(title=title)
    for name in ("bucket", *result.by):
        table.add_column(name)
    table.add_column("value", justify="right")
    for row in result.rows():
        table.add_row(*(str(row[k]) for k in ("bucket", *result.by)), f"{row['value']:,}")
    console = Console()
    console.print(table)
    layers = ", ".join(f"{r['layer']} {r['start']} .. {r['end']}" for r in cov["ranges"])
    console.print(
        f"batch through {cov['batch_through'] or 'never'}; {'exact' if cov['exact'] else 'approximate'}; "
        f"{layers}; speed last applied {cov['speed']['last_applied'] or 'never'}"
    )
    for hole in cov["holes"]:
        console.print(f"[bold red]hole[/] {hole['start']} .. {hole['end']}: {hole['reason']}")
    for shed in cov["shed_ranges"]:
        counts = ", ".join(f"{n:,} {t}" for t, n in shed["counts"].items())
        console.print(
            f"[yellow]shed[/] {shed['start']} .. {shed['end']}: the speed layer shed {counts} under load; "
            "exact once the batch covers it"
        )
