"""``lambda-rt run`` under kill -9: every supervised process comes back and applies again.

``lambda-rt run --speed-processes 2`` (the daemon + two speed processes) runs
on the test's slice of the session stack while a producer spreads traffic over
every partition. Three times a supervised process chosen at random is killed
with SIGKILL; recovery is the time until the supervisor reports it running
again with a new pid *and* every partition's offset in Redis moved past where
it was at the kill (the consumer group is applying everything again), or, for
the daemon, until its HTTP API answers again. Then SIGTERM to ``run`` must stop
every child, and the merged answers must equal the oracle.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.producing import produce_batches
from lambda_rt.stack.ports import free_port
from lambda_rt.supervisor import read_run_file
from serving.spec import format_ts
from speed_layer.keys import SpeedKeys
from tests.chaos.harness import applied_total, check_served, generate, record_check, size, wait_until

KILLS = 3
TARGET_RECOVERY_S = 10.0


def _offsets(settings: Settings) -> dict[int, int]:
    client = make_redis(settings.redis)
    try:
        raw = client.hgetall(SpeedKeys(settings.redis.key_prefix).offsets)
    finally:
        client.close()
    return {int(k): int(v) for k, v in raw.items()}


def _children(settings: Settings) -> dict[str, dict[str, Any]]:
    doc = read_run_file(settings)
    return {c["name"]: c for c in (doc or {}).get("children", [])}


def _produce_spread(settings: Settings, values: list[bytes], seconds: float) -> threading.Thread:
    """Produce ``values`` over about ``seconds``, keyed so every partition gets traffic."""
    chunks = max(1, int(seconds / 0.25))
    step = -(-len(values) // chunks)

    def run() -> None:
        with KafkaProducer(settings.kafka) as producer:
            for i in range(0, len(values), step):
                pairs = [(str(j % 64).encode(), v) for j, v in enumerate(values[i : i + step], start=i)]
                produce_batches(producer, settings.kafka.topic, [pairs])
                time.sleep(0.25)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _daemon_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_restarts_killed_processes_and_stops_all_on_sigterm(isolated: Any, tmp_path: Path) -> None:
    settings: Settings = isolated.settings
    port = free_port()
    env = {**isolated.env, "LAMBDA_RT_SERVE__PORT": str(port)}
    (settings.state_dir / "run.json").unlink(missing_ok=True)
    now = int(time.time() * 1000)
    values = generate(size(30_000, 150_000), seed=173, end_ms=now - 30_000)
    with open(tmp_path / "run.log", "ab") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "lambda_rt", "run", "--speed-processes", "2", "--no-schedule"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    rng = random.Random(17)
    recoveries: list[tuple[str, float]] = []
    try:
        wait_until(
            lambda: len(_children(settings)) == 3, 60, "run.json to list the daemon and 2 speed processes"
        )
        prod = _produce_spread(settings, values, 45.0)
        wait_until(
            lambda: len(_offsets(settings)) == settings.kafka.partitions, 90, "every partition applied"
        )
        wait_until(lambda: _daemon_answers(port), 90, "the daemon's HTTP API")
        victims = sorted(_children(settings))
        rng.shuffle(victims)  # a random order, each process killed once
        for victim in victims[:KILLS]:
            old = _children(settings)[victim]
            assert old["state"] == "running" and old["pid"], old
            at_kill = _offsets(settings)
            t0 = time.monotonic()
            os.kill(int(old["pid"]), signal.SIGKILL)

            def back(
                victim: str = victim, old_pid: int = int(old["pid"]), at_kill: dict[int, int] = at_kill
            ) -> bool:
                child = _children(settings).get(victim, {})
                if child.get("state") != "running" or child.get("pid") in (None, old_pid):
                    return False
                if victim == "daemon":
                    return _daemon_answers(port)
                now_offsets = _offsets(settings)
                return all(now_offsets.get(p, 0) > o for p, o in at_kill.items())

            wait_until(back, 60, f"{victim} to come back and apply", every_s=0.1)
            recoveries.append((victim, time.monotonic() - t0))
            assert prod.is_alive(), "the stream ended before the kills were done"
        prod.join(300)
        wait_until(lambda: applied_total(settings) >= len(values), 180, "the speed layer to catch up")
        final = _children(settings)
        assert sum(c["restarts"] for c in final.values()) == KILLS, final
        assert all(c["last_exit"] for c in final.values() if c["restarts"]), final
        status = subprocess.run(
            [sys.executable, "-m", "lambda_rt", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        listed = {c["name"]: c for c in json.loads(status.stdout)["processes"]["children"]}
        assert set(listed) == {"daemon", "speed-1", "speed-2"}
        assert all(c["pid"] and c["uptime_s"] is not None for c in listed.values()), listed
        pids = [int(c["pid"]) for c in listed.values()]
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
        code = run.wait(90)
    assert code == 0, f"run exited {code}; see {tmp_path / 'run.log'}"
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    check = check_served(
        settings, values, now, start=format_ts(now - 15 * 60_000), end=format_ts(now + 600_000)
    )
    record_check(
        "supervised_kill9",
        check,
        kills=[v for v, _ in recoveries],
        recovery_s=[round(s, 1) for _, s in recoveries],
        recovery_s_max=round(max(s for _, s in recoveries), 1),
    )
    assert check.exact, check
    assert max(s for _, s in recoveries) <= TARGET_RECOVERY_S, recoveries
