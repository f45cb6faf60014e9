"""CLI contract of the batch commands, job objects, history and the schedule."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_layer.jobs import RecomputeJob, TierJob, run_all
from batch_layer.runtime import job_lock
from batch_layer.schedule import BatchScheduler
from batch_layer.tables import JOB_HISTORY
from lambda_rt.clients.clickhouse import Client
from lambda_rt.errors import JobRunningError
from tests.batch_layer.fixtures import insert_events, make_events


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambda_rt", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_arguments_are_one_line_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from lambda_rt.cli.errors import run_cli
    from lambda_rt.cli.main import app

    command = typer.main.get_command(app)
    for args in (
        ["batch", "run", "recompute", "--start", "yesterday"],
        ["batch", "run", "recompute", "--start", "2026-11-02T00:00:00Z", "--end", "2026-11-01T00:00:00Z"],
        ["batch", "run", "tier", "--start", "2026-11-01"],
        ["batch", "run", "everything"],
        ["ingest", "--until-idle", "0"],
    ):
        assert run_cli(command, args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_engine_locked_by_another_process_is_a_clear_error(isolated: Any, ch: Client) -> None:
    env = dict(isolated.env)
    env["LAMBDA_RT_CLICKHOUSE__DSN"] = isolated.settings.clickhouse_dsn  # held by this test process
    proc = _cli(env, "batch", "run", "recompute")
    assert proc.returncode == 1, proc.stderr
    assert "in use by another process" in proc.stderr and "Traceback" not in proc.stderr


def test_jobs_record_history_and_refuse_overlap(ch: Client, isolated: Any, dask_threads: Any) -> None:
    insert_events(ch, make_events(5_000, seed=9))
    recompute, tier = run_all(isolated.settings, ch, dask=dask_threads)
    assert recompute.windows and isinstance(tier.moves, list)
    rows = ch.query(f"SELECT job, status, rows FROM {JOB_HISTORY} FINAL ORDER BY job").result_rows
    assert [(r[0], r[1]) for r in rows] == [("recompute", "ok"), ("tier", "ok")]
    assert rows[0][2] == 5_000
    with job_lock("tier"), pytest.raises(JobRunningError):
        TierJob().run(isolated.settings, ch)
    failed = ch.query(f"SELECT status, error FROM {JOB_HISTORY} FINAL WHERE status = 'failed'").result_rows
    assert failed and "already running" in failed[0][1]
    with pytest.raises(ValueError):
        RecomputeJob(start=datetime(2026, 1, 2, tzinfo=UTC), end=datetime(2026, 1, 1, tzinfo=UTC))


def test_schedule_runs_jobs_without_overlap_until_stopped(
    ch: Client, isolated: Any, dask_threads: Any
) -> None:
    sched = BatchScheduler(isolated.settings, ch, dask=dask_threads)
    built = sched.build()
    jobs = {j.id: j for j in built.get_jobs()} if built.running else None
    assert jobs is None  # not started by build()
    stop = threading.Event()
    runner = threading.Thread(target=sched.run, args=(stop,))
    runner.start()
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while (sched.runs["recompute"] < 1 or sched.runs["tier"] < 1) and datetime.now(UTC) < deadline:
        stop.wait(0.2)
    stop.set()
    runner.join(timeout=60)
    assert (
        sched.runs["recompute"] >= 1
        and sched.runs["tier"] >= 1
        and sched.errors == {"recompute": 0, "tier": 0}
    )
    for job in built.get_jobs():
        assert job.max_instances == 1 and job.coalesce
