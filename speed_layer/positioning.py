"""Where each partition of the speed source resumes: the epoch and rebuild state machine.

Redis is the source of truth (see the state contract in ``speed_layer.keys``).
On partition assignment :class:`Positioning` reads the epoch: if it is missing
(first start, or the state was lost), it starts a rebuild
(:meth:`EpochStore.claim`) whose replay targets are the group's Kafka commits;
then each partition is positioned at the next offset Redis holds for it in
that epoch, or at the beginning of the topic when Redis holds none (never at
the Kafka commit, which would leave whatever Redis lost unrebuilt). Every batch
carries the epoch it was consumed in.

A Redis write reports what it found as :class:`Corrections`, which the source
hands to :meth:`Positioning.correct` on the consuming thread:

* the epoch missing or changed (state lost under a running process, or another
  member started a rebuild): adopt the new epoch and reposition every
  partition the same way (:meth:`Positioning.resync`);
* a gap (Redis lost writes, e.g. the last second of an AOF ``everysec``): seek
  the partition back to Redis' offset (:meth:`Positioning.rewind`);
* a replay (Redis already holds part of the batch): skip ahead to Redis'
  offset (:meth:`Positioning.seek_past`).

When the source is idle it calls :meth:`Positioning.on_idle`, which checks the
epoch and Redis' offsets (lost writes on a partition that gets no new message
would never be found by a write) and reports the partitions as replayed to
the rebuild in progress (:meth:`EpochStore.caught_up`). If Kafka no longer
holds the offsets Redis wants (retention), the first message after the
positioning says so and :meth:`Positioning.allowed_gaps` lets the batch carry
that gap as accepted.

It never reads broker watermarks, and does not consume, commit or write Redis
buckets: the source (``speed_layer.source``) and the writer
(``speed_layer.redis_apply``) do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from speed_layer.epoch import UNKNOWN_TARGET, EpochStore
from speed_layer.lag import LagTracker

__all__ = [
    "CATCHUP_GRACE_S",
    "EPOCH_CHECK_S",
    "STUCK_IDLE_S",
    "Corrections",
    "PartitionConsumer",
    "Positioning",
]

CATCHUP_GRACE_S = 2.0
"""An empty ``consume()`` counts as "replayed" only this long after the partitions were positioned."""
STUCK_IDLE_S = 10.0
"""Idle this long with a replay target unreached: the log no longer reaches it; stop waiting."""
EPOCH_CHECK_S = 1.0
"""How often an idle process checks that the epoch is still its own."""


class PartitionConsumer(Protocol):
    """The part of ``confluent_kafka.Consumer`` that positioning uses."""

    def seek(self, partition: TopicPartition) -> None: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def incremental_unassign(self, partitions: list[TopicPartition]) -> None: ...
    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]: ...
    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


@dataclass(frozen=True)
class Corrections:
    """What Redis writes found about the source's positions, to apply on the consuming thread.

    ``stale``: partition -> Redis' next offset, for replays (skip ahead there);
    ``gaps``: partition -> Redis' next offset, for lost writes (go back there);
    ``resync``: the epoch is missing or changed (rebuild or adopt it).
    Each ``stale`` and ``gaps`` entry is one refused attempt, in order.
    """

    stale: tuple[dict[int, int], ...] = ()
    gaps: tuple[dict[int, int], ...] = ()
    resync: bool = False

    def __bool__(self) -> bool:
        return bool(self.stale or self.gaps or self.resync)


class Positioning:
    """Positions the source's partitions in the speed view's current epoch.

    Args:
        topic: the events topic.
        epochs: the epoch and offsets in Redis.
        lag: the source's lag tracker; its ``committed`` offsets are how far
            this process got, kept up to date here as partitions are positioned.

    ``consumer`` is set by the source once it has opened its consumer; until
    then nothing is sought.
    """

    def __init__(self, topic: str, epochs: EpochStore, lag: LagTracker) -> None:
        self.topic = topic
        self.epochs = epochs
        self.lag = lag
        self.consumer: PartitionConsumer | None = None
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

    # -- rebalance ----------------------------------------------------------------
    def on_assign(self, partitions: list[TopicPartition]) -> None:
        """Position newly assigned ``partitions`` from Redis and assign them."""
        consumer = self._require_consumer()
        epoch = self._current_epoch(consumer)
        stored = self.epochs.offsets()
        for tp in partitions:
            tp.offset = self._position(tp.partition, stored)
        consumer.incremental_assign(partitions)
        new = {tp.partition for tp in partitions}
        if epoch != self.epoch:
            self._adopt(epoch, sorted(self.assigned - new), stored)
        self.assigned.update(new)
        self.assignments += 1
        self._positioned_at = time.monotonic()

    def on_revoke(self, partitions: list[TopicPartition]) -> None:
        """Let ``partitions`` go (the caller has applied and committed the batch in flight)."""
        self._require_consumer().incremental_unassign(partitions)
        gone = [tp.partition for tp in partitions]
        self.assigned.difference_update(gone)
        self.lag.forget(gone)
        for p in gone:
            self._positioned.pop(p, None)

    # -- what a write found -------------------------------------------------------
    def correct(self, found: Corrections) -> None:
        """Act on what a Redis write found, in the order it found it."""
        for stale in found.stale:
            self.seek_past(stale)
        for gaps in found.gaps:
            self.rewind(gaps)
        if found.resync:
            self.resync()

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

    def seek_past(self, stored: dict[int, int]) -> None:
        """Skip ahead on partitions whose offsets Redis already holds."""
        self._seek(stored)

    # -- per batch and when idle --------------------------------------------------
    def allowed_gaps(
        self, partitions: npt.NDArray[np.int64], offsets: npt.NDArray[np.int64]
    ) -> dict[int, int]:
        """Partitions whose first message after positioning is past Redis' offset.

        Kafka no longer holds the offsets in between (retention): the gap is
        real and accepted, or the partition would be rewound for ever. Costs
        nothing once every partition has had its first message.
        """
        if not self._positioned:
            return {}
        allow: dict[int, int] = {}
        for p in np.unique(partitions).tolist():
            at = self._positioned.pop(p, None)
            if at is not None:
                first = int(offsets[partitions == p].min())
                if first > at:
                    allow[p] = at
        return allow

    def on_idle(self, now: float, last_message: float | None) -> None:
        """Nothing to consume: check the epoch and Redis' offsets, report our partitions replayed.

        Args:
            now: ``time.monotonic()``.
            last_message: when the last message was consumed (monotonic), if any.
        """
        if self.consumer is None or not self.assigned or now - self._epoch_checked < EPOCH_CHECK_S:
            return
        self._epoch_checked = now
        self.resync()
        # Lost writes on a partition that gets no new message: no batch would
        # ever find the gap, so compare Redis' offsets with what we applied.
        stored = self.epochs.offsets()
        committed = self.lag.committed
        behind = {p: stored.get(p, 0) for p in self.assigned if stored.get(p, 0) < committed.get(p, 0)}
        if behind:
            self.rewind(behind)
        if self.epoch is None or now - self._positioned_at < CATCHUP_GRACE_S:
            return
        # Every check, not once: the "caught up" of an earlier check may itself
        # have been lost (the last second of an AOF everysec).
        stuck = last_message is not None and now - last_message >= STUCK_IDLE_S
        self.epochs.caught_up(self.epoch, sorted(self.assigned), force=stuck)

    # -- internals ----------------------------------------------------------------
    def _require_consumer(self) -> PartitionConsumer:
        if self.consumer is None:
            raise RuntimeError("Positioning.consumer must be set before a rebalance")
        return self.consumer

    def _current_epoch(self, consumer: PartitionConsumer) -> str:
        """Redis' epoch; when there is none, start a rebuild (this or another member)."""
        epoch = self.epochs.epoch()
        if epoch is None:
            epoch, started = self.epochs.claim(self._targets(consumer), previous=self.epoch)
            self.rebuilds += int(started)
        return epoch

    def _targets(self, consumer: PartitionConsumer) -> dict[int, int]:
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
        offsets = stored if stored is not None else self.epochs.offsets()
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
