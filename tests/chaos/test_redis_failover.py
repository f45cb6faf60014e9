"""Redis failover mid-stream: the primary is killed with SIGKILL three times.

A private stack with ``stack.redis_ha`` (primary, replica, three Sentinels),
one ``lambda-rt speed`` process and a producer running the whole time. Each
cycle kills whichever node is primary, measures how long a client write
(through Sentinel, with the client's own retries) is unavailable, restarts the
dead node (``up``: it rejoins as a replica) and waits until it is in sync.
At the end, the merged answers (speed view only, then batch + speed) must
equal the oracle: nothing lost, nothing counted twice, even though a promoted
replica may lack the old primary's last writes (the speed layer replays those
from Kafka, guarded by the offsets stored with the counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.stack import free_stack_ports, launcher
from serving.spec import format_ts
from speed_layer.keys import SpeedKeys
from tests.chaos.harness import (
    applied_total,
    batch_catch_up,
    check_served,
    chunked,
    generate,
    kill9,
    produce_in_background,
    record_check,
    size,
    wait_until,
)

KILLS = 3
TARGET_UNAVAILABLE_S = 5.0


@contextmanager
def ha_stack(state_dir: Path) -> Iterator[Settings]:
    """A private stack with Redis failover on, every port free and of its own."""
    ports = free_stack_ports(extra=4)
    extra = [ports.pop(f"extra_{i}") for i in range(4)]
    with launcher.running_stack(
        state_dir,
        **ports,
        redis_ha=True,
        redis_replica_port=extra[0],
        sentinel_ports=tuple(extra[1:]),
        broker_storage="memory",
    ) as settings:
        yield settings


def _ha(settings: Settings) -> dict[str, Any]:
    return launcher.status(settings)["redis_ha"]  # type: ignore[no-any-return]


def _primary_node(settings: Settings) -> dict[str, Any]:
    nodes = [n for n in _ha(settings)["nodes"] if n["role"] == "primary"]
    assert len(nodes) == 1, nodes
    return nodes[0]


def _in_sync(settings: Settings) -> bool:
    ha = _ha(settings)
    roles = sorted(str(n["role"]) for n in ha["nodes"])
    replica = [n for n in ha["nodes"] if n["role"] == "replica"]
    agreed = ha["primary"] is not None and all(s["primary"] == ha["primary"] for s in ha["sentinels"])
    return roles == ["primary", "replica"] and replica[0].get("link") == "up" and agreed


def _fail_over(settings: Settings, key: str) -> tuple[float, int]:
    """Kill -9 the primary; time a client write until it succeeds (the client retries).

    Also returns how many applied messages the promoted replica lacks (the old
    primary's offsets just before the kill minus the new primary's just after):
    those the speed layer must replay from Kafka without counting anything twice.
    """
    node = _primary_node(settings)
    offsets = SpeedKeys(settings.redis.key_prefix).offsets
    client = make_redis(settings.redis)
    try:
        client.set(key, "before")
        before = sum(int(v) for v in client.hvals(offsets))
        t0 = time.monotonic()
        os.kill(int(node["pid"]), 9)
        client.set(key, "after")
        unavailable = time.monotonic() - t0
        after = sum(int(v) for v in client.hvals(offsets))
        return unavailable, max(0, before - after)
    finally:
        client.close()


def _speed(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``lambda-rt speed`` with its log in a file (a pipe nobody reads could block it)."""
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "lambda_rt", "speed"], env=env, stdout=fh, stderr=subprocess.STDOUT
        )


def test_primary_killed_three_times_mid_stream_nothing_lost_or_doubled(
    tmp_path: Path, chdb_settings: Settings
) -> None:
    with ha_stack(tmp_path / "stack") as ps:
        cli = subprocess.run(
            [sys.executable, "-m", "lambda_rt", "status", "--json"],
            env={"LAMBDA_RT_STATE_DIR": str(ps.state_dir), "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        status = json.loads(cli.stdout)
        assert status["redis"]["up"] and len(status["redis"]["sentinels"]) == 3
        ha = status["redis_ha"]
        assert [s["up"] for s in ha["sentinels"]] == [True] * 3 and all(s["pid"] for s in ha["sentinels"])
        assert sorted(n["role"] for n in ha["nodes"]) == ["primary", "replica"]
        assert ps.redis.password is not None and ps.redis.password.get_secret_value() not in cli.stdout
        tag = f"f{uuid.uuid4().hex[:8]}"
        settings = ps.model_copy(
            update={
                "clickhouse": ps.clickhouse.model_copy(
                    update={"dsn": chdb_settings.clickhouse_dsn, "database": tag}
                ),
                "dask": ps.dask.model_copy(update={"processes": False}),
                "s3": ps.s3.model_copy(update={"bucket": f"lrt-{tag}"}),
            }
        )
        ensure_topics(settings.kafka)
        env = {"LAMBDA_RT_STATE_DIR": str(ps.state_dir), "PATH": os.environ["PATH"]}
        now = int(time.time() * 1000)
        values = generate(size(40_000, 200_000), seed=171, end_ms=now - 30_000)
        log = tmp_path / "speed.log"
        speed = _speed(env, log)
        unavailable: list[float] = []
        mid_stream: list[bool] = []
        lacked: list[int] = []
        speed_restarts = 0
        # about a minute of traffic: three failovers (each ~15 s with the resync) fit in it
        prod = produce_in_background(settings, chunked(values, max(1, len(values) // 140)), 0.4)
        try:
            for _ in range(KILLS):
                floor = applied_total(settings)
                wait_until(
                    lambda f=floor: applied_total(settings) > f, 60, f"the speed layer to apply ({log})"
                )  # type: ignore[misc]
                mid_stream.append(prod.is_alive())
                seconds, missing = _fail_over(settings, f"{tag}:probe")
                unavailable.append(seconds)
                lacked.append(missing)
                launcher.up(ps)  # the killed node comes back with its AOF, as a replica
                wait_until(lambda: _in_sync(settings), 60, "the old primary to rejoin as a replica")
                if speed.poll() is not None:
                    speed_restarts += 1
                    speed = _speed(env, log)
            prod.join(300)
            t0 = time.monotonic()
            wait_until(lambda: applied_total(settings) >= len(values), 180, "the speed layer to catch up")
            catch_up_s = time.monotonic() - t0
        finally:
            kill9(speed) if speed.poll() is None else None
        window = {"start": format_ts(now - 15 * 60_000), "end": format_ts(now + 600_000)}
        speed_only = check_served(settings, values, now, **window)
        merged = check_served(batch_catch_up(settings, now), values, now, **window)
        record_check(
            "redis_failover",
            speed_only,
            primary_kills=KILLS,
            kills_mid_stream=sum(mid_stream),
            write_unavailable_s=[round(u, 2) for u in unavailable],
            write_unavailable_s_max=round(max(unavailable), 2),
            speed_process_restarts=speed_restarts,
            applied_messages_missing_on_promoted_replica=lacked,
            catch_up_s=round(catch_up_s, 1),
            merged_exact_after_batch=merged.exact,
        )
        assert all(mid_stream), mid_stream
        assert speed_only.exact, speed_only
        assert merged.exact, merged
        assert max(unavailable) <= TARGET_UNAVAILABLE_S, unavailable
