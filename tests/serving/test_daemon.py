"""The platform daemon: HTTP answers equal the oracle and the in-process engine.

``lambda-rt serve`` runs as a subprocess with its own chDB directory and hosts
the batch ingest; the speed layer runs in this process. The same questions
are then asked over HTTP, through the CLI while the daemon runs (it goes
through HTTP), and through the CLI after the daemon stopped (in-process on the
daemon's data directory): all must agree, and agree with the oracle.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

import serving
from lambda_rt.testing import oracle_frame, oracle_metrics
from lambda_rt.vocabulary import HOUR_MS, METRICS
from serving.client import daemon_file
from serving.spec import format_ts
from tests.serving.fixtures import generate, produce, wait_for_hot_rows


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "query", *args, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _strip(doc: dict[str, object]) -> dict[str, object]:
    cov = dict(doc["coverage"])  # type: ignore[arg-type]
    cov.pop("cached")
    cov.pop("speed")
    return {**doc, "coverage": cov}


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if path.exists():
            return json.loads(path.read_text())  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"{path} not written in {timeout_s} s")


def test_daemon_http_equals_oracle_and_in_process(isolated) -> None:  # type: ignore[no-untyped-def]
    from speed_layer.pipeline import run_speed

    now_ms = int(time.time() * 1000)
    pairs = generate(6_000, now_ms - 60_000, 3 * HOUR_MS, seed=3)
    env = dict(isolated.env)
    env.update({"LAMBDA_RT_DASK__PROCESSES": "false", "LAMBDA_RT_BATCH__ALLOWED_LATENESS_S": "3600"})
    path = daemon_file(isolated.settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "serve", "--port", "0", "--no-schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = _wait_file(path, proc)
        url = str(info["url"])
        assert url.startswith("http://127.0.0.1:")
        produce(isolated.settings, pairs)
        speed = threading.Thread(
            target=run_speed, args=(isolated.settings,), kwargs={"until_idle_s": 5.0, "handle_signals": False}
        )
        speed.start()
        http = httpx.Client(base_url=url, timeout=300)
        wait_for_hot_rows(http, len(pairs))
        speed.join()
        job = http.post("/jobs/recompute").json()
        assert job["watermark"], job
        status = http.get("/status").json()
        assert status["watermark"] and status["jobs"][0]["job"] == "recompute"

        # OpenAPI: served, and identical to the checked-in document
        served = http.get("/openapi.json").json()
        checked_in = json.loads((Path(serving.__file__).parent / "openapi.json").read_text())
        assert served == checked_in, "run: python -m serving.app > serving/openapi.json"

        frame = oracle_frame([v for _, v in pairs], now_ms=now_ms)
        start, end = format_ts(now_ms - 4 * HOUR_MS), format_ts(now_ms + HOUR_MS)
        client = serving.connect(isolated.settings)
        assert isinstance(client, serving.HttpClient)
        answers: dict[str, dict[str, object]] = {}
        for metric in METRICS:
            by = "store_id,product_id" if metric == "inventory_delta" else "store_id"
            doc = http.get("/query", params={"metric": metric, "by": by, "start": start, "end": end}).json()
            answers[metric] = doc
            cov = doc["coverage"]
            assert [r["layer"] for r in cov["ranges"]] in (["batch", "speed"], ["speed"]), cov
            assert cov["batch_through"] == job["watermark"].replace(".000", "")
            assert not cov["holes"]
            got = client.query(metric, by, start, end)
            exp = oracle_metrics(frame, metric, tuple(by.split(",")), "hour")
            merged = got.merge(exp, on=["bucket", *by.split(",")], how="outer", indicator=True)
            assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
            diff = (merged["value_x"] - merged["value_y"]).abs()
            limit = (merged["value_y"] * 0.02).clip(lower=1) if metric == "unique_customers" else 0
            assert (diff <= limit).all(), merged[diff > limit].head()
        client.close()
        # the CLI finds the daemon and goes through HTTP: same answer
        assert _strip(_cli(env, "revenue", "--by", "store_id", "--start", start, "--end", end)) == _strip(
            answers["revenue"]
        )
        text = http.get("/metrics").text
        assert "lambda_rt_serving_cache_hits_total" in text and "lambda_rt_serving_cache_misses_total" in text
        bad = http.get("/query", params={"metric": "nope"})
        assert bad.status_code == 422 and "unknown metric" in bad.json()["detail"]
        http.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    assert not path.exists(), "serve.json must be removed at a clean stop"
    # no daemon now: the CLI opens the daemon's chDB directory in-process
    for metric in ("revenue", "unique_customers"):
        local = _cli(env, metric, "--by", "store_id", "--start", start, "--end", end)
        assert _strip(local) == _strip(answers[metric])


@pytest.mark.parametrize(
    "args",
    [
        ["nope"],
        ["events", "--by", "product_id"],
        ["events", "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z"],
        ["events", "--start", "yesterday"],
        ["events", "--granularity", "week"],
        ["events", "--format", "xml"],
    ],
)
def test_query_bad_input_is_one_line_exit_2(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "query", *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "error" in out.stderr


def test_openapi_lists_every_route() -> None:
    doc = serving.app.openapi_document() if hasattr(serving, "app") else None
    from serving.app import openapi_document

    doc = openapi_document()
    assert {"/query", "/status", "/jobs/{kind}", "/metrics", "/healthz"} <= set(doc["paths"])
    params = {p["name"] for p in doc["paths"]["/query"]["get"]["parameters"]}
    assert params == {"metric", "by", "start", "end", "granularity", "strict", "format"}
    _ = pd  # pandas is used through the client's frames
