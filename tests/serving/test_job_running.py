"""A job refused because the same job runs crosses HTTP as its own type, and the demo retries on it.

The daemon's real backend and app serve over a real socket (uvicorn in a
thread, on the session's chDB); the test holds the batch layer's own job lock,
as a scheduled run would, so the daemon's ``run_job`` meets a running job.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from rich.console import Console

from batch_layer.runtime import job_lock
from lambda_rt.daemon import Daemon
from lambda_rt.demo.run import _run_job
from lambda_rt.errors import JobRunningError
from serving.app import create_app
from serving.client import HttpClient
from serving.errors import InvalidQueryError


@pytest.fixture
def daemon_url(isolated: Any) -> Iterator[str]:
    """The daemon's HTTP API (no ingest, no schedule) on a free loopback port."""
    daemon = Daemon(isolated.settings, ingest=False, schedule=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(
        uvicorn.Config(create_app(daemon), log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the HTTP server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        daemon.shutdown()
        daemon.engine.clickhouse.command(f"DROP DATABASE IF EXISTS `{isolated.settings.clickhouse.database}`")


def test_a_running_job_is_409_and_the_client_raises_job_running_error(daemon_url: str) -> None:
    with HttpClient(daemon_url) as client:
        with job_lock("tier"), pytest.raises(JobRunningError) as info:
            client.run_job("tier")
        assert info.value.job == "tier"
        assert "already running" in str(info.value)
        cause = info.value.__cause__
        assert isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 409
        out = client.run_job("tier")  # the lock is free again: the same call runs
        assert out["job"] == "tier" and out["summaries"]


def test_demo_retries_a_running_job_and_nothing_else(daemon_url: str) -> None:
    console = Console(quiet=True)
    with HttpClient(daemon_url) as client:
        held = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with job_lock("tier"):
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(10)
        threading.Timer(1.0, release.set).start()
        t0 = time.monotonic()
        out = _run_job(client, "tier", console, "dashboard")
        holder.join(10)
        assert out["job"] == "tier"
        assert time.monotonic() - t0 >= 1.0  # the first attempt met the running job
        t0 = time.monotonic()
        with pytest.raises(InvalidQueryError):
            _run_job(client, "no-such-job", console, "dashboard")
        assert time.monotonic() - t0 < 4.0, "an error other than JobRunningError was retried"
