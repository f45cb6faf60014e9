"""The speed view is reported as a hole while it cannot be trusted.

The state contract of :mod:`speed_layer.keys`: ``{prefix}:epoch`` is set when
the speed layer (re)builds its view from the start of the topic, and
``{prefix}:meta`` field ``rebuilding`` is ``"1"`` until the replay caught up.
These tests write the speed view's keys directly, as the speed layer does
(that layout is the contract), into the real Redis, with an empty batch view
in the session chDB (no watermark: the whole range is the speed layer's).
They also check the vectorised parsing of every hash field shape against the
values written.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.redis import make_redis
from lambda_rt.vocabulary import HOUR_MS
from serving.engine import REBUILDING_REASON, STATE_LOST_REASON, QueryEngine
from serving.errors import CoverageHoleError
from serving.spec import format_ts
from speed_layer.keys import META_LAST_APPLIED_MS, META_REBUILDING, SpeedKeys, epoch_key


@pytest.fixture
def speed_view(isolated: Any) -> Any:
    """Two hours of speed view for stores 7 and 8, a trusted state, and an engine."""
    s = isolated.settings
    r = make_redis(s.redis)
    keys = SpeedKeys(s.redis.key_prefix)
    now = int(time.time() * 1000)
    h0 = (now // HOUR_MS - 2) * HOUR_MS // 1000  # two full hours back (inside retention)
    h1 = h0 + 3600
    r.hset(keys.agg("h", h0, "revenue"), mapping={"7": 1200, "8": 5})
    r.hset(keys.agg("h", h1, "revenue"), mapping={"7": 30})
    r.hset(keys.agg("h", h0, "events"), mapping={"7:order_placed": 2, "7:page_view": 9, "8:payment": 1})
    r.hset(keys.agg("h", h0, "inventory_delta"), mapping={"7:501": -4, "8:12": 6, "7:12": 0})
    r.hset(keys.offsets, mapping={"0": 10})
    r.set(epoch_key(s.redis.key_prefix), now - 60_000)
    r.hset(keys.meta, mapping={META_REBUILDING: 0, META_LAST_APPLIED_MS: now})
    client = open_clickhouse(s)
    engine = QueryEngine(s, clickhouse=client, redis_client=r, cache_entries=16)
    window = (format_ts(h0 * 1000 - HOUR_MS), format_ts(h1 * 1000 + 2 * HOUR_MS))
    try:
        yield engine, r, keys, h0, window
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{s.clickhouse.database}`")
        r.close()


def _rows(res: Any) -> list[tuple[Any, ...]]:
    return [tuple(row.values()) for row in res.rows()]


def test_trusted_view_is_read_exactly(speed_view: Any) -> None:
    engine, _r, _keys, h0, (start, end) = speed_view
    t0, t1 = format_ts(h0 * 1000), format_ts(h0 * 1000 + HOUR_MS)
    res = engine.query("revenue", "store_id", start, end, "hour")
    assert not res.coverage.holes and res.coverage.exact
    assert _rows(res) == [(t0, 7, 1200), (t0, 8, 5), (t1, 7, 30)]
    day = engine.query("revenue", None, start, end, "day")
    assert sum(v for *_, v in _rows(day)) == 1235
    ev = engine.query("events", "store_id,event_type", start, end, "hour")
    assert _rows(ev) == [(t0, 7, "order_placed", 2), (t0, 7, "page_view", 9), (t0, 8, "payment", 1)]
    by_type = engine.query("events", "event_type", start, end, "hour")
    assert _rows(by_type) == [(t0, "order_placed", 2), (t0, "page_view", 9), (t0, "payment", 1)]
    inv = engine.query("inventory_delta", "store_id,product_id", start, end, "hour")
    assert _rows(inv) == [(t0, 7, 501, -4), (t0, 8, 12, 6)]  # zero rows are dropped
    # a hit is the prebuilt result itself, with its JSON built once
    again = engine.query("revenue", "store_id", start, end, "hour")
    assert again.coverage.cached and engine.query("revenue", "store_id", start, end, "hour") is again
    assert again.to_json() is again.to_json()


def test_rebuilding_view_is_a_hole(speed_view: Any) -> None:
    engine, r, keys, _h0, (start, end) = speed_view
    assert not engine.query("revenue", "store_id", start, end, "hour").coverage.holes  # cached now
    r.hset(keys.meta, META_REBUILDING, "1")
    res = engine.query("revenue", "store_id", start, end, "hour")
    assert not res.coverage.cached
    assert [(h.start_ms, h.end_ms, h.reason) for h in res.coverage.holes] == [
        (r_.start_ms, r_.end_ms, REBUILDING_REASON) for r_ in res.coverage.ranges
    ]
    assert res.coverage.exact is False and res.coverage.complete is False
    assert "rebuilding" in res.coverage.to_dict()["holes"][0]["reason"]
    with pytest.raises(CoverageHoleError) as err:
        engine.query("revenue", "store_id", start, end, "hour", strict=True)
    assert err.value.holes and "rebuilding" in str(err.value)
    # caught up: trusted again (and not the holed answer from the cache)
    r.hset(keys.meta, META_REBUILDING, "0")
    ok = engine.query("revenue", "store_id", start, end, "hour", strict=True)
    assert not ok.coverage.holes and ok.coverage.exact


def test_data_without_epoch_is_a_hole(speed_view: Any) -> None:
    engine, r, keys, _h0, (start, end) = speed_view
    epoch = r.get(epoch_key(keys.prefix))
    r.delete(epoch_key(keys.prefix))  # state lost, no speed process noticed yet
    res = engine.query("revenue", "store_id", start, end, "hour")
    assert [h.reason for h in res.coverage.holes] == [STATE_LOST_REASON]
    assert res.coverage.holes[0].start_ms == res.coverage.ranges[0].start_ms
    assert res.coverage.holes[-1].end_ms == res.coverage.ranges[-1].end_ms
    assert res.coverage.exact is False
    with pytest.raises(CoverageHoleError):
        engine.query("revenue", "store_id", start, end, "hour", strict=True)
    r.set(epoch_key(keys.prefix), epoch)
    assert not engine.query("revenue", "store_id", start, end, "hour", strict=True).coverage.holes


def test_rebuild_from_nothing_is_a_hole_not_an_empty_answer(speed_view: Any) -> None:
    engine, r, keys, _h0, (start, end) = speed_view
    # the whole view was flushed and the speed layer started rebuilding: epoch set, no offsets yet
    for key in list(r.scan_iter(match=f"{keys.prefix}:*")):
        r.delete(key)
    r.set(epoch_key(keys.prefix), int(time.time() * 1000))
    r.hset(keys.meta, META_REBUILDING, "1")
    res = engine.query("revenue", "store_id", start, end, "hour")
    assert res.frame.empty and [h.reason for h in res.coverage.holes] == [REBUILDING_REASON]
