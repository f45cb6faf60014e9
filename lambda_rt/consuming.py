"""Read a topic from the beginning and count what is there, by consuming.

This broker's high watermarks are wrong, so "how many messages are in the
topic" is answered by reading them: partitions are assigned directly (no group
join, nothing committed) and reading stops after ``idle_s`` without a message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from lambda_rt.clients.kafka import make_consumer
from lambda_rt.config import KafkaSettings
from lambda_rt.errors import ServiceUnavailableError

__all__ = ["TopicContents", "read_topic"]


@dataclass
class TopicContents:
    """Values read from a topic, with per-partition counts and message headers."""

    values: list[bytes] = field(default_factory=list)
    headers: list[dict[str, bytes]] = field(default_factory=list)
    per_partition: dict[int, int] = field(default_factory=dict)


def _headers(raw: Any) -> dict[str, bytes]:
    """Message headers as a dict (a repeated header keeps its last value)."""
    return {str(pair[0]): bytes(pair[1] or b"") for pair in (raw or [])}


def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    idle_s: float = 2.0,
    keep_values: bool = True,
    on_batch: Callable[[int], None] | None = None,
) -> TopicContents:
    """Consume ``topic`` from the beginning until it stays idle for ``idle_s``."""
    consumer = make_consumer(settings, group_id=f"lambda-rt-reader-{time.time_ns()}")
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            raise ServiceUnavailableError(f"topic {topic} does not exist at {settings.bootstrap}")
        parts = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out = TopicContents(per_partition=dict.fromkeys(parts, 0))
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            msgs = consumer.consume(num_messages=10_000, timeout=0.2)
            good = [m for m in msgs if m.error() is None]
            if not good:
                continue
            last = time.monotonic()
            for m in good:
                partition = m.partition()
                if partition is not None:
                    out.per_partition[partition] += 1
                if keep_values:
                    out.values.append(m.value() or b"")
                    out.headers.append(_headers(m.headers()))
            if on_batch:
                on_batch(len(good))
        return out
    finally:
        consumer.close()
