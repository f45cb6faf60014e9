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

Where each partition resumes, and what to do when a write finds the epoch
changed, a gap or a replay, is :class:`~speed_layer.positioning.Positioning`'s
job; the source calls it from the rebalance callbacks, per batch (accepted
gaps) and when idle. Lag is :class:`~speed_layer.lag.LagTracker`'s, computed
from our own offsets: nothing here reads broker high watermarks (this broker
reports them wrong).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from streamz import Source, Stream

from lambda_rt.clients.kafka import ConsumerErrorPolicy, make_consumer
from lambda_rt.config import Settings
from lambda_rt.idle import idle_wait_s, topic_partition_count
from speed_layer.epoch import EpochStore
from speed_layer.lag import LagTracker
from speed_layer.microbatch import RawBatch
from speed_layer.positioning import Positioning

__all__ = ["from_speed_kafka"]

_TIMESTAMP = itemgetter(1)  # Message.timestamp() -> (type, ms)


@Stream.register_api(staticmethod)
class from_speed_kafka(Source):
    """Consume the events topic in group ``settings.speed.group`` as RawBatches.

    Args:
        settings: the process settings (topic, group, batch size and timeout).
        epochs: the speed view's epoch and offsets in Redis (read by the positioning).
        until_idle_s: stop after this long without a message (counted from the
            first partition assignment), or None to run until stopped.
    """

    def __init__(
        self,
        settings: Settings,
        epochs: EpochStore,
        *,
        until_idle_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic
        self.until_idle_s = until_idle_s
        self.lag = LagTracker()
        self.positioning = Positioning(self.topic, epochs, self.lag)
        self._errors = ConsumerErrorPolicy()
        self.consumer: Consumer | None = None
        self._started_at = time.monotonic()
        self._last_message: float | None = None
        self._assignment_changed = 0.0
        self._partitions_total: int | None = None
        self._batch_size = settings.speed.batch_size
        self._timeout_s = settings.speed.batch_timeout_ms / 1000
        self._stop_requested = False
        self.drain: Callable[[], object] = lambda: None
        """Waits for the batch in flight downstream and commits it (set by the pipeline).

        Whatever that write found about our positions reaches
        :attr:`positioning` through the writer's ``corrections`` stream,
        synchronously, before ``drain`` returns."""
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
        self.positioning.consumer = consumer
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._partitions_total = topic_partition_count(consumer, self.topic)
        return consumer

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()
        self.positioning.on_assign(partitions)
        self._assignment_changed = time.monotonic()
        if self._last_message is None:
            self._last_message = time.monotonic()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()  # the batch in flight is applied and committed before we let go
        self.positioning.on_revoke(partitions)
        self._assignment_changed = time.monotonic()

    def commit(self, offsets: list[tuple[int, int, int]]) -> None:
        """Commit ``(partition, first, next)`` ranges to Kafka (a resume hint only)."""
        if not offsets or self.consumer is None:
            return
        tps = [TopicPartition(self.topic, p, nxt) for p, _, nxt in offsets]
        for p, _, nxt in offsets:
            self.lag.committed[p] = nxt
        with contextlib.suppress(KafkaException):  # a hint: Redis holds the truth
            self.consumer.commit(offsets=tps, asynchronous=True)

    # -- the streamz source -----------------------------------------------------
    def _idle(self) -> bool:
        if self.until_idle_s is None:
            return False
        now = time.monotonic()
        if self._last_message is None:  # no assignment yet: allow the group join
            grace = 3 * self.settings.kafka.session_timeout_ms / 1000 + self.until_idle_s
            return now - self._started_at > grace
        wait = idle_wait_s(
            self.until_idle_s,
            self.settings.kafka.session_timeout_ms / 1000,
            len(self.positioning.assigned),
            self._partitions_total,
        )
        return now - max(self._last_message, self._assignment_changed) >= wait

    async def _run(self) -> None:
        if self.consumer is None:
            self.consumer = self._open()
        msgs = self.consumer.consume(num_messages=self._batch_size, timeout=self._timeout_s)
        batch = self._to_batch(msgs) if msgs else None
        del msgs  # the Message objects go now, not after the batch is processed
        if batch is not None:
            await self.emit(batch, asynchronous=True)
            return
        self.drain()
        self.lag.seconds = 0.0
        self.positioning.on_idle(time.monotonic(), self._last_message)
        if self._idle():
            self.stop()

    def _to_batch(self, msgs: list[Message]) -> RawBatch | None:
        """The good messages as a RawBatch (None if none); Kafka errors per :class:`ConsumerErrorPolicy`.

        Columns are read with ``map`` over the unbound Message methods: a
        C-level loop, no Python frame per message.
        """
        good = self._errors.good(msgs)
        if not good:
            return None
        n = len(good)
        raw_values = list(map(Message.value, good))
        # a tombstone (None) is an empty, non-JSON value for validation
        values: list[bytes] = raw_values if all(raw_values) else [v or b"" for v in raw_values]  # type: ignore[assignment]
        self._last_message = time.monotonic()
        partitions = np.fromiter(map(Message.partition, good), np.int64, n)
        offsets = np.fromiter(map(Message.offset, good), np.int64, n)
        return RawBatch(
            topic=self.topic,
            values=values,
            partitions=partitions,
            offsets=offsets,
            timestamps_ms=np.fromiter(map(_TIMESTAMP, map(Message.timestamp, good)), np.int64, n),
            consumed_at=self._last_message,
            epoch=self.positioning.epoch or "",
            allow_gaps=self.positioning.allowed_gaps(partitions, offsets),
        )

    def stop(self) -> None:
        """Stop after the cycle in hand, even when asked before the loop has started.

        streamz's ``Source.stop`` is a no-op while ``stopped`` still holds its
        initial True, and the loop then clears it: a SIGTERM arriving between
        the handler's installation and the first cycle would be forgotten and
        the process would run on. The request is kept and applied when the
        loop starts (:meth:`run_until_stopped`).
        """
        self._stop_requested = True
        self.stopped = True

    async def run_until_stopped(self) -> None:
        """Run the consume loop in the current event loop until :meth:`stop`."""
        self.stopped = self._stop_requested
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
            self.positioning.consumer = None
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
