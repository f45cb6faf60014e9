"""Topology fixtures: a real external Dask cluster (scheduler + 2 worker processes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_rt.config import Settings
from lambda_rt.dask_processes import ExternalDask, start_external_dask


def worker_env(state_dir: Path) -> dict[str, str]:
    """A worker's own configuration: the stack's state dir, nothing passed from the client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_RT_", "AWS_"))}
    env["LAMBDA_RT_STATE_DIR"] = str(state_dir)
    return env


@pytest.fixture(scope="module")
def external_dask(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExternalDask]:
    """``dask scheduler`` + two ``dask worker`` processes on loopback, from this venv."""
    cluster = start_external_dask(tmp_path_factory.mktemp("dask"), worker_env(stack_settings.state_dir))
    try:
        yield cluster
    finally:
        cluster.close()
