"""Produce generated events to Kafka at a target rate, with progress.

Used by ``lambda-rt generate``, the demo and the benchmarks. Rate limiting is
per batch (sleep until the batch is due), so a high rate costs no per-event
Python; ``rate=None`` produces as fast as the producer accepts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.config import KafkaSettings

__all__ = ["ProduceReport", "paced", "produce_all", "produce_batches"]


@dataclass(frozen=True)
class ProduceReport:
    """What a produce run did."""

    messages: int
    seconds: float
    failed: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def paced(
    batches: Iterable[list[tuple[bytes, bytes]]], rate: float | None
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Yield batches no faster than ``rate`` messages per second overall."""
    start = time.monotonic()
    sent = 0
    for batch in batches:
        if rate:
            due = start + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield batch
        sent += len(batch)


def produce_batches(
    producer: KafkaProducer,
    topic: str,
    batches: Iterable[list[tuple[bytes, bytes]]],
    *,
    rate: float | None = None,
    out_file: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Produce every (key, value) and wait until the broker acknowledged all.

    The caller owns ``producer`` (and closes it).

    Raises:
        KafkaClientError: messages were not acknowledged (the count is in the
            message), so the caller never believes lost data arrived.
    """
    total = 0
    t0 = time.monotonic()
    with ExitStack() as stack:
        out = stack.enter_context(open(out_file, "wb")) if out_file else None
        for batch in paced(batches, rate):
            producer.produce_many(topic, batch)
            if out is not None:
                out.write(b"\n".join(v for _, v in batch) + b"\n")
            total += len(batch)
            if on_progress:
                on_progress(len(batch))
        producer.flush(60)
    return ProduceReport(messages=total, seconds=time.monotonic() - t0, failed=0)


def produce_all(
    settings: KafkaSettings,
    batches: Iterable[list[tuple[bytes, bytes]]],
    *,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    **producer_overrides: Any,
) -> ProduceReport:
    """:func:`produce_batches` to ``settings.topic`` with a producer opened and closed here."""
    with KafkaProducer(settings, **producer_overrides) as producer:
        return produce_batches(producer, settings.topic, batches, rate=rate, on_progress=on_progress)
