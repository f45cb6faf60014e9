"""The atomic batch write against real Redis: replay guard, trimming, HLL accuracy, TTL."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lambda_rt.events.schema import EVENT_SCHEMA
from lambda_rt.events.validate import validate_batch
from speed_layer.aggregate import aggregate
from speed_layer.keys import SpeedKeys, bucket_start_s
from speed_layer.redis_apply import BatchApplier, stored_offsets
from tests.speed_layer.conftest import now_ms


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


def test_replayed_batch_is_rejected_and_partial_overlap_is_reported(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
    ts = now_ms()
    table = _page_views(100, ts)
    parts = np.zeros(100, np.int64)
    offs = np.arange(100, dtype=np.int64)
    first = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs))
    again = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs))
    assert first.applied and not again.applied
    assert again.stale == {0: 100}
    overlap = applier.apply(aggregate(table, keys, partitions=parts, offsets=offs + 50))
    assert not overlap.applied and overlap.stale == {0: 100}
    assert stored_offsets(redis_client, keys) == {0: 100}
    bucket = bucket_start_s(ts, "minute")
    assert int(redis_client.hget(keys.agg("m", bucket, "events"), "1:page_view")) == 100
    ttl = redis_client.ttl(keys.agg("m", bucket, "events"))
    assert 0 < ttl <= 3600
    assert redis_client.ttl(keys.offsets) == -1  # exactly-once state never expires


def test_hll_within_2_percent_on_100k_customers(redis_client, keys):
    applier = BatchApplier(redis_client, keys, retention_s=3600)
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
        assert applier.apply(aggregate(table, keys, partitions=np.zeros(n, np.int64), offsets=offs)).applied
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
