"""A real Dask cluster of processes on this machine: ``dask scheduler`` + ``dask worker``s.

For tests and benchmarks of the distributed path (``dask.scheduler`` pointing
at a separate scheduler): started from the project's venv on loopback with a
scheduler file, as an operator would run it. Production clusters are started
by their own tooling (Kubernetes, dask-jobqueue); this module is not that.
Workers run without a nanny so that ``kill -9`` of a worker's pid removes that
worker for good (with a nanny it would be restarted and hide the failure).
The caller's ``env`` is the workers' own configuration (e.g. the stack's state
dir in ``LAMBDA_RT_STATE_DIR``, from which they read S3 credentials).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambda_rt.errors import LambdaRTError

__all__ = ["ExternalDask", "start_external_dask"]


def _dask_cli() -> str:
    path = Path(sys.executable).with_name("dask")
    if not path.is_file():
        raise LambdaRTError(f"{path} not found: install the project into its venv (make install)")
    return str(path)


@dataclass
class ExternalDask:
    """A running scheduler and its worker processes, plus a client on them."""

    scheduler_file: Path
    log_dir: Path
    env: dict[str, str]
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    client: Any = None

    def add_worker(self) -> subprocess.Popen[bytes]:
        i = len(self.workers)
        with open(self.log_dir / f"worker-{i}.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    _dask_cli(),
                    "worker",
                    "--scheduler-file",
                    str(self.scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(proc)
        return proc

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid, as the workers report it."""
        return dict(self.client.run(os.getpid))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_external_dask(root: Path, env: dict[str, str], n_workers: int = 2) -> ExternalDask:
    """Start a scheduler and ``n_workers`` worker processes under ``root``; wait for all."""
    from distributed import Client

    root.mkdir(parents=True, exist_ok=True)
    sched_file = root / "scheduler.json"
    with open(root / "scheduler.log", "ab") as log:
        scheduler = subprocess.Popen(
            [
                _dask_cli(),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    cluster = ExternalDask(sched_file, root, env, scheduler)
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise LambdaRTError(f"dask scheduler did not start; see {root / 'scheduler.log'}")
            time.sleep(0.1)
        for _ in range(n_workers):
            cluster.add_worker()
        cluster.client = Client(scheduler_file=str(sched_file), timeout=30)
        cluster.client.wait_for_workers(n_workers, timeout=90)
    except BaseException:
        cluster.close()
        raise
    return cluster
