"""Redis losing state under a running speed layer: the view ends exact anyway.

Two ways Redis loses what the process believes is applied, each simulated on
the test's own key prefix while ``lambda-rt speed`` runs as a subprocess:

* the last second of an AOF ``everysec`` (Redis kill -9): Redis goes back to
  an earlier consistent state, so its next offsets are behind what the
  process consumed (a gap); simulated by restoring a DUMP snapshot;
* every key deleted (flush, failover to an empty replica): the epoch is gone
  and the view must be rebuilt from the start of the topic.

Every additive metric must then equal the oracle over everything produced.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import redis

from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from speed_layer.keys import META_EPOCH_STARTED, META_REBUILDING, SpeedKeys
from tests.speed_layer.fixtures import assert_metrics_equal, now_ms, oracle_view, view_metrics


def _values(n: int, seed: int) -> list[bytes]:
    gen = EventGenerator(GeneratorConfig(seed=seed, bad_fraction=0.02, stores=30, customers=3000))
    return [v for _, v in gen.batch(n)]


def _speed(env: dict[str, str], idle: float) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "lambda_rt", "speed", "--until-idle", str(idle)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait(
    check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"speed exited early waiting for {what}: {err[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _applied(client: redis.Redis, keys: SpeedKeys) -> int:
    return sum(int(v) for v in client.hvals(keys.offsets))


def _snapshot(client: redis.Redis, prefix: str) -> dict[bytes, tuple[bytes, int]]:
    out: dict[bytes, tuple[bytes, int]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        data = client.dump(key)
        if data is not None:
            out[key] = (data, max(0, int(client.pttl(key))))
    return out


def _restore(client: redis.Redis, prefix: str, snap: dict[bytes, tuple[bytes, int]]) -> None:
    """Put the prefix back exactly as it was at ``snap`` (what an AOF truncation does)."""
    pipe = client.pipeline(transaction=True)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        if key not in snap:
            pipe.delete(key)
    for key, (data, ttl) in snap.items():
        pipe.restore(key, ttl, data, replace=True)
    pipe.execute()


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]


def test_lost_last_second_is_reapplied_not_skipped(isolated, produce, redis_client, keys):
    """Redis' offsets rewound under a running process: a gap, re-read from Redis' offset."""
    now = now_ms()
    values = _values(9000, seed=31)
    a, b, c = values[:3000], values[3000:6000], values[6000:]
    prefix = isolated.settings.redis.key_prefix
    proc = _speed(isolated.env, idle=15)
    try:
        produce(a)
        _wait(lambda: _applied(redis_client, keys) >= len(a), "the first part to apply", proc)
        snap = _snapshot(redis_client, prefix)
        produce(b)
        _wait(lambda: _applied(redis_client, keys) >= len(a) + len(b), "the second part to apply", proc)
        _restore(redis_client, prefix, snap)  # the second part's writes are lost
        assert _applied(redis_client, keys) == len(a)
        produce(c)
        _wait(lambda: _applied(redis_client, keys) >= len(values), "everything to apply", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
    _finish(proc)
    assert _applied(redis_client, keys) == len(values)
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))


def test_state_deleted_under_a_running_process_is_rebuilt_exactly(isolated, produce, redis_client, keys):
    """Every key deleted while running: the epoch is recreated and the view replayed from offset 0."""
    now = now_ms()
    values = _values(8000, seed=32)
    a, b = values[:5000], values[5000:]
    prefix = isolated.settings.redis.key_prefix
    proc = _speed(isolated.env, idle=15)
    try:
        produce(a)
        _wait(lambda: _applied(redis_client, keys) >= len(a), "the first part to apply", proc)
        _wait(lambda: redis_client.hget(keys.meta, META_REBUILDING) == b"0", "the first build", proc)
        first_epoch = redis_client.get(keys.epoch)
        assert first_epoch is not None
        assert redis_client.hget(keys.meta, META_EPOCH_STARTED) == first_epoch
        for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000):
            redis_client.delete(key)
        produce(b)
        _wait(lambda: _applied(redis_client, keys) >= len(values), "the rebuild to catch up", proc)
        _wait(lambda: redis_client.hget(keys.meta, META_REBUILDING) == b"0", "rebuilding=0", proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
    _finish(proc)
    epoch = redis_client.get(keys.epoch)
    assert epoch is not None and epoch != first_epoch
    assert redis_client.ttl(keys.epoch) == -1
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))
    assert_metrics_equal(view_metrics(isolated.settings, "h"), oracle_view(values, now, "hour"))
