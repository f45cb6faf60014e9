"""Exactly-once under kill -9 and with two processes in one consumer group.

``lambda-rt speed`` runs as a subprocess; it is killed with SIGKILL at random
moments (at least five times) while events are produced, restarted each time,
and finally run until idle. Every additive metric must then equal the oracle
over exactly the values produced: nothing lost, nothing counted twice.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time

import redis

from lambda_rt.dlq import read_dead_letters
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.testing import oracle_rejects
from tests.speed_layer.fixtures import assert_metrics_equal, now_ms, oracle_view, view_metrics


def _speed(env: dict[str, str], idle: float = 3.0) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lambda_rt", "speed", "--until-idle", str(idle)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _applied(client: redis.Redis, keys) -> int:  # type: ignore[no-untyped-def]
    return sum(int(v) for v in client.hvals(keys.offsets))


def _wait_applied_more(  # type: ignore[no-untyped-def]
    proc: subprocess.Popen[bytes], client: redis.Redis, keys, before: int, total: int, timeout_s: float = 120
) -> None:
    """Wait (bounded) until a just-started ``proc`` has joined and applied something.

    A restart joins once the killed member's session expires, which takes
    longer on a loaded machine: a fixed sleep could kill it before it did
    anything. Returns at once when everything produced is already applied.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        applied = _applied(client, keys)
        if applied > before or applied >= total:
            return
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"speed exited before applying anything: {err[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"a restarted speed process applied nothing in {timeout_s:.0f} s")


def _values(n: int, seed: int) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=seed, bad_fraction=0.02, stores=50, customers=5000))
    return [v for _, v in gen.batch(n)]


def test_kill_9_at_random_moments_then_restart_is_exact(isolated, produce, redis_client, keys):
    now = now_ms()
    values = _values(40_000, seed=21)
    chunks = [values[i : i + 2000] for i in range(0, len(values), 2000)]
    done = threading.Event()

    def producer() -> None:
        for chunk in chunks:
            produce(chunk)
            time.sleep(2.5)
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    rng = random.Random(3)
    kills = 0
    applied_at_kill = []
    while kills < 5 or not done.is_set():
        before = _applied(redis_client, keys)
        proc = _speed(isolated.env, idle=30)
        # kill only once it has joined and applied something, at a random moment after
        _wait_applied_more(proc, redis_client, keys, before, len(values))
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        applied_at_kill.append(sum(int(v) for v in redis_client.hvals(keys.offsets)))
        assert kills < 15, "producer did not finish"
    t.join()
    final = _speed(isolated.env, idle=4)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()[-2000:]
    assert kills >= 5
    mid_stream = [a for a in applied_at_kill if 0 < a < len(values)]
    assert len(set(mid_stream)) >= 3, f"kills did not land while work was in progress: {applied_at_kill}"
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))
    # Dead letters are at-least-once; deduplicated by source offset they are exact.
    want = sorted((values[i], r) for i, r in oracle_rejects(values, now_ms=now))
    got = sorted((d.value, d.reason) for d in read_dead_letters(isolated.settings.kafka, dedupe=True))
    assert got == want


def test_two_processes_in_one_group_split_and_stay_exact(isolated, produce):
    now = now_ms()
    values = _values(30_000, seed=22)
    first = _speed(isolated.env, idle=6)
    second = _speed(isolated.env, idle=6)
    time.sleep(1.0)
    for i in range(0, len(values), 3000):  # produced while both join and rebalance
        produce(values[i : i + 3000])
        time.sleep(0.3)
    handled = []
    for p in (first, second):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        handled.append(int(re.search(rb"speed: (\d+) messages", err).group(1)))  # type: ignore[union-attr]
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))
    assert all(n > 0 for n in handled), f"one member got no partition: {handled}"
    assert sum(handled) >= len(values)
