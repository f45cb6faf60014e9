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

from confluent_kafka import KafkaException, Producer

from lambda_rt.errors import ServiceUnavailableError

__all__ = ["ProduceReport", "paced", "produce_batches"]


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
    producer: Producer,
    topic: str,
    batches: Iterable[list[tuple[bytes, bytes]]],
    *,
    rate: float | None = None,
    out_file: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ProduceReport:
    """Produce every (key, value) and wait until the broker acknowledged all.

    Raises:
        ServiceUnavailableError: messages were not acknowledged (the count is
            in the message), so the caller never believes lost data arrived.
    """
    failed = 0

    def _on_delivery(err: object, _msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    total = 0
    t0 = time.monotonic()
    with ExitStack() as stack:
        out = stack.enter_context(open(out_file, "wb")) if out_file else None
        for batch in paced(batches, rate):
            for key, value in batch:
                while True:
                    try:
                        producer.produce(topic, value=value, key=key, on_delivery=_on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)  # local queue full: let deliveries drain
                    except KafkaException as exc:
                        raise ServiceUnavailableError(f"cannot produce to {topic}: {exc}") from exc
            producer.poll(0)
            if out is not None:
                out.write(b"\n".join(v for _, v in batch) + b"\n")
            total += len(batch)
            if on_progress:
                on_progress(len(batch))
        remaining = producer.flush(60)
    seconds = time.monotonic() - t0
    if remaining or failed:
        raise ServiceUnavailableError(
            f"{failed + remaining} of {total} messages were not acknowledged by the broker"
        )
    return ProduceReport(messages=total, seconds=seconds, failed=failed)
