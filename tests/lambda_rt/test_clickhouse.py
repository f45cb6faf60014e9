"""The real ClickHouse engine (chDB) through clickhouse-connect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from lambda_rt.clients.clickhouse import Client, open_clickhouse
from lambda_rt.config import Settings, load_settings
from lambda_rt.errors import EngineLockedError


def test_arrow_round_trip(clickhouse: Client) -> None:
    clickhouse.command(
        "CREATE TABLE t (id Int64, store_id Int64, amount Int64) ENGINE = MergeTree ORDER BY id"
    )
    table = pa.table(
        {"id": list(range(1000)), "store_id": [i % 7 for i in range(1000)], "amount": list(range(1000))}
    )
    clickhouse.insert_arrow("t", table)
    got = clickhouse.query_arrow(
        "SELECT store_id, sum(amount) AS s FROM t GROUP BY store_id ORDER BY store_id"
    )
    expected = {s: sum(a for a in range(1000) if a % 7 == s) for s in range(7)}
    assert dict(zip(got["store_id"].to_pylist(), got["s"].to_pylist(), strict=True)) == expected


def test_databases_isolate_tests(clickhouse: Client, chdb_settings: Settings) -> None:
    clickhouse.command("CREATE TABLE iso (x Int8) ENGINE = Memory")
    other = open_clickhouse(chdb_settings, database="other_db_for_isolation")
    try:
        tables = [r[0] for r in other.query("SHOW TABLES").result_rows]
        assert "iso" not in tables
    finally:
        other.command("DROP DATABASE IF EXISTS other_db_for_isolation")


_CHILD = [sys.executable, "-m", "tests.lambda_rt.chdb_child"]
_REPO_ROOT = Path(__file__).resolve().parents[2]


def test_data_survives_reopening_in_a_new_process(tmp_path: Path) -> None:
    write = subprocess.run([*_CHILD, str(tmp_path), "write"], cwd=_REPO_ROOT, capture_output=True, text=True)
    assert write.returncode == 0, write.stderr
    read = subprocess.run([*_CHILD, str(tmp_path), "read"], cwd=_REPO_ROOT, capture_output=True, text=True)
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == f"({123}, {sum(range(123))})"


def test_second_data_dir_in_one_process_is_a_clear_error(clickhouse: Client, tmp_path: Path) -> None:
    import pytest

    with pytest.raises(EngineLockedError, match="one process per data directory"):
        open_clickhouse(load_settings(state_dir=tmp_path / "another"))
