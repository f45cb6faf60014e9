"""Batch-layer fixtures: a chDB client per test (Dask: ``dask_threads`` in ``tests/conftest.py``).

Helpers (events, the oracle comparison, subprocess runs) live in
``tests.batch_layer.fixtures``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batch_layer.migrations import ensure_tables
from lambda_rt.clients.clickhouse import Client, open_clickhouse


@pytest.fixture
def ch(isolated: Any) -> Iterator[Client]:
    """A client on this process's chDB engine, in the isolated test's database."""
    client = open_clickhouse(isolated.settings)
    ensure_tables(client)
    try:
        yield client
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{isolated.settings.clickhouse.database}`")
