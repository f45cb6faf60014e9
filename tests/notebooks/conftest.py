"""The notebooks' world: a private state dir on the session stack, data through both layers.

``notebook_env`` (module scope) prepares what a user has after ``make demo``:

1. a private state dir holding the session stack's ``stack.json`` and
   ``credentials.json`` (same servers), so ``serving.connect()`` in a notebook
   finds this world's daemon through ``<state_dir>/serve.json``, and nothing
   else's;
2. its own topic, DLQ, consumer groups, Redis prefix and S3 bucket
   (``LAMBDA_RT_*`` variables), and its own chDB directory (the daemon's);
3. generated events: a backlog over the past 3 days, recent traffic over the
   last 20 minutes, mixed v1/v2 traffic with campaigns over the last 6 hours
   (``05_campaigns``), and a few planted anomalies for ``04_fraud_signals``
   (a burst of failed payments at one store, refund-heavy stores);
4. the speed layer (in this process, until idle) and the platform daemon
   (``lambda-rt serve --no-schedule``, a subprocess: it ingests), then a
   recompute and a tier move through the daemon.

The daemon keeps running while the module's notebooks execute; the kernels get
``env`` and nothing else (no hard-coded ports in the notebooks).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from lambda_rt.clients.kafka import ensure_topics
from lambda_rt.config import CREDENTIALS_FILE, STACK_FILE, Settings, load_settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_all
from lambda_rt.vocabulary import DAY_MS, MINUTE_MS
from tests.fixtures import stack_env
from tests.notebooks.fixtures import NotebookWorld

FRAUD_STORE = 7
REFUND_STORES = (13, 21)


def _planted(now_ms: int) -> list[tuple[bytes, bytes]]:
    """Anomalies the fraud notebook should find, on top of generated traffic."""
    out: list[tuple[bytes, bytes]] = []
    hour_start = (now_ms - 5 * 3_600_000) // 3_600_000 * 3_600_000
    for i in range(150):  # a spike of failed payments at one store, within one hour
        ev = {
            "event_id": f"fraud-{i}",
            "event_type": "payment",
            "ts": hour_start + 60_000 + i * 1_000,
            "store_id": FRAUD_STORE,
            "customer_id": 90_000 + i % 17,
            "order_id": f"fo-{i}",
            "amount_cents": 4_999,
            "status": "failed",
            "method": "card",
        }
        out.append((str(FRAUD_STORE).encode(), orjson.dumps(ev)))
    for store in REFUND_STORES:  # refund-heavy stores over the past day
        for i in range(120):
            ev = {
                "event_id": f"refund-{store}-{i}",
                "event_type": "refund",
                "ts": now_ms - DAY_MS + i * 600_000,
                "store_id": store,
                "customer_id": 80_000 + i,
                "order_id": f"ro-{store}-{i}",
                "amount_cents": 15_000,
            }
            out.append((str(store).encode(), orjson.dumps(ev)))
    return out


def _wait_ingested(url: str, expected: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        last = httpx.get(f"{url}/status", timeout=10).json().get("ingest", {})
        if int(str(last.get("inserted", 0))) + int(str(last.get("rejected", 0))) >= expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"the daemon's ingest did not catch up within {timeout_s} s: {last}")


@pytest.fixture(scope="module")
def notebook_world(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotebookWorld]:
    """See the module docstring."""
    from speed_layer.pipeline import run_speed

    state = tmp_path_factory.mktemp("nb-state")
    for name in (STACK_FILE, CREDENTIALS_FILE):
        shutil.copy(stack_settings.state_dir / name, state / name)
    tag = f"nb{uuid.uuid4().hex[:8]}"
    env = stack_env(state)
    env.update(
        {
            "LAMBDA_RT_KAFKA__TOPIC": f"events-{tag}",
            "LAMBDA_RT_KAFKA__DLQ_TOPIC": f"events-{tag}.dlq",
            "LAMBDA_RT_REDIS__KEY_PREFIX": tag,
            "LAMBDA_RT_SPEED__GROUP": f"speed-{tag}",
            "LAMBDA_RT_BATCH__INGEST_GROUP": f"ingest-{tag}",
            "LAMBDA_RT_S3__BUCKET": f"lrt-{tag}",
            "LAMBDA_RT_BATCH__HOT_TO_WARM_AFTER_S": "0",
            "LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S": "86400",
            "LAMBDA_RT_DASK__PROCESSES": "false",
            "LAMBDA_RT_DASK__N_WORKERS": "1",
            "LAMBDA_RT_DASK__THREADS_PER_WORKER": "2",
            "MPLBACKEND": "Agg",
        }
    )
    settings = load_settings(
        state_dir=state,
        kafka={"topic": f"events-{tag}", "dlq_topic": f"events-{tag}.dlq"},
        redis={"key_prefix": tag},
        speed={"group": f"speed-{tag}"},
    )
    ensure_topics(settings.kafka)

    now_ms = int(time.time() * 1000)
    small: dict[str, Any] = {"stores": 40, "customers": 20_000, "products": 200, "bad_fraction": 0.01}
    backlog = EventGenerator(
        GeneratorConfig(seed=3, end_ms=now_ms - 20 * MINUTE_MS, span_ms=3 * DAY_MS, **small)
    )
    recent = EventGenerator(GeneratorConfig(seed=4, end_ms=now_ms, span_ms=20 * MINUTE_MS, **small))
    # schema v2 traffic with campaigns for 05_campaigns: the last 6 hours, v1 and v2 mixed
    campaigns = EventGenerator(
        GeneratorConfig(seed=5, end_ms=now_ms, span_ms=360 * MINUTE_MS, schema_version="mixed", **small)
    )
    batches = [
        *backlog.iter_batches(60_000, 20_000),
        *recent.iter_batches(40_000, 20_000),
        *campaigns.iter_batches(30_000, 15_000),
        _planted(now_ms),
    ]
    produced = sum(len(b) for b in batches)
    produce_all(settings.kafka, batches)

    log = open(state / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "serve", "--port", "0", "--no-schedule"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        speed = threading.Thread(
            target=run_speed, args=(settings,), kwargs={"until_idle_s": 4.0, "handle_signals": False}
        )
        speed.start()
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            assert daemon.poll() is None, (state / "serve.log").read_text()
            try:
                url = json.loads((state / "serve.json").read_text())["url"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert url, f"the daemon did not start: {(state / 'serve.log').read_text()}"
        speed.join(120)
        _wait_ingested(url, produced)
        for kind in ("recompute", "tier"):
            r = httpx.post(f"{url}/jobs/{kind}", timeout=300)
            assert r.status_code == 200, r.text
        yield NotebookWorld(env=env, settings=settings, url=url, produced=produced)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)
        log.close()


@pytest.fixture(scope="module")
def notebooks_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "notebooks"
