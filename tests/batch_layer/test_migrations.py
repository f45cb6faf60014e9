"""The schema v2 migration: crash-safe at every step (kill -9 style exits), idempotent, recorded.

Each run is a subprocess on its own chDB directory (``isolated.env``): the
dataset starts in the v1 shape with rows in it, the migration is killed right
after each of its statements in turn (``os._exit``, no cleanup: what ``kill
-9`` leaves), and after each crash the tables must still take writes of the
old shape and hold every row. A last clean run completes and records it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batch_layer.migrations import MIGRATIONS, SCHEMA_MIGRATIONS, MigrationError, migrate
from batch_layer.tables import EVENT_TABLES, EVENTS_HOT, V2_EVENT_COLUMNS
from lambda_rt.clients.clickhouse import Client

PROBE = str(Path(__file__).with_name("migration_probe.py"))
ROOT = Path(__file__).resolve().parents[2]
V2 = [c[0] for c in V2_EVENT_COLUMNS]


def _run(env: dict[str, str], args: list[str], crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**env, "LAMBDA_RT_BATCH__CRASH_AFTER": crash} if crash else env
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _probe(env: dict[str, str], *args: str) -> Any:
    proc = _run(env, [PROBE, *args])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_crash_after_any_step_leaves_usable_tables_and_a_rerun_finishes(isolated: Any) -> None:
    env = isolated.env
    _probe(env, "seed", "500")
    migration = MIGRATIONS[0]
    steps = [*map(str, range(len(migration.statements))), "recorded"]
    expected = 500
    for k, step in enumerate(steps):
        proc = _run(env, ["-m", "batch_layer.migrations"], crash=f"migrate:{migration.id}:{step}")
        assert proc.returncode == 137, (step, proc.stderr[-2000:])
        if k % 5 and step != "recorded":
            continue  # probing costs a process start: every 5th step, and the last
        state = _probe(env, "check")
        assert state["rows_before"] == expected  # nothing lost
        expected += 1  # the probe's own v1-shaped write went in
        assert state["distinct_after"] == expected
        done = {c for table, _ in EVENT_TABLES for c in V2 if c in state["columns"][table]}
        assert done <= set(V2)
        assert (migration.id in state["applied"]) == (step == "recorded")
    proc = _run(env, ["-m", "batch_layer.migrations"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "none pending" in proc.stdout  # recorded before the last crash
    state = _probe(env, "check")
    assert state["rows_before"] == expected
    for table, _ in EVENT_TABLES:
        assert state["columns"][table][-len(V2) :] == V2
    assert state["applied"] == {migration.id: migration.checksum}


def test_a_fresh_run_migrates_once_and_records_it(isolated: Any) -> None:
    env = isolated.env
    _probe(env, "seed", "10")
    first = _run(env, ["-m", "batch_layer.migrations"])
    assert first.returncode == 0 and MIGRATIONS[0].id in first.stdout, first.stderr[-2000:]
    again = _run(env, ["-m", "batch_layer.migrations"])
    assert again.returncode == 0 and "none pending" in again.stdout


def test_an_edited_migration_or_a_mistyped_column_is_refused(ch: Client) -> None:
    migration = MIGRATIONS[0]
    assert migrate(ch) == []  # the fixture's ensure_tables migrated already
    ch.command(f"INSERT INTO {SCHEMA_MIGRATIONS} VALUES ('{migration.id}', 42, now64(3) + 1)")
    with pytest.raises(MigrationError, match="was edited"):
        migrate(ch)
    ch.command(f"TRUNCATE TABLE {SCHEMA_MIGRATIONS}")
    ch.command(f"ALTER TABLE {EVENTS_HOT} MODIFY COLUMN `ip` Int64")
    with pytest.raises(MigrationError, match=r"events_hot\.ip is Int64, expected String"):
        migrate(ch)
