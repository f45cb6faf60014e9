"""Schema v2 end to end: a mixed v1/v2 stream by campaign through both layers and every tier.

One module-scoped world: generated mixed v1/v2 events (campaigns, payment
signals, stock levels, plus unknown fields) go through the real speed layer
and ingest; queries by ``campaign_id`` must equal the pandas oracle across the
watermark, and again after every day moved hot -> warm -> cold and a backfill
recomputed the campaign view from the cold Parquet files alone. The unknown
fields must be in the cold files' ``extra`` column.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batch_layer import visibility
from batch_layer.recompute import run_recompute
from batch_layer.tables import EVENTS_HOT, EVENTS_WARM
from batch_layer.tiering import run_tier
from batch_layer.views import read_watermark
from lambda_rt.clients.s3 import make_s3fs
from lambda_rt.config import Settings
from lambda_rt.testing import oracle_metrics
from lambda_rt.vocabulary import HOUR_MS
from serving.engine import QueryEngine
from serving.result import QueryResult
from tests.serving.fixtures import World, make_world

MIN_MS = 60_000
CASES: list[tuple[str, tuple[str, ...], str]] = [
    (metric, by, gran)
    for metric in ("events", "orders", "revenue")
    for by in (("campaign_id",), ("campaign_id", "event_type"))
    for gran in ("minute", "hour", "day")
] + [("unique_customers", ("campaign_id",), gran) for gran in ("hour", "day")]


def _with_unknown_fields(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    rng = random.Random(3)
    out = []
    for key, value in pairs:
        if rng.random() < 0.03:
            obj = orjson.loads(value)
            obj["loyalty_tier"] = rng.choice(["gold", "silver", {"level": 2}])
            value = orjson.dumps(obj)
        out.append((key, value))
    return out


@pytest.fixture(scope="module")
def v2_world(stack_settings: Settings, chdb_settings: Settings, dask_threads: Any) -> Iterator[World]:
    w = make_world(
        stack_settings,
        chdb_settings,
        dask_threads,
        16_000,
        4 * HOUR_MS,
        schema_version="mixed",
        edit=_with_unknown_fields,
    )
    try:
        yield w
    finally:
        w.client.command(f"DROP DATABASE IF EXISTS `{w.settings.clickhouse.database}`")


def _expected(world: World, metric: str, by: tuple[str, ...], gran: str, s: int, e: int) -> pd.DataFrame:
    exp = oracle_metrics(world.oracle(), metric, by, gran)
    ms = exp["bucket"].dt.as_unit("ms").astype("int64")
    return exp[(ms >= s) & (ms < e)].reset_index(drop=True)


def _compare(res: QueryResult, exp: pd.DataFrame, approximate: bool) -> None:
    keys = ["bucket", *res.by]
    assert list(res.frame.columns) == [*keys, "value"]
    merged = res.frame.merge(exp, on=keys, how="outer", suffixes=("_got", "_exp"), indicator=True)
    one_side = merged[merged["_merge"] != "both"]
    assert one_side.empty, f"{res.metric} by {res.by} {res.granularity}: rows in one side only\n{one_side}"
    err = (merged["value_got"] - merged["value_exp"]).abs()
    if approximate:  # HyperLogLog in the speed range: 0.81% standard error, 3 sigma per bucket
        big = merged[err > (merged["value_exp"] * 0.025).clip(lower=2)]
        assert big.empty, big.head(20)
    else:
        assert (err == 0).all(), f"{res.metric} by {res.by} {res.granularity}\n{merged[err != 0].head(20)}"


def _check_all(world: World, engine: QueryEngine, start_ms: int, end_ms: int) -> None:
    for metric, by, gran in CASES:
        res = engine.query(
            metric,
            by,
            datetime.fromtimestamp(start_ms / 1000, tz=UTC),
            datetime.fromtimestamp(end_ms / 1000, tz=UTC),
            gran,
        )
        exp = _expected(world, metric, by, gran, _floor(start_ms, gran), _ceil(end_ms, gran))
        _compare(res, exp, approximate=not res.coverage.exact)
        if metric == "events" and by == ("campaign_id",):
            total = engine.query(
                "events",
                None,
                datetime.fromtimestamp(start_ms / 1000, tz=UTC),
                datetime.fromtimestamp(end_ms / 1000, tz=UTC),
                gran,
            )
            assert int(res.frame["value"].sum()) == int(total.frame["value"].sum())
            rows = res.to_dict()["rows"]
            assert rows and all(isinstance(r["campaign_id"], str) for r in rows)
            assert any(r["campaign_id"] == "" for r in rows) and len({r["campaign_id"] for r in rows}) > 20


def _floor(ms: int, gran: str) -> int:
    w = {"minute": MIN_MS, "hour": HOUR_MS, "day": 86_400_000}[gran]
    return ms // w * w


def _ceil(ms: int, gran: str) -> int:
    w = {"minute": MIN_MS, "hour": HOUR_MS, "day": 86_400_000}[gran]
    return -(-ms // w) * w


def test_by_campaign_equals_the_oracle_across_the_watermark(v2_world: World) -> None:
    w = v2_world
    wm_target = (w.now_ms - 2 * HOUR_MS) // MIN_MS * MIN_MS + 7 * MIN_MS
    w.recompute(wm_target)
    wm = read_watermark(w.client)
    assert wm is not None
    engine = QueryEngine(w.settings, clickhouse=w.client, cache_entries=0)
    try:
        start = w.now_ms - 5 * HOUR_MS
        res = engine.query(
            "orders", "campaign_id", datetime.fromtimestamp(start / 1000, tz=UTC), None, "hour"
        )
        layers = {r.layer for r in res.coverage.ranges}
        assert layers == {"batch", "speed"}, res.coverage
        _check_all(w, engine, start, w.now_ms + MIN_MS)
    finally:
        engine.close()


def test_after_every_tier_move_a_backfill_from_cold_equals_the_oracle(v2_world: World) -> None:
    w = v2_world
    later = datetime.fromtimestamp(w.now_ms / 1000, tz=UTC) + timedelta(days=10)
    report = run_tier(w.settings, w.client, now=later)
    assert report.moves and all(m.state == "done" for m in report.moves)
    assert w.client.query(f"SELECT count() FROM {EVENTS_HOT}").result_rows[0][0] == 0
    snap = visibility.snapshot(w.client)
    assert snap.cold_files
    assert not visibility.engine_days(w.client, snap, 0, 2**62)  # nothing left in hot or warm
    # the master dataset kept every field: v2 columns and the unknown ones in extra
    fs = make_s3fs(w.settings.s3)
    cold = pd.concat(
        pq.read_table(f.removeprefix("s3://"), filesystem=fs).to_pandas()
        for files in snap.cold_files.values()
        for f in files
    )
    frame = w.oracle()
    assert len(cold) == len(frame)
    assert (cold["campaign_id"] != "").sum() == frame["campaign_id"].notna().sum()
    stock = cold[cold["event_type"] == "inventory_update"]["stock_on_hand"]
    assert stock.notna().sum() == frame["stock_on_hand"].notna().sum() > 0
    sent = {
        orjson.loads(v)["event_id"]: orjson.loads(v)["loyalty_tier"] for v in w.values if b"loyalty_tier" in v
    }
    kept = {
        e: orjson.loads(x)["loyalty_tier"] for e, x in zip(cold["event_id"], cold["extra"], strict=True) if x
    }
    assert sent and {e: kept.get(e) for e in sent} == sent
    # backfill: every day again, from the cold files only
    # from the first day's start: a backfill that covers the watermark's day moves it up to now
    first = datetime.fromtimestamp(_floor(w.now_ms - 6 * HOUR_MS, "day") / 1000, tz=UTC)
    run_recompute(w.settings, w.client, start=first, end=datetime.now(UTC), dask=w.dask)
    engine = QueryEngine(w.settings, clickhouse=w.client, cache_entries=0)
    try:
        wm = read_watermark(w.client)
        assert wm is not None and int(wm.timestamp() * 1000) >= w.now_ms - 2 * MIN_MS  # past every event
        _check_all(w, engine, w.now_ms - 5 * HOUR_MS, w.now_ms + MIN_MS)
    finally:
        engine.close()
    assert w.client.query(f"SELECT count() FROM {EVENTS_WARM}").result_rows[0][0] == 0
