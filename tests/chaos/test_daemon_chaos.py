"""Daemon chaos: kill -9 of ``lambda-rt serve`` during ingest, during a recompute, and
at every step of a tier move; the merged answers must still equal the oracle.

The daemon runs as a subprocess with its own chDB directory (``isolated.env``)
and hosts the batch ingest; the speed layer runs as its own subprocess. Kills
during ingest and recompute are real SIGKILLs at random moments; the tier move
is killed at each named step through ``batch.crash_after`` (``os._exit``, which
is what kill -9 does to a process: no cleanup, no flush).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from lambda_rt.producing import produce_all
from lambda_rt.testing import oracle_frame
from serving.spec import format_ts
from tests.chaos.harness import (
    Daemon,
    check_dlq,
    check_merged,
    chunked,
    generate,
    produce_in_background,
    record_check,
    size,
    speed_process,
    wait_until,
)

pytestmark = pytest.mark.chaos

TIER_STEPS = ("started", "claimed", "copied", "verified", "recorded", "deleted")
_BATCH_ENV = {"LAMBDA_RT_DASK__PROCESSES": "false", "LAMBDA_RT_BATCH__ALLOWED_LATENESS_S": "0"}


def _produce(settings: Any, values: list[bytes]) -> None:
    produce_all(settings.kafka, [[(b"k", v) for v in values]])


def test_kill_9_daemon_during_ingest_and_recompute(isolated: Any) -> None:
    ingest_kills = size(1, 5)
    recompute_kills = size(1, 5)
    n = size(6_000, 100_000)
    now = int(time.time() * 1000)
    values = generate(n, seed=81, end_ms=now - 60_000)
    valid = len(oracle_frame(values, now_ms=now))
    env = {**isolated.env, **_BATCH_ENV, "LAMBDA_RT_BATCH__INGEST_BATCH_SIZE": "1000"}
    state = isolated.settings.state_dir
    rng = random.Random(8)
    speed = speed_process(isolated.env, idle_s=6)
    prod = produce_in_background(isolated.settings, chunked(values, 2000), 0.3)
    daemon = Daemon(env, state)
    kills = 0
    resume: list[float] = []
    try:
        while kills < ingest_kills:
            wait_until(lambda d=daemon: d.hot_rows() > 0, 90, "the daemon's ingest to insert")  # type: ignore[misc]
            time.sleep(rng.uniform(0.0, 1.5))
            daemon.kill9()
            kills += 1
            t0 = time.monotonic()
            daemon = Daemon(env, state)
            resume.append(time.monotonic() - t0)
        prod.join(300)
        t0 = time.monotonic()
        wait_until(lambda: daemon.hot_rows() >= valid, 180, "ingest to catch up", every_s=0.5)
        ingest_recovery = time.monotonic() - t0
        for _ in range(recompute_kills):
            job = threading.Thread(target=_post_ignoring_errors, args=(daemon.url + "/jobs/recompute",))
            job.start()
            time.sleep(rng.uniform(0.2, 2.0))
            daemon.kill9()
            job.join(60)
            kills += 1
            daemon = Daemon(env, state)
        r = daemon.http.post("/jobs/recompute")
        assert r.status_code == 200, r.text
        _, err = speed.communicate(timeout=180)
        assert speed.returncode == 0, err.decode()[-2000:]
        start, end = format_ts(now - 30 * 60_000), format_ts(now + 10 * 60_000)
        result = check_merged(daemon.query, values, now, start=start, end=end)
        layers = [x["layer"] for x in daemon.last_coverage["ranges"]]
    finally:
        daemon.stop()
    dlq = check_dlq(isolated.settings, values, now)
    record_check(
        "daemon_kill9_ingest_recompute",
        result,
        dlq,
        runs=kills,
        ingest_kills=ingest_kills,
        recompute_kills=recompute_kills,
        layers=layers,
        daemon_restart_s_max=round(max(resume), 1),
        recovery_s=round(ingest_recovery, 1),
    )
    assert "batch" in layers, layers
    assert result.exact, result


def _post_ignoring_errors(url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the daemon is killed under the request
        httpx.post(url, timeout=120)


def _tier_chain(env: dict[str, str], state: Any, steps: list[str], warm_age: int) -> tuple[int, float]:
    """One daemon per step, each killed right after that step of the move in progress."""
    crashes = 0
    slowest = 0.0
    for step in steps:
        daemon = Daemon(
            env,
            state,
            LAMBDA_RT_BATCH__CRASH_AFTER=f"tier:{step}",
            LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S=str(warm_age),
        )
        with contextlib.suppress(httpx.HTTPError):
            daemon.http.post("/jobs/tier")
        rc = daemon.proc.wait(60)
        assert rc == 137, f"the daemon did not die at tier:{step} (exit {rc})"
        crashes += 1
    t0 = time.monotonic()
    daemon = Daemon(env, state, LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S=str(warm_age))
    try:
        r = daemon.http.post("/jobs/tier")
        assert r.status_code == 200, r.text
        slowest = max(slowest, time.monotonic() - t0)
    finally:
        daemon.stop()
    return crashes, slowest


@pytest.mark.chaos_full
def test_kill_9_daemon_at_every_step_of_a_tier_move(isolated: Any) -> None:
    rng = random.Random(9)
    n = size(6_000, 40_000)
    now_dt = datetime.now(UTC)
    today = datetime(now_dt.year, now_dt.month, now_dt.day, tzinfo=UTC)
    end_ms = int((today - timedelta(days=1, hours=12)).timestamp() * 1000)
    now = int(now_dt.timestamp() * 1000)
    values = generate(n, seed=82, end_ms=end_ms, span_ms=86_400_000)
    valid = len(oracle_frame(values, now_ms=now))
    env = {**isolated.env, **_BATCH_ENV, "LAMBDA_RT_BATCH__HOT_TO_WARM_AFTER_S": "0"}
    state = isolated.settings.state_dir
    _produce(isolated.settings, values)
    daemon = Daemon(env, state)
    try:
        wait_until(lambda: daemon.hot_rows() >= valid, 120, "ingest", every_s=0.5)
    finally:
        daemon.stop()
    never = str(30 * 86_400)
    hot_steps = list(TIER_STEPS) if size(0, 1) else sorted(rng.sample(TIER_STEPS, 2), key=TIER_STEPS.index)
    crashes, rec1 = _tier_chain(env, state, hot_steps, warm_age=int(never))
    cold_steps = list(TIER_STEPS) if size(0, 1) else []
    c2, rec2 = _tier_chain(env, state, cold_steps, warm_age=0)
    crashes += c2
    daemon = Daemon(env, state)
    try:
        r = daemon.http.post("/jobs/recompute")
        assert r.status_code == 200, r.text
        status = daemon.http.get("/status").json()
        start, end = format_ts(end_ms - 3 * 86_400_000), format_ts(end_ms + 86_400_000)
        result = check_merged(daemon.query, values, now, start=start, end=end, granularity="hour")
        layers = [x["layer"] for x in daemon.last_coverage["ranges"]]
    finally:
        daemon.stop()
    record_check(
        "daemon_kill9_tier_steps",
        result,
        runs=crashes,
        steps=[f"hot->warm:{s}" for s in hot_steps] + [f"warm->cold:{s}" for s in cold_steps],
        cold_days=status["tiers"].get("cold", {}).get("days", 0),
        recovery_s=round(max(rec1, rec2), 1),
    )
    assert layers == ["batch"], layers
    assert status["tiers"].get("cold", {}).get("rows", 0) == valid, status["tiers"]
    assert result.exact, result
