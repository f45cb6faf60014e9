"""Recompute against real chDB + Dask: exact equality with the pandas oracle, idempotence, late events."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd

from batch_layer.recompute import run_recompute
from batch_layer.state import record_late
from batch_layer.views import (
    BATCH_METRICS,
    complete_through,
    read_batch_view,
    read_inventory_by_product,
    read_watermark,
    redis_watermark_key,
)
from lambda_rt.clients.clickhouse import Client
from lambda_rt.clients.redis import make_redis
from lambda_rt.testing import oracle_metrics
from tests.batch_layer.fixtures import END, END_MS, assert_views_equal_oracle, insert_events, make_events

NOW = END + timedelta(hours=1)


def _dump(ch: Client) -> pd.DataFrame:
    return ch.query_df(f"SELECT * FROM {BATCH_METRICS} ORDER BY ALL")


def test_recompute_equals_oracle_for_every_metric_and_is_idempotent(
    ch: Client, isolated: Any, dask_threads: Any
) -> None:
    events = make_events(40_000)
    insert_events(ch, events)
    report = run_recompute(isolated.settings, ch, now=NOW, dask=dask_threads)
    close_ms = int(report.close.timestamp() * 1000) if report.close else 0
    assert close_ms == END_MS + 50 * 60_000  # now - 10 min lateness
    assert report.rows["hot"] == len(events)
    assert len(report.windows) == 3
    assert assert_views_equal_oracle(ch, events, close_ms) == 7 * 4 * 3

    wm = read_watermark(ch)
    assert wm == report.close
    published = make_redis(isolated.settings.redis).get(
        redis_watermark_key(isolated.settings.redis.key_prefix)
    )
    assert published is not None and int(published) == close_ms
    assert complete_through(wm, "hour") == wm.replace(minute=0) if wm else False

    for gran, width in (("hour", 3_600_000), ("day", 86_400_000)):
        inv = read_inventory_by_product(ch, END - timedelta(days=5), END + timedelta(days=1), gran)
        exp = oracle_metrics(events, "inventory_delta", ("store_id", "product_id"), gran)
        exp = exp[exp["bucket"].dt.as_unit("ms").astype("int64") + width <= close_ms]
        assert len(inv) == len(exp) and (inv["value"].to_numpy() == exp["value"].to_numpy()).all()

    before = _dump(ch)
    again = run_recompute(isolated.settings, ch, now=NOW, dask=dask_threads)
    assert again.windows == [report.windows[-1]]  # only the open day after the watermark
    pd.testing.assert_frame_equal(_dump(ch), before)
    full = run_recompute(
        isolated.settings, ch, start=END - timedelta(days=5), end=NOW, now=NOW, dask=dask_threads
    )
    assert len(full.windows) == 3
    pd.testing.assert_frame_equal(_dump(ch), before)
    # the export path (Arrow to workers, as with worker processes or a remote cluster) agrees
    export = isolated.settings.model_copy(
        update={"batch": isolated.settings.batch.model_copy(update={"recompute_mode": "export"})}
    )
    exported = run_recompute(export, ch, start=END - timedelta(days=5), end=NOW, now=NOW, dask=dask_threads)
    assert "mode_export" in exported.timings and "mode_pushdown" in full.timings
    pd.testing.assert_frame_equal(_dump(ch), before)


def test_late_events_revise_their_windows(ch: Client, isolated: Any, dask_threads: Any) -> None:
    events = make_events(20_000, seed=3)
    insert_events(ch, events)
    first = run_recompute(isolated.settings, ch, now=NOW, dask=dask_threads)
    assert first.revised == {}
    # late events: event time two days back, arriving after that window was computed
    late = make_events(500, seed=11, end_ms=END_MS - 86_400_000, span_ms=3_600_000)
    late["event_id"] = "late-" + late["event_id"]
    insert_events(ch, late, first_offset=10_000_000)
    record_late(ch, late["ts"].to_numpy(), END_MS + 3_600_000)
    second = run_recompute(isolated.settings, ch, now=NOW + timedelta(minutes=5), dask=dask_threads)
    late_day = pd.Timestamp(int(late["ts"].min()), unit="ms", tz="UTC").date()
    assert late_day in second.revised and second.revised[late_day] == len(late)
    close_ms = int(second.close.timestamp() * 1000) if second.close else 0
    assert_views_equal_oracle(ch, pd.concat([events, late], ignore_index=True), close_ms)
    third = run_recompute(isolated.settings, ch, now=NOW + timedelta(minutes=6), dask=dask_threads)
    assert third.revised == {}  # the ledger was consumed
    got = read_batch_view(ch, "events", None, END - timedelta(days=3), END, "day")
    assert int(got["value"].sum()) > 0


def test_a_clock_behind_the_watermark_never_drops_final_buckets(
    ch: Client, isolated: Any, dask_threads: Any
) -> None:
    events = make_events(10_000, seed=5)
    insert_events(ch, events)
    first = run_recompute(isolated.settings, ch, now=NOW, dask=dask_threads)
    behind = run_recompute(isolated.settings, ch, now=NOW - timedelta(minutes=90), dask=dask_threads)
    close_ms = int(first.close.timestamp() * 1000) if first.close else 0
    assert_views_equal_oracle(ch, events, close_ms)  # nothing before the watermark was dropped
    assert read_watermark(ch) == first.close and behind.close == first.close
