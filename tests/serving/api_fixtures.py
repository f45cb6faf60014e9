"""A running ``lambda-rt serve`` (HTTP, GraphQL, gRPC) on its own data, for the API tests.

:func:`start_api_daemon` starts the daemon as a subprocess with its own chDB
directory, a bearer token and a free gRPC port, puts generated events through
both layers (the speed layer in this process, the ingest in the daemon), runs
a recompute so answers span both views, and hands out what the tests need.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd

from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import Settings
from lambda_rt.testing import oracle_frame
from lambda_rt.vocabulary import HOUR_MS
from serving.client import daemon_file
from serving.spec import format_ts
from tests.fixtures import stack_env
from tests.serving.fixtures import generate, produce, slice_settings, wait_for_hot_rows

TOKEN = "api-test-token"


@dataclass
class ApiDaemon:
    settings: Settings
    env: dict[str, str]
    proc: subprocess.Popen[str]
    url: str
    grpc_target: str
    pairs: list[tuple[bytes, bytes]]
    now_ms: int
    http: httpx.Client
    start: str
    end: str
    _oracle: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def oracle(self) -> pd.DataFrame:
        if self._oracle is None:
            self._oracle = oracle_frame([v for _, v in self.pairs], now_ms=self.now_ms)
        return self._oracle

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        self.http.close()
        return int(self.proc.returncode)


def _env(stack: Settings, settings: Settings, chdb_dir: Path) -> dict[str, str]:
    env = stack_env(stack.state_dir)
    env.update(
        {
            "LAMBDA_RT_KAFKA__TOPIC": settings.kafka.topic,
            "LAMBDA_RT_KAFKA__DLQ_TOPIC": settings.kafka.dlq_topic,
            "LAMBDA_RT_REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "LAMBDA_RT_SPEED__GROUP": settings.speed.group,
            "LAMBDA_RT_BATCH__INGEST_GROUP": settings.batch.ingest_group,
            "LAMBDA_RT_CLICKHOUSE__DATABASE": settings.clickhouse.database,
            "LAMBDA_RT_CLICKHOUSE__DSN": f"chdb://{chdb_dir}",
            "LAMBDA_RT_S3__BUCKET": settings.s3.bucket,
            "LAMBDA_RT_DASK__PROCESSES": "false",
            "LAMBDA_RT_BATCH__ALLOWED_LATENESS_S": "3600",
            "LAMBDA_RT_SERVE__TOKEN": TOKEN,
        }
    )
    return env


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout_s} s")


def run_speed_once(settings: Settings, idle_s: float = 5.0) -> threading.Thread:
    """The speed layer in this process until idle, in a thread (returned started)."""
    from speed_layer.pipeline import run_speed

    t = threading.Thread(
        target=run_speed, args=(settings,), kwargs={"until_idle_s": idle_s, "handle_signals": False}
    )
    t.start()
    return t


def start_api_daemon(stack: Settings, chdb: Settings, tmp: Path, n: int = 6_000) -> ApiDaemon:
    """Start the daemon, fill both layers with ``n`` events over 3 h, recompute."""
    tag = f"a{uuid.uuid4().hex[:10]}"
    settings = slice_settings(stack, chdb, tag)
    ensure_topics(settings.kafka)
    env = _env(stack, settings, tmp / "clickhouse")
    now_ms = int(time.time() * 1000)
    pairs = generate(n, now_ms - 60_000, 3 * HOUR_MS, seed=5)
    path = daemon_file(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "serve", "--port", "0", "--grpc-port", "0", "--no-schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    info = _wait_file(path, proc)
    http = httpx.Client(base_url=str(info["url"]), timeout=300, headers={"Authorization": f"Bearer {TOKEN}"})
    d = ApiDaemon(
        settings,
        env,
        proc,
        str(info["url"]),
        str(info["grpc"]),
        pairs,
        now_ms,
        http,
        format_ts(now_ms - 4 * HOUR_MS),
        format_ts(now_ms + HOUR_MS),
    )
    try:
        produce(settings, pairs)
        speed = run_speed_once(settings)
        wait_for_hot_rows(http, len(pairs))
        speed.join()
        job = http.post("/jobs/recompute").json()
        assert job["watermark"], job
    except BaseException:
        d.stop()
        raise
    return d
