"""The batched Kafka source: a streamz ``Source`` that emits :class:`RawBatch`.

Each cycle calls ``consume(num_messages=batch_size, timeout=batch_timeout)``
once and emits the batch synchronously: the downstream nodes validate,
aggregate and hand the batch to the Redis writer, which may still be writing
it (at most one batch in flight) when the next ``consume()`` starts. The
``drain`` hook waits for that write and commits it; the source calls it before
a rebalance callback (fired inside ``consume()``) changes the assignment, when
a ``consume()`` returns nothing, and before closing. So a rebalance never sees
a half-applied batch, and in-flight work is bounded by two batches plus
librdkafka's prefetch queue (``queued.max.messages.kbytes``).

On partition assignment each partition is positioned at the next offset Redis
holds for it (Redis is the source of truth; the Kafka commit is a hint used
only when Redis has nothing). Nothing here reads broker high watermarks (this
broker reports them wrong): lag is computed from our own offsets, see
:class:`LagTracker`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, TopicPartition
from streamz import Source, Stream

from lambda_rt.clients.kafka import make_consumer
from lambda_rt.config import Settings
from speed_layer.batch import RawBatch
from speed_layer.errors import SpeedLayerError

__all__ = ["LagTracker", "from_speed_kafka"]


class LagTracker:
    """Lag from our own offsets, never from broker watermarks.

    * ``messages``: per partition, the next offset librdkafka will fetch
      (``next_offset`` in its statistics) minus the next offset we applied and
      committed; i.e. messages already fetched from the broker but not yet in
      Redis. It is bounded by the prefetch queue, so it says "we are behind"
      without claiming to know how far the broker's head is.
    * ``seconds``: wall clock minus the produce timestamp of the newest
      message of the last batch (0 when idle): how far behind real time the
      speed view is.
    """

    def __init__(self) -> None:
        self.committed: dict[int, int] = {}
        self.fetch_next: dict[int, int] = {}
        self.seconds = 0.0

    def on_stats(self, stats_json: str, topic: str) -> None:
        """librdkafka ``stats_cb``: remember each partition's fetch position."""
        try:
            parts = json.loads(stats_json)["topics"][topic]["partitions"]
        except (KeyError, ValueError):
            return
        for p, info in parts.items():
            pid = int(p)
            if pid >= 0 and int(info.get("next_offset", -1)) >= 0:
                self.fetch_next[pid] = int(info["next_offset"])

    @property
    def messages(self) -> int:
        return sum(
            max(0, nxt - self.committed[p]) for p, nxt in self.fetch_next.items() if p in self.committed
        )

    def forget(self, partitions: list[int]) -> None:
        for p in partitions:
            self.committed.pop(p, None)
            self.fetch_next.pop(p, None)


@Stream.register_api(staticmethod)
class from_speed_kafka(Source):
    """Consume the events topic in group ``settings.speed.group`` as RawBatches.

    Args:
        settings: the process settings (topic, group, batch size and timeout).
        resume_offsets: returns partition -> next offset held by Redis.
        until_idle_s: stop after this long without a message (counted from the
            first partition assignment), or None to run until stopped.
    """

    def __init__(
        self,
        settings: Settings,
        resume_offsets: Callable[[], dict[int, int]],
        *,
        until_idle_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic
        self.resume_offsets = resume_offsets
        self.until_idle_s = until_idle_s
        self.lag = LagTracker()
        self.consumer: Consumer | None = None
        self.assigned: set[int] = set()
        self.assignments = 0
        self._started_at = time.monotonic()
        self._last_message: float | None = None
        self._batch_size = settings.speed.batch_size
        self._timeout_s = settings.speed.batch_timeout_ms / 1000
        self.drain: Callable[[], object] = lambda: None
        """Waits for the batch in flight downstream and commits it (set by the pipeline)."""
        super().__init__(**kwargs)

    # -- Kafka plumbing ---------------------------------------------------------
    def _open(self) -> Consumer:
        consumer = make_consumer(
            self.settings.kafka,
            self.settings.speed.group,
            **{
                "statistics.interval.ms": 1000,
                "stats_cb": lambda s: self.lag.on_stats(s, self.topic),
                "queued.max.messages.kbytes": 65536,
            },
        )
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()
        stored = self.resume_offsets()
        for tp in partitions:
            if tp.partition in stored:
                tp.offset = stored[tp.partition]
                self.lag.committed[tp.partition] = stored[tp.partition]
        consumer.incremental_assign(partitions)
        self.assigned.update(tp.partition for tp in partitions)
        self.assignments += 1
        if self._last_message is None:
            self._last_message = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()  # the batch in flight is applied and committed before we let go
        consumer.incremental_unassign(partitions)
        gone = [tp.partition for tp in partitions]
        self.assigned.difference_update(gone)
        self.lag.forget(gone)

    def commit(self, offsets: list[tuple[int, int, int]]) -> None:
        """Commit ``(partition, first, next)`` ranges to Kafka (a resume hint only)."""
        if not offsets or self.consumer is None:
            return
        tps = [TopicPartition(self.topic, p, nxt) for p, _, nxt in offsets]
        for p, _, nxt in offsets:
            self.lag.committed[p] = nxt
        with contextlib.suppress(KafkaException):  # a hint: Redis holds the truth
            self.consumer.commit(offsets=tps, asynchronous=True)

    def seek_past(self, stored: dict[int, int]) -> None:
        """Skip ahead on partitions whose offsets Redis already holds."""
        if self.consumer is None:
            return
        for p, off in stored.items():
            if p in self.assigned:
                try:
                    self.consumer.seek(TopicPartition(self.topic, p, off))
                except KafkaException:
                    continue  # revoked meanwhile; the new owner resumes from Redis

    # -- the streamz source -----------------------------------------------------
    def _idle(self) -> bool:
        if self.until_idle_s is None:
            return False
        now = time.monotonic()
        if self._last_message is None:  # no assignment yet: allow the group join
            grace = 3 * self.settings.kafka.session_timeout_ms / 1000 + self.until_idle_s
            return now - self._started_at > grace
        return now - self._last_message >= self.until_idle_s

    async def _run(self) -> None:
        if self.consumer is None:
            self.consumer = self._open()
        msgs = self.consumer.consume(num_messages=self._batch_size, timeout=self._timeout_s)
        if msgs:
            good = [m for m in msgs if m.error() is None]
            if len(good) != len(msgs):
                errors = [e for e in (m.error() for m in msgs) if e is not None]
                fatal = [e for e in errors if e.fatal()]
                if fatal:
                    raise SpeedLayerError(f"Kafka consumer failed: {fatal[0]}")
            if good:
                self._last_message = time.monotonic()
                batch = RawBatch(
                    topic=self.topic,
                    values=[m.value() or b"" for m in good],
                    partitions=np.fromiter((m.partition() for m in good), np.int64, len(good)),
                    offsets=np.fromiter((m.offset() for m in good), np.int64, len(good)),
                    timestamps_ms=np.fromiter((m.timestamp()[1] for m in good), np.int64, len(good)),
                    consumed_at=self._last_message,
                )
                await self.emit(batch, asynchronous=True)
                return
        self.drain()
        self.lag.seconds = 0.0
        if self._idle():
            self.stop()

    async def run_until_stopped(self) -> None:
        """Run the consume loop in the current event loop until :meth:`stop`."""
        self.stopped = False
        self.started = True
        try:
            await self.run()
            self.drain()
        finally:
            self.close()

    def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
