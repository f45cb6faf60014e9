"""The atomic batch write against real Redis: epoch, replay and gap guards, HLL accuracy, TTL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lambda_rt.events.schema import EVENT_SCHEMA
from lambda_rt.events.validate import validate_batch
from speed_layer.aggregate import aggregate
from speed_layer.epoch import EpochStore
from speed_layer.keys import META_REBUILDING, SpeedKeys, bucket_start_s, epoch_key
from speed_layer.redis_apply import APPLIED, EPOCH_CHANGED, GAP, LOST, STALE, BatchApplier, stored_offsets
from tests.speed_layer.fixtures import now_ms


def _page_views(n: int, ts: int, customers: np.ndarray | None = None, store: int = 1) -> pa.Table:
    cust = customers if customers is not None else np.arange(n)
    rows = {
        "event_id": [f"e{i}" for i in range(n)],
        "event_type": ["page_view"] * n,
        "ts": [ts] * n,
        "store_id": [store] * n,
        "customer_id": cust.tolist(),
        "session_id": [None] * n,
        "schema_version": [1] * n,
        "product_id": [1] * n,
    }
    cols = {f.name: rows.get(f.name, [None] * n) for f in EVENT_SCHEMA}
    return pa.Table.from_pydict(cols, schema=EVENT_SCHEMA)


def _epoch(redis_client, keys, targets: dict[int, int] | None = None) -> str:
    epoch, started = EpochStore(redis_client, keys).claim(targets or {0: -1})
    assert started
    return epoch


def _batch(keys, n: int, first: int, ts: int, partition: int = 0):  # type: ignore[no-untyped-def]
    offs = np.arange(first, first + n, dtype=np.int64)
    return aggregate(_page_views(n, ts), keys, partitions=np.full(n, partition, np.int64), offsets=offs)


def test_replayed_batch_is_rejected_and_partial_overlap_is_reported(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ep = _epoch(redis_client, keys)
    ts = now_ms()
    table = _page_views(100, ts)
    parts = np.zeros(100, np.int64)
    offs = np.arange(100, dtype=np.int64)
    first = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs), epoch=ep)
    again = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs), epoch=ep)
    assert first.applied and not again.applied
    assert again.code == STALE and again.stale == {0: 100}
    overlap = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs + 50), epoch=ep)
    assert not overlap.applied and overlap.stale == {0: 100}
    assert stored_offsets(redis_client, keys) == {0: 100}
    bucket = bucket_start_s(ts, "minute")
    assert int(redis_client.hget(keys.agg("m", bucket, "events"), "1:page_view")) == 100
    ttl = redis_client.ttl(keys.agg("m", bucket, "events"))
    assert 0 < ttl <= 3600
    assert redis_client.ttl(keys.offsets) == -1  # exactly-once state never expires
    assert redis_client.ttl(keys.epoch) == -1


def test_gap_lost_and_foreign_epoch_are_refused_with_distinct_codes(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ep = _epoch(redis_client, keys, {0: 150, 1: -1})
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"
    ts = now_ms()
    assert applier.apply(_batch(keys, 100, 0, ts), epoch=ep).code == APPLIED
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"  # partition 0 not at 150 yet
    gap = applier.apply(_batch(keys, 10, 120, ts), epoch=ep)  # 100..119 would be skipped
    assert gap.code == GAP and gap.gaps == {0: 100}
    # a gap Kafka can no longer fill (retention) is accepted when the source says so
    assert applier.apply(_batch(keys, 10, 120, ts), epoch=ep, allow_gaps={0: 100}).applied
    assert applier.apply(_batch(keys, 30, 130, ts), epoch=ep).applied  # reaches partition 0's target
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"1"  # partition 1: target unknown
    # partition 1 has nothing stored: a batch must start at 0 unless Kafka's log starts later
    late = applier.apply(_batch(keys, 5, 7, ts, partition=1), epoch=ep)
    assert late.code == GAP and late.gaps == {1: 0}
    assert applier.apply(_batch(keys, 5, 7, ts, partition=1), epoch=ep, allow_gaps={1: 0}).applied
    assert EpochStore(redis_client, keys).caught_up(ep, [1]) == 0
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"0"
    foreign = applier.apply(_batch(keys, 10, 160, ts), epoch="12345")
    assert foreign.code == EPOCH_CHANGED and foreign.epoch == ep
    redis_client.delete(keys.epoch)  # the state was lost under a running process
    assert applier.apply(_batch(keys, 10, 160, ts), epoch=ep).code == LOST
    assert stored_offsets(redis_client, keys) == {0: 160, 1: 12}  # refused batches wrote nothing
    bucket = bucket_start_s(ts, "minute")
    assert int(redis_client.hget(keys.agg("m", bucket, "events"), "1:page_view")) == 145


def test_claim_wipes_what_is_left_and_a_second_claim_adopts(redis_client, keys):
    state = EpochStore(redis_client, keys)
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ep = _epoch(redis_client, keys)
    ts = now_ms()
    assert applier.apply(_batch(keys, 50, 0, ts), epoch=ep).applied
    redis_client.delete(epoch_key(keys.prefix))  # partial loss: buckets and offsets survive
    new, started = state.claim({0: 50}, previous=ep)
    assert started and new != ep
    assert redis_client.exists(keys.agg("m", bucket_start_s(ts, "minute"), "events")) == 0
    assert stored_offsets(redis_client, keys) == {}
    assert state.claim({0: 50}) == (new, False)  # another member: adopts, wipes nothing
    assert applier.apply(_batch(keys, 50, 0, ts), epoch=new).applied
    assert redis_client.hget(keys.meta, META_REBUILDING) == b"0"  # target 50 reached


def test_replayed_buckets_past_retention_are_not_resurrected(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ep = _epoch(redis_client, keys)
    now = now_ms()
    old_ts = now - 3 * 3_600_000
    # a replay of messages that arrived 3 h ago (retention 1 h): nothing stays
    assert applier.apply(_batch(keys, 20, 0, old_ts), epoch=ep, arrival_ms=old_ts + 1000).applied
    old_key = keys.agg("m", bucket_start_s(old_ts, "minute"), "events")
    assert redis_client.exists(old_key) == 0
    # a late event arriving now keeps its (old) bucket for the retention...
    assert applier.apply(_batch(keys, 5, 20, old_ts), epoch=ep, arrival_ms=now).applied
    assert 3500 < redis_client.ttl(old_key) <= 3600
    # ...and a replayed write never shortens it
    assert applier.apply(_batch(keys, 5, 25, old_ts), epoch=ep, arrival_ms=old_ts).applied
    assert 3500 < redis_client.ttl(old_key) <= 3600
    assert int(redis_client.hget(old_key, "1:page_view")) == 10


def test_hll_within_2_percent_on_100k_customers(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ep = _epoch(redis_client, keys)
    ts = now_ms()
    rng = np.random.default_rng(1)
    customers = rng.permutation(100_000)
    customers = np.concatenate([customers, customers[:30_000]])  # repeats must not count
    offset = 0
    for chunk in np.array_split(customers, 8):
        n = len(chunk)
        table = _page_views(n, ts, chunk, store=7)
        offs = np.arange(offset, offset + n, dtype=np.int64)
        offset += n
        delta = aggregate(table, keys, partitions=np.zeros(n, np.int64), offsets=offs)
        assert applier.apply(delta, epoch=ep).applied
    hour = bucket_start_s(ts, "hour")
    minute = bucket_start_s(ts, "minute")
    for key in (keys.hll_store(hour, 7), keys.hll_event_type("m", minute, "page_view")):
        estimate = redis_client.pfcount(key)
        assert abs(estimate - 100_000) / 100_000 <= 0.02, (key, estimate)


def test_hll_keys_per_batch_are_bounded_by_buckets_not_events():
    from lambda_rt.events.generator import EventGenerator, GeneratorConfig

    gen = EventGenerator(GeneratorConfig(seed=2, stores=1000, span_ms=10 * 60_000))
    values = [v for _, v in gen.batch(20_000)]
    checked = validate_batch(values, now_ms=gen.end_ms)
    n = checked.table.num_rows
    delta = aggregate(
        checked.table, SpeedKeys("x"), partitions=np.zeros(n, np.int64), offsets=np.arange(n, dtype=np.int64)
    )
    minutes, hours, types = 11, 2, 6
    assert len(delta.hll_keys) <= minutes * types + hours * (types + 1000)
    assert len(delta.hll_keys) < n / 10
