"""``lambda-rt generate``: synthetic e-commerce traffic into Kafka (and a file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lambda_rt.cli.context import settings_of
from lambda_rt.cli.errors import usage_error
from lambda_rt.vocabulary import MINUTE_MS

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``generate`` to ``app``."""

    @app.command()
    def generate(
        ctx: typer.Context,
        events: int = typer.Option(..., "--events", help="How many messages to produce."),
        rate: float | None = typer.Option(
            None, "--rate", help="Messages per second (default: as fast as possible)."
        ),
        seed: int = typer.Option(42, "--seed", help="Random seed: same seed, same events."),
        bad_fraction: float = typer.Option(
            0.0, "--bad-fraction", help="Fraction of malformed messages (0..1)."
        ),
        span_minutes: float = typer.Option(
            10.0, "--span-minutes", help="Event times spread over N minutes before --end."
        ),
        end: str | None = typer.Option(None, "--end", help="Latest event time, ISO-8601 UTC [default: now]."),
        out: Path | None = typer.Option(None, "--out", help="Also write the values as JSON lines here."),
        no_kafka: bool = typer.Option(False, "--no-kafka", help="Only write --out; produce nothing."),
        schema_version: str = typer.Option(
            "1",
            "--schema-version",
            help="Event schema: 1, 2 (campaigns, payment signals, stock levels) or mixed (half each).",
        ),
    ) -> None:
        """Produce synthetic events to the events topic at a target rate."""
        from lambda_rt.clients.kafka import KafkaProducer
        from lambda_rt.events.generator import SCHEMA_CHOICES, EventGenerator, GeneratorConfig
        from lambda_rt.producing import produce_batches

        if events <= 0:
            raise usage_error("--events must be a positive integer")
        if rate is not None and rate <= 0:
            raise usage_error("--rate must be positive")
        if not 0.0 <= bad_fraction <= 1.0:
            raise usage_error("--bad-fraction must be between 0 and 1")
        if span_minutes <= 0:
            raise usage_error("--span-minutes must be positive")
        if schema_version not in SCHEMA_CHOICES:
            raise usage_error(f"--schema-version must be one of {', '.join(SCHEMA_CHOICES)}")
        if no_kafka and out is None:
            raise usage_error("--no-kafka needs --out")
        end_ms = _parse_end_ms(end)
        settings = settings_of(ctx)
        gen = EventGenerator(
            GeneratorConfig(
                seed=seed,
                bad_fraction=bad_fraction,
                span_ms=int(span_minutes * MINUTE_MS),
                end_ms=end_ms,
                schema_version=schema_version,
            )
        )
        console = Console(stderr=True)
        batches = gen.iter_batches(events, batch_size=min(10_000, events))
        if no_kafka:
            from lambda_rt.events.generator import write_jsonl

            assert out is not None
            n = write_jsonl(out, (v for batch in batches for _, v in batch))
            console.print(f"wrote {n} events to {out}")
            return
        columns = (TextColumn("producing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with (
            KafkaProducer(settings.kafka) as producer,
            Progress(*columns, console=console, transient=False) as progress,
        ):
            task = progress.add_task("produce", total=events)
            report = produce_batches(
                producer,
                settings.kafka.topic,
                batches,
                rate=rate,
                out_file=out,
                on_progress=lambda n: progress.advance(task, n),
            )
        console.print(
            f"produced {report.messages} events to '{settings.kafka.topic}' at "
            f"{settings.kafka.bootstrap} in {report.seconds:.1f} s ({report.rate:,.0f}/s)"
            + (f"; wrote {out}" if out else "")
        )


def _parse_end_ms(text: str | None) -> int | None:
    """``--end`` as epoch ms; naive times are UTC."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise usage_error(f"--end: cannot parse {text!r} as an ISO-8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
