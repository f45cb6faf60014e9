"""An in-memory harness for the speed graph: hand-built batches in, what came out to assert on.

In the spirit of bytewax's ``TestingSource``/``TestingSink``: a test builds
:class:`~speed_layer.microbatch.RawBatch` values by hand (:func:`raw_batch`),
feeds them through the real streamz nodes (validate, dead letters, shedding,
aggregation, the atomic Redis write, the commit; wired by
``speed_layer.graph`` exactly as the pipeline wires them) and asserts on what
came out: the applied batches, the offsets committed, the dead letters, and
the corrections the writer found for the source's positions.

There is no Kafka here: the head is a plain ``Stream`` and the commit and
the dead letters go to lists. Redis is real (pass a client): the atomic write
and its guards are the point of the speed layer and are never faked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from streamz import Stream

from lambda_rt.events.validate import TimeWindow
from speed_layer.epoch import EpochStore
from speed_layer.graph import build_speed_graph
from speed_layer.keys import SpeedKeys
from speed_layer.lag import LagTracker
from speed_layer.microbatch import AppliedBatch, RawBatch
from speed_layer.positioning import Corrections
from speed_layer.redis_apply import BatchApplier
from speed_layer.shedding import LoadShedder

__all__ = ["DeadLetterList", "Letter", "SpeedHarness", "raw_batch"]

TOPIC = "events"
"""The topic hand-built batches say they came from."""


def raw_batch(
    values: Sequence[bytes],
    *,
    partition: int = 0,
    first_offset: int = 0,
    partitions: Sequence[int] | None = None,
    offsets: Sequence[int] | None = None,
    timestamps_ms: Sequence[int] | None = None,
    epoch: str = "",
    allow_gaps: dict[int, int] | None = None,
    topic: str = TOPIC,
) -> RawBatch:
    """A batch as the Kafka source would emit it.

    By default every value is on ``partition`` at consecutive offsets from
    ``first_offset``, produced now; ``partitions``/``offsets``/``timestamps_ms``
    (one per value) say otherwise.
    """
    n = len(values)
    now = int(time.time() * 1000)
    return RawBatch(
        topic=topic,
        values=list(values),
        partitions=np.asarray(partitions if partitions is not None else [partition] * n, dtype=np.int64),
        offsets=np.asarray(
            offsets if offsets is not None else range(first_offset, first_offset + n), dtype=np.int64
        ),
        timestamps_ms=np.asarray(timestamps_ms if timestamps_ms is not None else [now] * n, dtype=np.int64),
        consumed_at=time.monotonic(),
        epoch=epoch,
        allow_gaps=dict(allow_gaps or {}),
    )


@dataclass(frozen=True)
class Letter:
    """One dead letter: the original bytes, the reason and where it came from."""

    value: bytes | None
    reason: str
    partition: int
    offset: int
    source_topic: str


class DeadLetterList:
    """The dead-letter sink of the harness: letters go to :attr:`letters` (a list)."""

    def __init__(self) -> None:
        self.letters: list[Letter] = []
        self.flushes = 0

    def send(
        self,
        rejects: Sequence[Any],
        values: Sequence[bytes | None],
        partitions: Any,
        offsets: Any,
        source_topic: str,
    ) -> int:
        for r in rejects:
            i = int(r.index)
            reason = str(getattr(r.reason, "value", r.reason))
            self.letters.append(Letter(values[i], reason, int(partitions[i]), int(offsets[i]), source_topic))
        return len(rejects)

    def flush(self) -> None:
        self.flushes += 1


class SpeedHarness:
    """The real speed graph below a hand-fed head, writing to real Redis.

    Args:
        client: a Redis client (the test's server).
        keys: the key prefix to write under (one per test).
        window: the accepted event-time window.
        shed_event_types, shed_lag_messages, shed_lag_seconds, shed_sustain:
            the load shedder's settings (no types: never sheds).
        overlap: run each write in the writer's worker thread, as the
            pipeline does with ``speed.overlap_writes``.
        retention_s: bucket TTL.

    What came out: :attr:`applied` (every AppliedBatch, in order),
    :attr:`commits` (the ``(partition, first, next)`` ranges committed, one
    list per batch), :attr:`corrections` (what writes found for the source's
    positions), :attr:`dead_letters`.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: SpeedKeys,
        *,
        window: TimeWindow | None = None,
        shed_event_types: tuple[str, ...] = (),
        shed_lag_messages: int = 1_000_000,
        shed_lag_seconds: float = 3600.0,
        shed_sustain: int = 3,
        overlap: bool = False,
        retention_s: int = 3600,
    ) -> None:
        self.keys = keys
        self.epochs = EpochStore(client, keys)
        self.lag = LagTracker()
        self.head = Stream()
        self.dead_letters = DeadLetterList()
        self.commits: list[list[tuple[int, int, int]]] = []
        self.shedder = LoadShedder(
            self.lag,
            shed_event_types,
            lag_messages=shed_lag_messages,
            lag_seconds=shed_lag_seconds,
            sustain=shed_sustain,
        )
        graph = build_speed_graph(
            self.head,
            keys=keys,
            window=window or TimeWindow(),
            dead_letters=self.dead_letters,
            shedder=self.shedder,
            applier=BatchApplier(client, keys, retention_s=retention_s),
            commit=self.commits.append,
            lag=self.lag,
            overlap=overlap,
        )
        self.writer = graph.writer
        self.applied: list[AppliedBatch] = graph.applied.sink_to_list()
        self.corrections: list[Corrections] = graph.corrections.sink_to_list()
        self.epoch = ""

    def start_epoch(self, targets: dict[int, int] | None = None) -> str:
        """Create the speed view's epoch (or adopt the existing one), as a first start does.

        ``targets``: the rebuild's replay targets (partition -> offset);
        default none, so the view counts as built.
        """
        self.epoch, _ = self.epochs.claim(targets or {})
        return self.epoch

    def batch(self, values: Sequence[bytes], **kwargs: Any) -> RawBatch:
        """:func:`raw_batch` in the harness' current epoch (unless ``epoch`` is given)."""
        kwargs.setdefault("epoch", self.epoch)
        return raw_batch(values, **kwargs)

    def feed(self, *batches: RawBatch) -> list[AppliedBatch]:
        """Push ``batches`` through the graph, wait for the last write; returns what they applied."""
        before = len(self.applied)
        for b in batches:
            self.head.emit(b)
        self.writer.drain()
        return self.applied[before:]

    def close(self) -> None:
        """Wait for the write in flight and stop the writer's thread."""
        try:
            self.writer.drain()
        finally:
            self.writer.close()

    def __enter__(self) -> SpeedHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
