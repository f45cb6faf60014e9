"""Serving fixtures (helpers in ``tests/serving/fixtures.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lambda_rt.config import Settings
from lambda_rt.vocabulary import HOUR_MS
from tests.serving.fixtures import World, make_world


@pytest.fixture(scope="module")
def world(stack_settings: Settings, chdb_settings: Settings, dask_threads: Any) -> Iterator[World]:
    """20,000 events over the last 6 hours, through both layers (no recompute yet)."""
    w = make_world(stack_settings, chdb_settings, dask_threads, 20_000, 6 * HOUR_MS)
    try:
        yield w
    finally:
        w.client.command(f"DROP DATABASE IF EXISTS `{w.settings.clickhouse.database}`")
