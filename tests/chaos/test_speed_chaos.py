"""Speed-layer chaos: kill -9 at random moments, rebalances, a 10x burst.

Each scenario produces traffic while ``lambda-rt speed`` processes are killed,
added or removed, then lets the layer drain and compares every merged metric
(the serving layer's answer) with the oracle over everything produced, and the
DLQ with the oracle's rejects.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.clients.redis import make_redis
from lambda_rt.demo.traffic import PRODUCER_OVERRIDES
from lambda_rt.producing import produce_batches
from lambda_rt.stack.ports import free_port
from serving.spec import format_ts
from speed_layer.keys import SpeedKeys
from tests.chaos.harness import (
    FULL,
    MergedCheck,
    applied_total,
    batch_catch_up,
    check_dlq,
    check_served,
    chunked,
    generate,
    kill9,
    produce_in_background,
    record_check,
    size,
    speed_process,
    terminate_cleanly,
    wait_until,
)

pytestmark = pytest.mark.chaos

SESSION_S = 6.0  # speed.session_timeout_ms: a killed member's partitions move after it


def _merged(settings: Any, values: list[bytes], now: int) -> MergedCheck:
    """The merged answer over the last 30 minutes (all generated traffic) vs the oracle."""
    return check_served(
        settings, values, now, start=format_ts(now - 30 * 60_000), end=format_ts(now + 10 * 60_000)
    )


def _finish(env: dict[str, str], settings: Any, produced: int, since: float) -> float:
    """Run a last speed process until idle; seconds from ``since`` (the last kill) until all applied."""
    proc = speed_process(env)
    wait_until(lambda: applied_total(settings) >= produced, 180, "the speed layer to catch up")
    recovery = time.monotonic() - since
    terminate_cleanly(proc)  # everything is applied: a clean stop instead of waiting to be idle
    return recovery


def test_kill_9_speed_processes_at_random_moments(isolated: Any) -> None:
    kills_wanted = size(1, 20)
    n = size(8_000, 200_000)
    now = int(time.time() * 1000)
    values = generate(n, seed=71)
    chunks = chunked(values, max(1, n // (kills_wanted * 4)))
    # traffic spans the whole kill loop (a restart needs the dead member's session to expire)
    pause = (kills_wanted * (SESSION_S + 3.0)) / len(chunks)
    prod = produce_in_background(isolated.settings, chunks, pause)
    rng = random.Random(7)
    resume_s: list[float] = []
    kills = 0
    while kills < kills_wanted:
        before = applied_total(isolated.settings)
        proc = speed_process(isolated.env)
        t0 = time.monotonic()
        # wait until this process applies something, then kill it at a random moment
        try:
            resume_s.append(
                wait_until(lambda b=before: applied_total(isolated.settings) > b, 60, "a restart to apply")  # type: ignore[misc]
            )
        except AssertionError:
            if not prod.is_alive():  # nothing left to apply: still a valid kill moment
                resume_s.append(time.monotonic() - t0)
            else:
                raise
        time.sleep(rng.uniform(0.0, 2.5))
        kill9(proc)
        killed_at = time.monotonic()
        kills += 1
    prod.join(300)
    recovery = _finish(isolated.env, isolated.settings, n, killed_at)
    result = _merged(isolated.settings, values, now)
    dlq = check_dlq(isolated.settings, values, now)
    record_check(
        "speed_kill9",
        result,
        dlq,
        runs=kills,
        resume_s_max=round(max(resume_s), 1),
        recovery_s=round(recovery, 1),
    )
    assert result.exact, result


@pytest.mark.chaos_full
def test_rebalance_add_and_remove_speed_processes(isolated: Any) -> None:
    cycles = size(1, 3)
    n = size(12_000, 120_000)
    now = int(time.time() * 1000)
    values = generate(n, seed=72)
    chunks = chunked(values, 1000)
    prod = produce_in_background(isolated.settings, chunks, (cycles * 2.5 * SESSION_S) / len(chunks))
    first = speed_process(isolated.env)
    rebalances = 0
    for _ in range(cycles):
        wait_until(lambda: applied_total(isolated.settings) > 0, 60, "the first member to apply")
        extra = speed_process(isolated.env)  # join: the group rebalances while processing
        time.sleep(SESSION_S)
        extra.terminate()  # graceful leave: a second rebalance
        extra.wait(60)
        rebalances += 2
    prod.join(300)
    t0 = time.monotonic()
    wait_until(lambda: applied_total(isolated.settings) >= n, 180, "the remaining member to catch up")
    recovery = time.monotonic() - t0
    first.terminate()
    assert first.wait(60) == 0
    result = _merged(isolated.settings, values, now)
    dlq = check_dlq(isolated.settings, values, now)
    record_check(
        "speed_rebalance",
        result,
        dlq,
        runs=rebalances,
        recovery_s=round(recovery, 1),
    )
    assert result.exact, result


def _gauges(port: int) -> dict[str, float]:
    """The speed process's Prometheus gauges (empty until it serves them)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return {}
    return {f.name: f.samples[0].value for f in text_string_to_metric_families(text) if f.type == "gauge"}


def _rate_producer(settings: Any, phases: Sequence[tuple[float, float]], values: list[bytes]) -> Any:
    """Produce ``values`` in phases of (seconds, rate) in a thread, in large batches.

    ``sent[0]`` counts messages queued; ``errors`` holds what stopped the thread
    (a broker that does not acknowledge in time), so the test fails with it.
    The producer batches like the demo's (:data:`BURST_PRODUCER`).
    """
    sent = [0]
    errors: list[str] = []

    def progress(k: int) -> None:
        sent[0] += k

    def run() -> None:
        pos = 0
        try:
            with KafkaProducer(settings.kafka, **BURST_PRODUCER) as producer:
                for seconds, rate in phases:
                    part = values[pos : pos + int(seconds * rate)]
                    pos += len(part)
                    batches = [[(b"k", v) for v in part[i : i + 500]] for i in range(0, len(part), 500)]
                    produce_batches(producer, settings.kafka.topic, batches, rate=rate, on_progress=progress)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, sent, errors


# Full form: 1,000/s sustained, 10,000/s for a minute (640,000 messages). At
# 3,000/s (1.92M messages) the broker + speed layer of the shared 2-core dev
# machine did not drain within 9 minutes (fetch stalls of the S3-backed broker).
BURST_BASE = size(600, 1_000)
DRAIN_S = size(180, 600)

# The embedded broker (tansu, durable S3 storage) writes one S3 object per
# partition per produce batch and reads slow down as a partition holds more of
# them (measured: ~33 objects/s at 100, ~4/s at 600, nothing at >= 900). With
# the default 20 ms linger the paced 10,000/s burst (500-message slices every
# 50 ms) made ~20 objects/s, ~1,300 in the partition by the end, and the speed
# layer stopped at 335,500 of 640,000 in the full run of 2026-11-26 13:50 UTC.
# With the demo's 500 ms linger it is ~2 objects/s, ~200 in all. Every message
# has the key b"k", so the topic has one partition: the same single partition
# holds the traffic, and the consumer does not poll empty ones.
BURST_PRODUCER = PRODUCER_OVERRIDES
BURST_PARTITIONS = 1

# At 10,000/s the speed layer keeps up on this machine (a run of this scenario
# alone, 2026-11-26: lag peak 0.22 s, 1,500 messages), so the burst alone never makes
# it shed. Freezing the process (SIGSTOP) for a few seconds mid-burst stands in
# for a machine that cannot keep up at 10x: on SIGCONT it is FREEZE_S behind
# with the burst still coming. Shorter than the session timeout, so the frozen
# member keeps its partitions (no rebalance is part of this scenario).
FREEZE_S = 4.0


@pytest.mark.chaos_full
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("isolated", [BURST_PARTITIONS], indirect=True)
def test_burst_at_10x_lag_recovers_shedding_only_touches_speed(isolated: Any) -> None:
    """Sustained rate, a 10x burst, sustained again; page views shed under lag (speed only).

    The speed process is frozen for ``FREEZE_S`` mid-burst so that the lag
    passes the shedding threshold (see ``FREEZE_S``).
    """
    base = BURST_BASE

    burst_s = size(6, 60)
    phases = [(size(3, 20), base), (burst_s, base * 10), (size(4, 20), base)]
    n = int(sum(s * r for s, r in phases))
    now = int(time.time() * 1000)
    values = generate(n, seed=73)
    env = {
        **isolated.env,
        "LAMBDA_RT_SPEED__SHED_EVENT_TYPES": '["page_view"]',
        "LAMBDA_RT_SPEED__SHED_LAG_SECONDS": "1.0",
        "LAMBDA_RT_SPEED__BATCH_SIZE": "2000",
        "LAMBDA_RT_SPEED__METRICS_PORT": str(metrics_port := free_port()),
    }
    proc = speed_process(env)
    wait_until(lambda: proc.poll() is None, 5, "speed start")
    time.sleep(SESSION_S)  # joined before the traffic starts
    thread, sent, produce_errors = _rate_producer(isolated.settings, phases, values)
    lag_peak = 0
    # the speed process's own lag gauges (seconds, fetched-not-applied messages), before/from the burst
    lag_s_peak = {"before": 0.0, "burst": 0.0}
    lag_m_peak = {"before": 0.0, "burst": 0.0}
    shedding_seen = False
    burst_start = int(phases[0][0] * phases[0][1])
    frozen = False
    resumed: tuple[float, int] | None = None  # (when, messages sent by then) at SIGCONT
    freeze_recovery_s: float | None = None
    burst_end = burst_start + int(phases[1][0] * phases[1][1])
    burst_done_at: float | None = None
    lag_recovered_s: float | None = None
    while thread.is_alive() or lag_recovered_s is None:
        assert not produce_errors, produce_errors
        time.sleep(0.25)
        applied = applied_total(isolated.settings)
        lag_peak = max(lag_peak, sent[0] - applied)
        gauges = _gauges(metrics_port)
        phase = "before" if sent[0] < burst_start else "burst"
        lag_s_peak[phase] = max(lag_s_peak[phase], gauges.get("lrt_speed_lag_seconds", 0.0))
        lag_m_peak[phase] = max(lag_m_peak[phase], gauges.get("lrt_speed_lag_messages", 0.0))
        shedding_seen = shedding_seen or gauges.get("lrt_speed_shedding", 0.0) > 0
        if resumed is not None and freeze_recovery_s is None and applied >= resumed[1]:
            freeze_recovery_s = time.monotonic() - resumed[0]
        if not frozen and sent[0] >= burst_start + (burst_end - burst_start) // 2:
            frozen = True
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                time.sleep(FREEZE_S)
                lag_peak = max(lag_peak, sent[0] - applied_total(isolated.settings))
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            resumed = (time.monotonic(), sent[0])
        if burst_done_at is None and sent[0] >= burst_end:
            burst_done_at = time.monotonic()
        if burst_done_at is not None and lag_recovered_s is None and applied >= burst_end:
            lag_recovered_s = time.monotonic() - burst_done_at
        if burst_done_at is not None and time.monotonic() - burst_done_at > DRAIN_S:
            break
    thread.join(60)
    assert not produce_errors, produce_errors
    assert sent[0] == n
    t0 = time.monotonic()
    wait_until(lambda: applied_total(isolated.settings) >= n, DRAIN_S, "the speed layer to recover")
    recovery = time.monotonic() - t0
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    meta = make_redis(isolated.settings.redis).hgetall(SpeedKeys(isolated.settings.redis.key_prefix).meta)
    shed = sum(int(v) for k, v in meta.items() if k.startswith(b"shed:"))
    speed_events = int(meta.get(b"events", 0))

    # the batch path gets everything: ingest, then a recompute past the last event
    settings = batch_catch_up(isolated.settings, now)
    result = _merged(settings, values, now)
    # ~40 dead letters per 2,000-message speed batch: some 400 small DLQ objects
    dlq = check_dlq(isolated.settings, values, now, idle_s=10.0)
    record_check(
        "burst_10x",
        result,
        dlq,
        runs=1,
        rates=[r for _, r in phases],
        burst_s=burst_s,
        shed_on_speed_path=shed,
        lag_peak_messages=lag_peak,
        lag_s_peak_before_burst=round(lag_s_peak["before"], 2),
        lag_s_peak_from_burst=round(lag_s_peak["burst"], 2),
        lag_m_peak_before_burst=int(lag_m_peak["before"]),
        lag_m_peak_from_burst=int(lag_m_peak["burst"]),
        shedding_seen=shedding_seen,
        frozen_s=FREEZE_S,
        freeze_recovery_s=round(freeze_recovery_s or -1.0, 1),
        recovery_s=round(lag_recovered_s or -1.0, 1),
        drain_after_traffic_s=round(recovery, 1),
        partitions=BURST_PARTITIONS,
        producer_linger_ms=BURST_PRODUCER["linger.ms"],
        full=FULL,
    )
    assert result.exact, result
    # the speed path: what it applied plus what it shed is every valid event
    assert speed_events + shed == result.valid, (speed_events, shed, result.valid)
    assert shed > 0, "the speed path never shed: the scenario did not exercise shedding"
