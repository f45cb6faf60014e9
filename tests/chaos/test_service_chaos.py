"""Service chaos on a PRIVATE stack: broker restart, Redis kill -9 + AOF restart, S3
restart during a tier move; and Redis lost entirely (on the session stack's slice).

The private stack (S3, durable broker stored in it, Redis) is started in a temp
state dir on free ports and stopped at the end; the session stack is never
restarted. The speed layer runs as a supervised subprocess (restarted when it
exits, as systemd or Kubernetes would); ingest, recompute and the tier move run
in this process on the session chDB engine.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import serving
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.clients.kafka import KafkaProducer, ensure_topics
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.producing import produce_all, produce_batches
from lambda_rt.stack import launcher, process
from lambda_rt.stack.binaries import redis_server_binary, tansu_binary, weed_binary
from lambda_rt.stack.state import StateLayout
from serving.spec import format_ts
from speed_layer.keys import META_REBUILDING, SpeedKeys
from tests.chaos.harness import (
    applied_total,
    batch_catch_up,
    check_dlq,
    check_served,
    chunked,
    generate,
    kill9,
    private_stack,
    produce_in_background,
    record,
    record_check,
    size,
    speed_process,
    terminate_cleanly,
    wait_until,
)

pytestmark = pytest.mark.chaos


class Supervisor:
    """Keeps one ``lambda-rt speed`` running; restarts it whenever it exits."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.restarts = 0
        self._stop = threading.Event()
        self.proc = speed_process(env)
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.proc.poll() is not None:
                self.restarts += 1
                self.proc = speed_process(self.env)
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except Exception:
            kill9(self.proc)


def _slice(ps: Settings, chdb: Settings, tag: str, **batch: Any) -> Settings:
    return ps.model_copy(
        update={
            "clickhouse": ps.clickhouse.model_copy(update={"dsn": chdb.clickhouse_dsn, "database": tag}),
            "batch": ps.batch.model_copy(update=batch),
            "dask": ps.dask.model_copy(update={"processes": False}),
            "s3": ps.s3.model_copy(update={"bucket": f"lrt-{tag}"}),
        }
    )


@pytest.mark.chaos_full
def test_broker_redis_and_s3_restarts_mid_stream(tmp_path: Path, chdb_settings: Settings) -> None:
    from batch_layer.ingest import Ingestor
    from batch_layer.recompute import run_recompute
    from batch_layer.tiering import run_tier

    cycles = size(1, 3)
    state = tmp_path / "stack"
    with private_stack(state) as ps:
        tag = f"c{uuid.uuid4().hex[:8]}"
        settings = _slice(
            ps, chdb_settings, tag, allowed_lateness_s=0, hot_to_warm_after_s=0, warm_to_cold_after_s=0
        )
        ensure_topics(settings.kafka)
        env = {"LAMBDA_RT_STATE_DIR": str(state), "PATH": __import__("os").environ["PATH"]}
        layout = StateLayout(state)
        now = int(time.time() * 1000)
        n = size(12_000, 90_000)
        recent = generate(n, seed=91, end_ms=now - 30_000)
        today = datetime.fromtimestamp(now / 1000, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        old_end = int((today - timedelta(days=2)).timestamp() * 1000) + 6 * 3_600_000
        old = generate(size(3_000, 20_000), seed=92, end_ms=old_end, span_ms=4 * 3_600_000)
        values = recent + old
        sup = Supervisor(env)
        restarts: dict[str, list[float]] = {"broker": [], "redis": []}
        prod = produce_in_background(settings, chunked(values, 1500), 0.2)
        try:
            for _ in range(cycles):
                wait_until(lambda: applied_total(settings) > 0, 90, "the speed layer to apply")
                # broker: a clean restart; its log lives in S3, so nothing may go missing
                t0 = time.monotonic()
                assert process.stop(layout.pid("kafka"), tansu_binary())
                launcher.up(ps)
                restarts["broker"].append(time.monotonic() - t0)
                time.sleep(1.0)
                # Redis: kill -9, then up again (it replays its AOF)
                t0 = time.monotonic()
                pid = process.running_pid(layout.pid("redis"), redis_server_binary())
                assert pid is not None
                __import__("os").kill(pid, 9)
                time.sleep(0.5)
                launcher.up(ps)
                restarts["redis"].append(time.monotonic() - t0)
            prod.join(300)
            t0 = time.monotonic()
            wait_until(lambda: applied_total(settings) >= len(values), 240, "the speed layer to catch up")
            speed_recovery = time.monotonic() - t0
        finally:
            sup.stop()
        client = open_clickhouse(settings)
        Ingestor(settings, client).run(until_idle_s=3.0)
        # S3 restart while a tier move writes the cold tier
        s3_restarts = 0
        tier_errors: list[str] = []
        mover = threading.Thread(
            target=_tier_until_done, args=(settings, client, run_tier, tier_errors), daemon=True
        )
        mover.start()
        time.sleep(0.3)
        try:
            tier_running_at_stop = mover.is_alive()
            assert process.stop(layout.pid("s3"), weed_binary())
            launcher.up(ps)
            s3_restarts += 1
        finally:
            mover.join(300)
        assert tier_errors[-1:] != [_TIER_GAVE_UP], f"the tier job never succeeded: {tier_errors[-4:-1]}"
        run_recompute(settings, client, now=datetime.fromtimestamp(now / 1000 + 3600, tz=UTC))
        a = check_served(
            settings, recent, now, start=format_ts(now - 30 * 60_000), end=format_ts(now + 600_000)
        )
        b = check_served(
            settings,
            old,
            now,
            start=format_ts(old_end - 2 * 86_400_000),
            end=format_ts(old_end + 86_400_000),
            granularity="hour",
        )
        dlq = check_dlq(settings, values, now)
        cold = client.query("SELECT count() FROM tier_moves FINAL WHERE dst = 'cold' AND state = 'done'")
        record_check(
            "service_restarts",
            a + b,
            dlq,
            runs=cycles,
            broker_restarts=len(restarts["broker"]),
            redis_kill9_restarts=len(restarts["redis"]),
            s3_restarts_during_tier_move=s3_restarts,
            tier_move_running_at_s3_stop=tier_running_at_stop,
            tier_attempts_failed=len([e for e in tier_errors if e != _TIER_GAVE_UP]),
            speed_process_restarts=sup.restarts,
            broker_restart_s_max=round(max(restarts["broker"]), 1),
            redis_restart_s_max=round(max(restarts["redis"]), 1),
            recovery_s=round(speed_recovery, 1),
        )
        assert cold.result_rows[0][0] >= 1
        assert a.exact, a
        assert b.exact, b


_TIER_GAVE_UP = "gave up after 20 attempts"


def _tier_until_done(settings: Settings, client: Any, run_tier: Any, errors: list[str]) -> None:
    """Run the tier job until a run succeeds (a run may fail while S3 restarts)."""
    for _ in range(20):
        try:
            run_tier(settings, client)
            return
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            time.sleep(1.0)
    errors.append(_TIER_GAVE_UP)


def _lose_speed_view(settings: Settings) -> int:
    """Delete every key of the speed view (as a flush or an empty failover would)."""
    r = make_redis(settings.redis)
    lost_keys = 0
    for key in r.scan_iter(match=f"{settings.redis.key_prefix}:*", count=1000):
        lost_keys += int(r.delete(key))
    r.close()
    return lost_keys


def _apply_then_stop(isolated: Any, produced: int, keys: SpeedKeys) -> float:
    """Run ``lambda-rt speed`` until it applied ``produced`` messages and is not rebuilding; SIGTERM it."""
    r = make_redis(isolated.settings.redis)

    def done() -> bool:
        return applied_total(isolated.settings) >= produced and r.hget(keys.meta, META_REBUILDING) == b"0"

    proc = speed_process(isolated.env)
    try:
        took = wait_until(done, 120, f"the speed layer to apply {produced} messages")
        terminate_cleanly(proc)
    finally:
        if proc.poll() is None:
            kill9(proc)
        r.close()
    return took


def test_redis_lost_speed_layer_rebuilds_exactly(isolated: Any) -> None:
    """Delete the speed view's keys; the next speed run rebuilds it from the start of the topic.

    Formerly a known bug: after the speed view was lost, the speed layer resumed
    from the Kafka commit (the hint), so the lost buckets were never rebuilt and
    the merged answer silently omitted everything applied before the loss.
    Now no epoch key means a rebuild (``speed_layer.keys``: the state contract).
    """
    now = int(time.time() * 1000)
    n = size(6_000, 60_000)
    values = generate(n, seed=93, end_ms=now - 30_000)
    half = n // 2
    keys = SpeedKeys(isolated.settings.redis.key_prefix)
    with KafkaProducer(isolated.settings.kafka) as producer:
        produce_batches(producer, isolated.settings.kafka.topic, [[(b"k", v) for v in values[:half]]])
        _apply_then_stop(isolated, half, keys)
        lost_keys = _lose_speed_view(isolated.settings)
        produce_batches(producer, isolated.settings.kafka.topic, [[(b"k", v) for v in values[half:]]])
    rebuild_s = _apply_then_stop(isolated, n, keys)
    r = make_redis(isolated.settings.redis)
    assert r.get(keys.epoch) is not None
    assert r.hget(keys.meta, META_REBUILDING) == b"0"
    r.close()
    start, end = format_ts(now - 30 * 60_000), format_ts(now + 600_000)
    with serving.LocalClient(isolated.settings) as client:
        res = client.query_result("events", "store_id,event_type", start, end, "minute")
        holes = res.coverage.to_dict()["holes"]
    before = check_served(isolated.settings, values, now, start=start, end=end)
    # batch catches up: exact again
    after = check_served(batch_catch_up(isolated.settings, now), values, now, start=start, end=end)
    dlq = check_dlq(isolated.settings, values, now)
    record_check(
        "redis_lost",
        after,
        dlq,
        runs=1,
        keys_deleted=lost_keys,
        lost_before_batch=before.lost,
        double_counted_before_batch=before.doubled,
        mismatched_before_batch=sorted(before.mismatches),
        holes_reported=len(holes),
        recovery_s=round(rebuild_s, 1),
    )
    # the speed layer rebuilt the lost buckets: exact before the batch layer ran
    assert before.exact, before
    assert after.exact, after


def test_redis_lost_serving_reports_holes_instead_of_wrong_numbers(isolated: Any) -> None:
    """While the speed view is rebuilt (``meta.rebuilding = 1``), serving must report a hole.

    Formerly a known bug: serving did not read the rebuild flag of the state
    contract (``speed_layer.keys``), so mid-rebuild it answered with the
    not-yet-replayed part missing and no hole. The speed side is covered by
    ``test_redis_lost_speed_layer_rebuilds_exactly``.
    """
    from speed_layer.epoch import EpochStore

    now = int(time.time() * 1000)
    values = generate(size(4_000, 20_000), seed=94, end_ms=now - 30_000)
    produce_all(isolated.settings.kafka, [[(b"k", v) for v in values]])
    p = speed_process(isolated.env, idle_s=3)
    assert p.wait(120) == 0
    _lose_speed_view(isolated.settings)
    # a rebuild has just started: the epoch exists, rebuilding=1, nothing replayed yet
    r = make_redis(isolated.settings.redis)
    keys = SpeedKeys(isolated.settings.redis.key_prefix)
    EpochStore(r, keys).claim({0: len(values)})
    assert r.hget(keys.meta, META_REBUILDING) == b"1"
    r.close()
    start, end = format_ts(now - 30 * 60_000), format_ts(now + 600_000)
    with serving.LocalClient(isolated.settings) as client:
        res = client.query_result("events", "store_id,event_type", start, end, "minute")
        coverage = res.coverage.to_dict()
    record(
        "redis_lost_holes",
        runs=1,
        produced=len(values),
        holes_reported=len(coverage["holes"]),
        exact_claimed=bool(coverage.get("exact", True)),
    )
    assert coverage["holes"], f"serving reported no hole while the speed view is rebuilding: {coverage}"
    assert not coverage.get("exact", True)
