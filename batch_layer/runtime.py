"""Process-level helpers of batch jobs: the Dask client, the crash hook, job locks.

- :func:`dask_client`: a LocalCluster (``settings.dask``) or the configured
  scheduler; logs the dashboard link when it starts a cluster.
- :func:`crash_point`: the test hook of every multi-step job; when
  ``settings.batch.crash_after`` names the step just finished, the process exits
  at once with ``os._exit`` (no cleanup, like ``kill -9``).
- :func:`job_lock`: one run of a job at a time per process (threads of the
  daemon, the scheduler) - overlapping runs are refused, not queued.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lambda_rt.config import Settings
from lambda_rt.errors import JobRunningError

__all__ = ["crash_point", "dask_client", "dataset_lock", "job_lock"]

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 137


def crash_point(settings: Settings, step: str) -> None:
    """Exit hard right now if the crash hook names ``step`` (tests only)."""
    if settings.batch.crash_after == step:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)


@contextmanager
def dask_client(settings: Settings, *, quiet: bool = False) -> Iterator[object]:
    """A ``distributed.Client`` for the configured scheduler or a new LocalCluster.

    ``dask.scheduler`` is an address (``tcp://host:port``) or the path of a
    scheduler file (``dask scheduler --scheduler-file``). Remote workers take S3
    credentials from their own configuration; LocalCluster worker processes get this
    process's keys in the nanny's environment, which stays on this machine and
    never passes through the scheduler.
    """
    from distributed import Client, LocalCluster

    if settings.dask.scheduler:
        target = settings.dask.scheduler
        if "://" not in target and Path(target).is_file():
            with Client(scheduler_file=target) as client:
                yield client
            return
        with Client(target) as client:
            yield client
        return
    extra: dict[str, Any] = {}
    if settings.dask.processes:
        extra["env"] = _worker_env(settings)
    cluster = LocalCluster(
        n_workers=settings.dask.n_workers,
        threads_per_worker=settings.dask.threads_per_worker,
        processes=settings.dask.processes,
        dashboard_address=settings.dask.dashboard_address,
        # in-process workers serve /metrics too: same interface as the dashboard
        worker_dashboard_address=settings.dask.dashboard_address.rpartition(":")[0] + ":0",
        **extra,
    )
    try:
        with Client(cluster) as client:
            if not quiet:
                log.info("dask dashboard: %s", _dashboard_link(settings, client))
            yield client
    finally:
        cluster.close()


def _worker_env(settings: Settings) -> dict[str, str]:
    """S3 keys for LocalCluster worker processes, as their own environment."""
    s3 = settings.s3
    env = {"LAMBDA_RT_S3__ENDPOINT": s3.endpoint, "LAMBDA_RT_S3__REGION": s3.region}
    if s3.access_key is not None and s3.secret_key is not None:
        env["LAMBDA_RT_S3__ACCESS_KEY"] = s3.access_key.get_secret_value()
        env["LAMBDA_RT_S3__SECRET_KEY"] = s3.secret_key.get_secret_value()
    return env


def _dashboard_link(settings: Settings, client: Any) -> str:
    """The dashboard's URL on the interface it listens on.

    ``client.dashboard_link`` names the machine's external address, which is
    dead when the dashboard listens on 127.0.0.1 (the default).
    """
    port = client.scheduler_info().get("services", {}).get("dashboard")
    if port is None:
        return "none (bokeh is not installed)"
    host = settings.dask.dashboard_address.rpartition(":")[0] or "127.0.0.1"
    return f"http://{host}:{port}/status"


_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


@contextmanager
def job_lock(job: str) -> Iterator[None]:
    """Hold the in-process lock of ``job``; raise if a run already holds it."""
    with _GUARD:
        lock = _LOCKS.setdefault(job, threading.Lock())
    if not lock.acquire(blocking=False):
        raise JobRunningError(f"job {job} is already running in this process; skipped", job=job)
    try:
        yield
    finally:
        lock.release()


_DATASET = threading.Lock()


@contextmanager
def dataset_lock() -> Iterator[None]:
    """Serialise recompute and tier runs in this process (a move changes what readers see)."""
    with _DATASET:
        yield
