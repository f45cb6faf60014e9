"""Batch-layer test helpers and fixtures: generated events in ClickHouse, the oracle, subprocesses.

The oracle is ``lambda_rt.testing.oracle_metrics`` (plain pandas, written
independently of the batch layer), restricted to complete buckets.
Dask is the ``dask_threads`` fixture of ``tests/conftest.py`` (worker threads
in this process; the aggregation code then reuses this process's chDB engine,
see ``batch_layer.aggregate``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batch_layer.ingest import to_hot_table
from batch_layer.migrations import ensure_tables
from batch_layer.tables import EVENTS_HOT
from batch_layer.views import METRIC_COLUMNS, read_batch_view
from lambda_rt.clients.clickhouse import Client
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.validate import validate_batch
from lambda_rt.testing import oracle_metrics
from lambda_rt.vocabulary import GRANULARITY_MS

END = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
END_MS = int(END.timestamp() * 1000)
DIMS: tuple[tuple[str, ...], ...] = ((), ("store_id",), ("event_type",), ("store_id", "event_type"))


def make_events(
    n: int, *, seed: int = 7, end_ms: int = END_MS, span_ms: int = 2 * 86_400_000
) -> pd.DataFrame:
    """``n`` generated events, validated, as a pandas frame (EVENT_SCHEMA columns)."""
    gen = EventGenerator(
        GeneratorConfig(seed=seed, end_ms=end_ms, span_ms=span_ms, stores=40, customers=5_000)
    )
    values = [v for _, v in gen.batch(n)]
    vb = validate_batch(values, now_ms=end_ms)
    assert vb.n_valid == n
    return vb.table.to_pandas()


def insert_events(client: Client, events: pd.DataFrame, first_offset: int = 0) -> None:
    """Insert events into ``events_hot`` as ingest would (partition 0, fake offsets)."""
    import pyarrow as pa

    from lambda_rt.events.schema import EVENT_SCHEMA

    ensure_tables(client)
    table = pa.Table.from_pandas(events, schema=EVENT_SCHEMA, preserve_index=False)
    offsets = np.arange(first_offset, first_offset + len(events), dtype=np.int64)
    client.insert_arrow(EVENTS_HOT, to_hot_table(table, np.zeros(len(events), dtype=np.int64), offsets))


def oracle(events: pd.DataFrame, close_ms: int) -> dict[tuple[str, tuple[str, ...], str], pd.DataFrame]:
    """Every metric x dims x granularity from ``lambda_rt.testing``, complete buckets only."""
    out: dict[tuple[str, tuple[str, ...], str], pd.DataFrame] = {}
    for gran, width in GRANULARITY_MS.items():
        for dims in DIMS:
            for metric in METRIC_COLUMNS:
                frame = oracle_metrics(events, metric, dims, gran)
                end = frame["bucket"].dt.as_unit("ms").astype("int64") + width
                out[(metric, dims, gran)] = frame[end <= close_ms].reset_index(drop=True)
    return out


def assert_views_equal_oracle(client: Client, events: pd.DataFrame, close_ms: int) -> int:
    """Compare every metric/dims/granularity of the batch view with the oracle; returns #checks."""
    expected = oracle(events, close_ms)
    lo, hi = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    checks = 0
    for (metric, dims, gran), exp in expected.items():
        got = read_batch_view(client, metric, dims, lo, hi, gran)
        assert len(got) == len(exp), f"{metric} by {dims} per {gran}: {len(got)} rows, oracle {len(exp)}"
        for col in exp.columns:
            cast = "int64" if col not in ("bucket", "event_type") else "object"
            left = got[col].astype(cast).to_numpy() if col != "bucket" else got[col].to_numpy()
            right = exp[col].astype(cast).to_numpy() if col != "bucket" else exp[col].to_numpy()
            assert (left == right).all(), f"{metric} by {dims} per {gran}: {col} differs"
        checks += 1
    return checks


REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD_CHECKS = "tests.batch_layer.child_checks"


def child_command(*args: str) -> list[str]:
    """The command line of ``python -m tests.batch_layer.child_checks *args`` (run from REPO_ROOT)."""
    return [sys.executable, "-m", CHILD_CHECKS, *args]


def run_child(env: dict[str, str], *args: str, timeout: float = 120) -> Any:
    """Run a :mod:`tests.batch_layer.child_checks` command bound to ``env``; its last JSON line."""
    proc = subprocess.run(
        child_command(*args),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}): {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
