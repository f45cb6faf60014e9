"""Ingest, export-mode recompute and a full tier move through an external Dask cluster.

The cluster is real processes (``dask scheduler`` + two ``dask worker``), the
answers are compared with the independent pandas oracle, one worker is killed
with SIGKILL in the middle of a recompute, and the scheduler's task specs are
searched for the S3 secret (workers must log in with their own credentials).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import cloudpickle
import pytest
from distributed.diagnostics.plugin import SchedulerPlugin

from batch_layer.recompute import run_recompute
from batch_layer.tables import EVENTS_HOT, EVENTS_WARM
from batch_layer.tiering import run_tier
from batch_layer.views import GRANULARITY_MS, METRIC_COLUMNS, read_batch_view
from lambda_rt.config import Settings
from lambda_rt.dask_processes import ExternalDask
from lambda_rt.testing import oracle_metrics
from lambda_rt.vocabulary import HOUR_MS
from serving.engine import QueryEngine
from serving.spec import format_ts
from tests.serving.fixtures import World, make_world

DAY_MS = 86_400_000
DIMS: tuple[tuple[str, ...], ...] = ((), ("store_id",), ("event_type",), ("store_id", "event_type"))
ADDITIVE = ("events", "orders", "revenue", "refunds", "payment_failures")

# the scheduler imports what it runs: ship this module's plugin by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def world(stack_settings: Settings, chdb_settings: Settings, external_dask: ExternalDask) -> Iterator[World]:
    """12,000 events over 3 days through Kafka, the speed layer and ingest; export-mode recompute."""
    w = make_world(
        stack_settings,
        chdb_settings,
        external_dask.client,
        12_000,
        3 * DAY_MS - 2 * HOUR_MS,
        recompute_mode="export",
    )
    try:
        yield w
    finally:
        w.client.command(f"DROP DATABASE IF EXISTS `{w.settings.clickhouse.database}`")


def assert_views_equal_oracle(world: World, close_ms: int) -> None:
    """Every metric x dims x granularity of the batch views equals the oracle (closed buckets)."""
    frame = world.oracle()
    lo, hi = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    for gran, width in GRANULARITY_MS.items():
        for dims in DIMS:
            for metric in METRIC_COLUMNS:
                exp = oracle_metrics(frame, metric, dims, gran)
                exp = exp[exp["bucket"].dt.as_unit("ms").astype("int64") + width <= close_ms]
                exp = exp.reset_index(drop=True)
                got = read_batch_view(world.client, metric, dims, lo, hi, gran)
                assert len(got) == len(exp), (
                    f"{metric} by {dims} per {gran}: {len(got)} rows, oracle {len(exp)}"
                )
                for col in exp.columns:
                    if col == "bucket":
                        same = (got[col].to_numpy() == exp[col].to_numpy()).all()
                    else:
                        cast = "object" if col == "event_type" else "int64"
                        same = (got[col].astype(cast).to_numpy() == exp[col].astype(cast).to_numpy()).all()
                    assert same, f"{metric} by {dims} per {gran}: column {col} differs from the oracle"


def assert_merged_equals_oracle(world: World) -> None:
    """The serving merge (batch view + speed view) equals the oracle over the whole range."""
    engine = QueryEngine(world.settings, clickhouse=world.client, cache_entries=0)
    frame = world.oracle()
    lo = world.now_ms - 3 * DAY_MS
    try:
        for metric in ADDITIVE:
            for by in ((), ("store_id",), ("event_type",)):
                res = engine.query(metric, by, format_ts(lo), format_ts(world.now_ms), "hour")
                exp = oracle_metrics(frame, metric, by, "hour")
                keys = ["bucket", *by]
                got = res.frame.merge(exp, on=keys, how="outer", suffixes=("_got", "_exp"), indicator=True)
                assert (got["_merge"] == "both").all(), f"{metric} by {by}: rows on one side only"
                assert (got["value_got"] == got["value_exp"]).all(), f"{metric} by {by}: values differ"
                assert not res.coverage.holes
    finally:
        engine.close()


def _backfill(world: World, dask: Any, mode: str = "export") -> Any:
    now = datetime.fromtimestamp(world.now_ms / 1000, tz=UTC)
    start = datetime.fromtimestamp((world.now_ms - 4 * DAY_MS) / 1000, tz=UTC)
    settings = world.settings.model_copy(
        update={"batch": world.settings.batch.model_copy(update={"recompute_mode": mode})}
    )
    return run_recompute(settings, world.client, start=start, end=now, now=now, dask=dask)


def test_ingest_and_export_recompute_on_external_cluster_equal_oracle(
    world: World, external_dask: ExternalDask
) -> None:
    workers = external_dask.client.scheduler_info()["workers"]
    assert len(workers) == 2 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
    report = world.recompute(world.now_ms)
    assert "mode_export" in report.timings, report.timings
    assert len(report.windows) >= 3 and report.rows["hot"] == len(world.oracle())
    assert_views_equal_oracle(world, world.now_ms // 60_000 * 60_000)
    assert_merged_equals_oracle(world)


def test_worker_killed_mid_recompute_job_still_exact(
    world: World, external_dask: ExternalDask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="batch_layer.recompute")
    dc = external_dask.client
    pids = external_dask.worker_pids()
    killed: list[tuple[str, float]] = []
    done = threading.Event()

    def kill_first_busy() -> None:
        while not done.is_set():
            busy = [addr for addr, keys in dc.processing().items() if keys]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append((busy[0], time.monotonic()))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_busy)
    killer.start()
    try:
        report = _backfill(world, dc)
    finally:
        done.set()
        killer.join()
    finished = time.monotonic()
    assert killed and killed[0][1] < finished, "no worker was killed during the recompute"
    assert len(dc.scheduler_info()["workers"]) == 1
    assert len(report.windows) >= 3
    assert_views_equal_oracle(world, world.now_ms // 60_000 * 60_000)
    assert_merged_equals_oracle(world)
    # hot rows are scattered to the workers: the killed one held a day's rows, so
    # that day was exported and submitted again (cold-only days Dask reruns itself)
    assert any("retrying" in r.getMessage() for r in caplog.records), "no day was resubmitted"


class _SpecRecorder(SchedulerPlugin):
    """Keeps every task's pickled run spec as the scheduler sees it."""

    name = "lrt-spec-recorder"

    def __init__(self) -> None:
        self.specs: list[bytes] = []
        self.scheduler: Any = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        ts = self.scheduler.tasks.get(key) if self.scheduler is not None else None
        if ts is not None and ts.run_spec is not None and finish in ("waiting", "queued", "processing"):
            self.specs.append(cloudpickle.dumps(ts.run_spec))


def _recorded_specs(dask_scheduler: Any) -> list[bytes]:
    return list(dask_scheduler.plugins[_SpecRecorder.name].specs)


def test_full_tier_move_then_cold_backfill_on_external_cluster_keeps_secrets_off_the_graph(
    world: World, external_dask: ExternalDask
) -> None:
    later = datetime.fromtimestamp((world.now_ms + 10 * DAY_MS) / 1000, tz=UTC)
    moved = 0
    for _ in range(3):  # hot -> warm, then warm -> cold
        moved += sum(m.rows for m in run_tier(world.settings, world.client, now=later).moves)
    left = {
        t: world.client.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in (EVENTS_HOT, EVENTS_WARM)
    }
    assert left == {EVENTS_HOT: 0, EVENTS_WARM: 0} and moved >= 2 * len(world.oracle())

    dc = external_dask.client
    dc.register_plugin(_SpecRecorder())
    report = _backfill(world, dc)
    specs = dc.run_on_scheduler(_recorded_specs)
    dc.unregister_scheduler_plugin(_SpecRecorder.name)

    # every row came from S3 Parquet, read by the workers with their own credentials
    assert report.rows["cold"] == len(world.oracle()) and report.rows["hot"] == report.rows["warm"] == 0
    assert "mode_export" in report.timings
    assert_views_equal_oracle(world, world.now_ms // 60_000 * 60_000)
    assert_merged_equals_oracle(world)

    s3 = world.settings.s3
    assert s3.access_key is not None and s3.secret_key is not None
    assert specs, "the plugin saw no task"
    assert any(s3.endpoint.encode() in spec for spec in specs), "task specs do not name the S3 endpoint"
    for secret in (s3.access_key.get_secret_value(), s3.secret_key.get_secret_value()):
        assert not any(secret.encode() in spec for spec in specs), "an S3 secret is in the task graph"


def test_pushdown_tasks_carry_no_secret_either(world: World) -> None:
    """In-process workers (pushdown): the day's SQL names placeholders, not the S3 keys."""
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster,
        DaskClient(cluster) as dc,
    ):
        dc.register_plugin(_SpecRecorder())
        report = _backfill(world, dc, mode="pushdown")
        specs = dc.run_on_scheduler(_recorded_specs)
    assert "mode_pushdown" in report.timings and report.rows["cold"] == len(world.oracle())
    assert_views_equal_oracle(world, world.now_ms // 60_000 * 60_000)
    s3 = world.settings.s3
    assert s3.access_key is not None and s3.secret_key is not None and specs
    assert any(b"__LRT_S3_SECRET_KEY__" in spec for spec in specs), (
        "the cold s3() calls were not in the tasks"
    )
    for secret in (s3.access_key.get_secret_value(), s3.secret_key.get_secret_value()):
        assert not any(secret.encode() in spec for spec in specs), "an S3 secret is in the task graph"
