"""The epoch/rebuild positioning state machine, with a fake consumer and the real Redis.

Only ``confluent_kafka.Consumer`` is stood in for (:class:`FakeConsumer`
records assignments and seeks); the epoch, offsets and rebuild targets are in
the test's Redis through the real :class:`~speed_layer.epoch.EpochStore`.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from speed_layer.epoch import UNKNOWN_TARGET, EpochStore
from speed_layer.keys import META_REBUILDING
from speed_layer.lag import LagTracker
from speed_layer.positioning import CATCHUP_GRACE_S, STUCK_IDLE_S, Corrections, Positioning

TOPIC = "events"


class FakeConsumer:
    """Stands in for ``confluent_kafka.Consumer`` in positioning tests only.

    ``position`` is where each assigned partition would fetch next;
    ``kafka_commits`` are the group's committed offsets; a seek on a
    partition in ``unseekable`` fails once (its fetcher is not started yet).
    """

    def __init__(self, partitions: int = 4, kafka_commits: dict[int, int] | None = None) -> None:
        self.partitions = partitions
        self.kafka_commits = kafka_commits or {}
        self.position: dict[int, int] = {}
        self.seeks: list[tuple[int, int]] = []
        self.reassigned: list[int] = []
        self.unseekable: set[int] = set()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position[tp.partition] = tp.offset

    def incremental_unassign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.position.pop(tp.partition)
            self.reassigned.append(tp.partition)

    def seek(self, partition: TopicPartition) -> None:
        if partition.partition in self.unseekable:
            self.unseekable.discard(partition.partition)
            raise KafkaException(KafkaError(KafkaError._STATE, "fetcher not started"))
        assert partition.partition in self.position, "seek on an unassigned partition"
        self.position[partition.partition] = partition.offset
        self.seeks.append((partition.partition, partition.offset))

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [
            TopicPartition(TOPIC, tp.partition, self.kafka_commits.get(tp.partition, OFFSET_INVALID))
            for tp in partitions
        ]

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        parts = {p: SimpleNamespace(id=p) for p in range(self.partitions)}
        return SimpleNamespace(topics={TOPIC: SimpleNamespace(partitions=parts)})


def _tps(*partitions: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, p) for p in partitions]


def _positioning(redis_client, keys, consumer: FakeConsumer) -> Positioning:  # type: ignore[no-untyped-def]
    pos = Positioning(TOPIC, EpochStore(redis_client, keys), LagTracker())
    pos.consumer = consumer
    return pos


def test_first_start_claims_a_rebuild_targeting_the_kafka_commits(redis_client, keys):
    consumer = FakeConsumer(partitions=3, kafka_commits={0: 120, 1: 0})
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    epoch = redis_client.get(keys.epoch)
    assert epoch is not None and pos.epoch == epoch.decode()
    assert pos.rebuilds == 1 and pos.resyncs == 0
    # nothing in Redis: both start at the beginning of the topic, never at the Kafka commit
    assert consumer.position == {0: OFFSET_BEGINNING, 1: OFFSET_BEGINNING}
    assert pos.assigned == {0, 1} and pos.assignments == 1
    assert pos.lag.committed == {0: 0, 1: 0}
    # every partition of the topic is a target; without a (non-zero) commit it is unknown
    targets = {int(k): int(v) for k, v in redis_client.hgetall(keys.rebuild).items()}
    assert targets == {0: 120, 1: UNKNOWN_TARGET, 2: UNKNOWN_TARGET}
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"


def test_an_existing_epoch_is_adopted_and_partitions_resume_at_redis_offsets(redis_client, keys):
    store = EpochStore(redis_client, keys)
    epoch, _ = store.claim({})
    redis_client.hset(keys.offsets, mapping={0: 40, 2: 7})
    consumer = FakeConsumer(kafka_commits={0: 999})
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    assert pos.epoch == epoch and pos.rebuilds == 0
    assert consumer.position == {0: 40, 1: OFFSET_BEGINNING}
    pos.on_assign(_tps(2))  # a later rebalance adds a partition: the others are not moved
    assert consumer.position == {0: 40, 1: OFFSET_BEGINNING, 2: 7}
    assert consumer.seeks == [] and pos.assignments == 2


def test_the_first_message_past_redis_offset_is_an_accepted_gap_once(redis_client, keys):
    EpochStore(redis_client, keys).claim({})
    redis_client.hset(keys.offsets, mapping={0: 40})
    pos = _positioning(redis_client, keys, FakeConsumer())
    pos.on_assign(_tps(0, 1))
    parts = np.array([0, 0, 1, 1], np.int64)
    # Kafka no longer holds 40..54 of partition 0 (retention); partition 1 starts at 0 as positioned
    assert pos.allowed_gaps(parts, np.array([55, 56, 0, 1], np.int64)) == {0: 40}
    assert pos.allowed_gaps(parts, np.array([57, 58, 2, 3], np.int64)) == {}


def test_corrections_seek_back_on_gaps_and_ahead_on_replays(redis_client, keys):
    EpochStore(redis_client, keys).claim({})
    consumer = FakeConsumer()
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    pos.correct(Corrections(stale=({0: 80, 3: 5},), gaps=({1: 30},)))
    assert consumer.seeks == [(0, 80), (1, 30)]  # partition 3 is not ours: left to its owner
    assert pos.rewinds == 1
    assert pos.lag.committed[1] == 30
    assert pos.allowed_gaps(np.array([1], np.int64), np.array([30], np.int64)) == {}


def test_a_seek_the_fetcher_refuses_is_done_by_reassigning(redis_client, keys):
    EpochStore(redis_client, keys).claim({})
    consumer = FakeConsumer()
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0))
    consumer.unseekable = {0}
    pos.rewind({0: 12})
    assert consumer.reassigned == [0] and consumer.position == {0: 12}


def test_a_lost_epoch_starts_a_new_rebuild_and_repositions_everything(redis_client, keys):
    store = EpochStore(redis_client, keys)
    first, _ = store.claim({})
    redis_client.hset(keys.offsets, mapping={0: 50, 1: 20})
    consumer = FakeConsumer(partitions=2, kafka_commits={0: 45})
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    pos.lag.committed[0] = 70  # this process applied up to 70 before the loss
    for key in redis_client.scan_iter(match=f"{keys.prefix}:*"):
        redis_client.delete(key)
    pos.correct(Corrections(resync=True))
    assert pos.epoch is not None and pos.epoch != first
    assert pos.rebuilds == 1 and pos.resyncs == 1
    assert consumer.position == {0: OFFSET_BEGINNING, 1: OFFSET_BEGINNING}
    # the lost view had got as far as the furthest of the Kafka commit and ours
    targets = {int(k): int(v) for k, v in redis_client.hgetall(keys.rebuild).items()}
    assert targets == {0: 70, 1: 20}


def test_an_epoch_started_by_another_member_is_adopted_without_a_rebuild(redis_client, keys):
    store = EpochStore(redis_client, keys)
    store.claim({})
    consumer = FakeConsumer()
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    redis_client.set(keys.epoch, "99")
    redis_client.hset(keys.offsets, mapping={1: 8})
    pos.resync()
    assert pos.epoch == "99" and pos.rebuilds == 0 and pos.resyncs == 1
    assert consumer.position == {0: OFFSET_BEGINNING, 1: 8}
    pos.resync()  # the same epoch again: nothing moves
    assert pos.resyncs == 1


def test_revoked_partitions_are_forgotten(redis_client, keys):
    EpochStore(redis_client, keys).claim({})
    consumer = FakeConsumer()
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    pos.lag.fetch_next[1] = 10
    pos.on_revoke(_tps(1))
    assert pos.assigned == {0} and consumer.position == {0: OFFSET_BEGINNING}
    assert 1 not in pos.lag.committed and 1 not in pos.lag.fetch_next
    pos.rewind({1: 3})  # a late correction for a partition we no longer own seeks nothing
    assert consumer.seeks == []


def test_idle_rewinds_lost_writes_and_reports_the_partitions_replayed(redis_client, keys):
    store = EpochStore(redis_client, keys)
    epoch, _ = store.claim({0: 100, 1: UNKNOWN_TARGET})
    redis_client.hset(keys.offsets, mapping={0: 60})
    consumer = FakeConsumer(partitions=2)
    pos = _positioning(redis_client, keys, consumer)
    pos.on_assign(_tps(0, 1))
    pos.lag.committed[0] = 90  # Redis lost 60..89 (the last second of an AOF everysec)
    now = time.monotonic()
    pos.on_idle(now, last_message=now)  # within the grace: rewinds, reports nothing yet
    assert consumer.seeks == [(0, 60)]
    assert redis_client.hlen(keys.rebuild) == 2
    pos.on_idle(now + 0.5, last_message=now)  # checked less than a second ago: nothing
    assert consumer.seeks == [(0, 60)]
    later = now + CATCHUP_GRACE_S + 1
    pos.on_idle(later, last_message=now)  # partition 1's target is unknown: replayed
    assert {int(k) for k in redis_client.hkeys(keys.rebuild)} == {0}
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"
    pos.on_idle(now + STUCK_IDLE_S + 1, last_message=now)  # idle too long: the log will not reach 100
    assert redis_client.hlen(keys.rebuild) == 0
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"0"
    assert pos.epoch == epoch
