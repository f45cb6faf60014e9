"""A speed range that shed events is not exact for the metrics that count the shed types.

The speed layer runs for real with ``page_view`` configured to shed and a lag
threshold of 0 s, so it sheds from its fourth micro-batch on (as under a
sustained lag); the batch ingest gets every event. Until the batch view covers
them, the shed buckets are named in ``coverage.shed_ranges`` with their counts
and ``exact`` is false for ``events`` (it counts page views) but not for
``orders`` (it does not); once the watermark passes them the answer is exact.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.vocabulary import HOUR_MS
from serving.engine import QueryEngine
from serving.result import Coverage
from serving.spec import format_ts
from speed_layer.keys import SpeedKeys
from tests.serving.fixtures import World, generate, produce, run_layers, slice_settings


@pytest.fixture(scope="module")
def shed_world(stack_settings: Settings, chdb_settings: Settings, dask_threads: Any) -> Iterator[World]:
    """6,000 events over the last 2 hours; the speed path shed page views, the batch path did not."""
    tag = f"s{uuid.uuid4().hex[:10]}"
    base = slice_settings(stack_settings, chdb_settings, tag, allowed_lateness_s=0)
    settings = base.model_copy(
        update={
            "speed": base.speed.model_copy(
                update={"shed_event_types": ("page_view",), "shed_lag_seconds": 0.0, "batch_size": 200}
            )
        }
    )
    ensure_topics(settings.kafka)
    client = open_clickhouse(settings)
    now_ms = int(time.time() * 1000)
    pairs = generate(6_000, now_ms - 60_000, 2 * HOUR_MS, seed=17)
    produce(settings, pairs)
    run_layers(settings, client)

    def recompute(at_ms: int) -> Any:
        from batch_layer.recompute import run_recompute

        at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        return run_recompute(settings, client, now=at, dask=dask_threads)

    try:
        yield World(settings, client, [v for _, v in pairs], now_ms, dask_threads, recompute)
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse.database}`")


def _shed_total(world: World) -> int:
    r = make_redis(world.settings.redis)
    try:
        return int(r.hget(SpeedKeys(world.settings.redis.key_prefix).meta, "shed:page_view") or 0)
    finally:
        r.close()


def test_shed_ranges_are_inexact_until_the_batch_covers_them(shed_world: World) -> None:
    world = shed_world
    shed = _shed_total(world)
    assert shed > 0, "the speed layer shed nothing: the scenario did not exercise shedding"
    frame = world.oracle()
    start = format_ts((world.now_ms - 4 * HOUR_MS) // HOUR_MS * HOUR_MS)
    with QueryEngine(world.settings, clickhouse=world.client, cache_entries=0) as engine:
        for gran in ("minute", "hour", "day"):
            res = engine.query("events", start=start, granularity=gran)
            cov = res.coverage
            assert cov.batch_through_ms is None and not cov.holes
            assert not cov.exact, f"{gran}: the speed view shed {shed} page views but says exact"
            assert cov.shed_ranges, gran
            assert {t for r in cov.shed_ranges for t, _ in r.counts} == {"page_view"}
            assert sum(n for r in cov.shed_ranges for _, n in r.counts) == shed, gran
            assert all(a.end_ms < b.start_ms for a, b in itertools.pairwise(cov.shed_ranges))
            assert int(res.frame["value"].sum()) == len(frame) - shed
            # the JSON the CLI prints and the HTTP client rebuilds from says the same
            doc = cov.to_dict()
            assert doc["exact"] is False and doc["complete"] is True
            assert sum(r["counts"]["page_view"] for r in doc["shed_ranges"]) == shed
            assert Coverage.from_dict(doc) == cov
        orders = engine.query("orders", start=start, granularity="hour")
        assert orders.coverage.exact and orders.coverage.shed_ranges == ()
        assert int(orders.frame["value"].sum()) == int((frame["event_type"] == "order_placed").sum())
        uniques = engine.query("unique_customers", start=start, granularity="hour")
        assert not uniques.coverage.exact and uniques.coverage.shed_ranges

        world.recompute(world.now_ms)
        for gran in ("minute", "hour"):
            res = engine.query("events", start=start, granularity=gran)
            cov = res.coverage
            assert cov.batch_through_ms is not None and cov.batch_through_ms >= world.now_ms - 60_000
            assert cov.exact and cov.shed_ranges == (), gran
            assert int(res.frame["value"].sum()) == len(frame)
