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

Redis is the source of truth (see the state contract in ``speed_layer.keys``).
On partition assignment the source reads the epoch: if it is missing (first
start, or the state was lost), it starts a rebuild (:meth:`SpeedState.claim`)
whose replay targets are the group's Kafka commits; then each partition is
positioned at the next offset Redis holds for it in that epoch, or at the
beginning of the topic when Redis holds none (never at the Kafka commit,
which would leave whatever Redis lost unrebuilt). Every batch carries the
epoch it was consumed in. When a write finds the epoch missing or changed
(state lost under a running process, or another member started a rebuild),
or when an idle check does, the source adopts the new epoch and repositions
all its partitions the same way (:meth:`resync`); when a write finds a gap
(Redis lost writes, e.g. the last second of an AOF ``everysec``), or an idle
check finds Redis' offset behind what this process applied, the partition is
sought back to Redis' offset (:meth:`rewind`). If Kafka no
longer holds the offsets Redis wants (retention), the first message after the
positioning says so and the batch carries that gap as accepted.

When a ``consume()`` returns nothing, the source reports its partitions as
replayed to the rebuild in progress (:meth:`SpeedState.caught_up`). Nothing
here reads broker high watermarks (this broker reports them wrong): lag is
computed from our own offsets, see :class:`LagTracker`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition
from streamz import Source, Stream

from lambda_rt.clients.kafka import ConsumerErrorPolicy, make_consumer
from lambda_rt.config import Settings
from lambda_rt.idle import idle_wait_s, topic_partition_count
from speed_layer.batch import RawBatch
from speed_layer.state import UNKNOWN_TARGET, SpeedState

__all__ = ["LagTracker", "from_speed_kafka"]

CATCHUP_GRACE_S = 2.0
"""An empty ``consume()`` counts as "replayed" only this long after the partitions were positioned."""
STUCK_IDLE_S = 10.0
"""Idle this long with a replay target unreached: the log no longer reaches it; stop waiting."""
EPOCH_CHECK_S = 1.0
"""How often an idle process checks that the epoch is still its own."""
_TIMESTAMP = itemgetter(1)  # Message.timestamp() -> (type, ms)


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
        state: the speed view's epoch and offsets in Redis.
        until_idle_s: stop after this long without a message (counted from the
            first partition assignment), or None to run until stopped.
    """

    def __init__(
        self,
        settings: Settings,
        state: SpeedState,
        *,
        until_idle_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic
        self.state = state
        self.until_idle_s = until_idle_s
        self.lag = LagTracker()
        self._errors = ConsumerErrorPolicy()
        self.consumer: Consumer | None = None
        self.assigned: set[int] = set()
        self.assignments = 0
        self.epoch: str | None = None
        """The epoch our partitions are positioned in (batches carry it)."""
        self.rebuilds = 0  # rebuilds this process started
        self.resyncs = 0  # times it adopted a new epoch while assigned
        self.rewinds = 0  # gaps found: partitions sought back to Redis' offset
        self._positioned: dict[int, int] = {}  # partition -> Redis' offset, until its first message
        self._positioned_at = time.monotonic()
        self._epoch_checked = 0.0
        self._started_at = time.monotonic()
        self._last_message: float | None = None
        self._assignment_changed = 0.0
        self._partitions_total: int | None = None
        self._batch_size = settings.speed.batch_size
        self._timeout_s = settings.speed.batch_timeout_ms / 1000
        self._stop_requested = False
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
        self._partitions_total = topic_partition_count(consumer, self.topic)
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()
        epoch = self._current_epoch(consumer)
        stored = self.state.offsets()
        for tp in partitions:
            tp.offset = self._position(tp.partition, stored)
        consumer.incremental_assign(partitions)
        new = {tp.partition for tp in partitions}
        if epoch != self.epoch:
            self._adopt(epoch, sorted(self.assigned - new), stored)
        self.assigned.update(new)
        self.assignments += 1
        self._positioned_at = time.monotonic()
        self._assignment_changed = time.monotonic()
        if self._last_message is None:
            self._last_message = time.monotonic()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.drain()  # the batch in flight is applied and committed before we let go
        consumer.incremental_unassign(partitions)
        gone = [tp.partition for tp in partitions]
        self.assigned.difference_update(gone)
        self._assignment_changed = time.monotonic()
        self.lag.forget(gone)
        for p in gone:
            self._positioned.pop(p, None)

    def _current_epoch(self, consumer: Consumer) -> str:
        """Redis' epoch; when there is none, start a rebuild (this or another member)."""
        epoch = self.state.epoch()
        if epoch is None:
            epoch, started = self.state.claim(self._targets(consumer), previous=self.epoch)
            self.rebuilds += int(started)
        return epoch

    def _targets(self, consumer: Consumer) -> dict[int, int]:
        """Every partition -> how far the lost view had got: the Kafka commit, or ours."""
        targets: dict[int, int] = dict.fromkeys(self.assigned, UNKNOWN_TARGET)
        try:
            meta = consumer.list_topics(self.topic, timeout=10)
            parts = list(meta.topics[self.topic].partitions)
            committed = consumer.committed([TopicPartition(self.topic, p) for p in parts], timeout=10)
            for tp in committed:
                targets[tp.partition] = tp.offset if tp.offset > 0 else UNKNOWN_TARGET
        except (KafkaException, KeyError):
            pass  # unknown: those partitions count as replayed at the first idle consume()
        for p, off in self.lag.committed.items():
            targets[p] = max(targets.get(p, UNKNOWN_TARGET), off)
        return targets

    def _position(self, partition: int, stored: dict[int, int]) -> int:
        """Where ``partition`` resumes: Redis' next offset, else the start of the topic."""
        off = stored.get(partition)
        if off is None:  # the first message says where Kafka's log starts (offset 0 or later)
            self._positioned[partition] = 0
            self.lag.committed[partition] = 0
            return OFFSET_BEGINNING
        self._positioned[partition] = off
        self.lag.committed[partition] = off
        return off

    def _adopt(self, epoch: str, partitions: list[int], stored: dict[int, int] | None = None) -> None:
        """Switch to ``epoch``: reposition ``partitions`` (already assigned) in it."""
        self.epoch = epoch
        if not partitions or self.consumer is None:
            return
        self.resyncs += 1
        offsets = stored if stored is not None else self.state.offsets()
        self._seek({p: self._position(p, offsets) for p in partitions})
        self._positioned_at = time.monotonic()

    def _seek(self, offsets: dict[int, int]) -> None:
        """Seek assigned partitions; re-assign the ones whose fetcher cannot seek yet."""
        if self.consumer is None:
            return
        retry: list[TopicPartition] = []
        for p, off in offsets.items():
            if p not in self.assigned:
                continue  # revoked meanwhile; the new owner positions it from Redis
            tp = TopicPartition(self.topic, p, off)
            try:
                self.consumer.seek(tp)
            except KafkaException:
                retry.append(tp)
        if retry:
            self.consumer.incremental_unassign([TopicPartition(self.topic, tp.partition) for tp in retry])
            self.consumer.incremental_assign(retry)

    def resync(self) -> None:
        """The epoch is missing or changed under us: rebuild or adopt, reposition everything."""
        if self.consumer is None:
            return
        epoch = self._current_epoch(self.consumer)
        if epoch != self.epoch:
            self._adopt(epoch, sorted(self.assigned))

    def rewind(self, gaps: dict[int, int]) -> None:
        """Redis' next offset is behind what we consumed: go back there, never skip."""
        self.rewinds += len(gaps)
        self._seek({p: self._position(p, gaps) for p in gaps if p in self.assigned})

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
        self._seek(stored)

    def _allowed_gaps(self, partitions: np.ndarray, offsets: np.ndarray) -> dict[int, int]:
        """Partitions whose first message after positioning is past Redis' offset.

        Kafka no longer holds the offsets in between (retention): the gap is
        real and accepted, or the partition would be rewound for ever.
        """
        allow: dict[int, int] = {}
        for p in np.unique(partitions).tolist():
            at = self._positioned.pop(p, None)
            if at is not None:
                first = int(offsets[partitions == p].min())
                if first > at:
                    allow[p] = at
        return allow

    def _on_idle(self) -> None:
        """Nothing to consume: check the epoch and Redis' offsets, report our partitions replayed."""
        now = time.monotonic()
        if self.consumer is None or not self.assigned or now - self._epoch_checked < EPOCH_CHECK_S:
            return
        self._epoch_checked = now
        self.resync()
        # Lost writes on a partition that gets no new message: no batch would
        # ever find the gap, so compare Redis' offsets with what we applied.
        stored = self.state.offsets()
        behind = {
            p: stored.get(p, 0) for p in self.assigned if stored.get(p, 0) < self.lag.committed.get(p, 0)
        }
        if behind:
            self.rewind(behind)
        if self.epoch is None or now - self._positioned_at < CATCHUP_GRACE_S:
            return
        # Every check, not once: the "caught up" of an earlier check may itself
        # have been lost (the last second of an AOF everysec).
        stuck = self._last_message is not None and now - self._last_message >= STUCK_IDLE_S
        self.state.caught_up(self.epoch, sorted(self.assigned), force=stuck)

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
            len(self.assigned),
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
        self._on_idle()
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
            epoch=self.epoch or "",
            allow_gaps=self._allowed_gaps(partitions, offsets) if self._positioned else {},
        )

    def stop(self) -> None:
        """Stop after the cycle in hand, even when asked before the loop has started.

        streamz's ``Source.stop`` is a no-op while ``stopped`` still holds its
        initial True, and the loop then clears it: a SIGTERM arriving between
        the handler's installation and the first cycle was forgotten and the
        process ran on (seen in the kill -9 chaos run: the last process,
        terminated as soon as it started, never exited).
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
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
