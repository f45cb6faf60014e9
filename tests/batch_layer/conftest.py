"""Batch-layer fixtures: one in-process Dask cluster per module, a chDB client per test.

Helpers (events, the oracle comparison, subprocess runs) live in ``batch_helpers``.
Dask runs with ``processes=False`` (worker threads in this process: starts in
about a second, and recompute then pushes partitions down to this process's
chDB engine - the default embedded mode; the export path is tested too).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batch_layer.tables import ensure_tables
from lambda_rt.clients.clickhouse import Client, open_clickhouse

# Test modules import ``batch_helpers`` by name (a unique basename: no package
# ``tests.batch_layer``, which would shadow the real ``batch_layer`` package).
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def dask_threads() -> Iterator[Any]:
    """One in-process LocalCluster (2 worker threads) per test module."""
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        DaskClient(cluster) as client,
    ):
        yield client


@pytest.fixture
def ch(isolated: Any) -> Iterator[Client]:
    """A client on this process's chDB engine, in the isolated test's database."""
    client = open_clickhouse(isolated.settings)
    ensure_tables(client)
    try:
        yield client
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{isolated.settings.clickhouse.database}`")
