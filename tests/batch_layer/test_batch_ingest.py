"""Ingest against the real broker and chDB: valid rows in events_hot, rejects in the DLQ,
late events in the ledger, and a replay after a hard kill inserts nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from batch_layer.ingest import Ingestor
from batch_layer.tables import EVENTS_HOT, LATE_EVENTS
from lambda_rt.clients.clickhouse import Client
from lambda_rt.dlq import read_dead_letters
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.validate import validate_batch
from lambda_rt.producing import produce_all
from tests.batch_layer.fixtures import run_child


def _produce(settings: Any, n: int, *, seed: int, bad: float, span_ms: int) -> tuple[list[bytes], int]:
    gen = EventGenerator(GeneratorConfig(seed=seed, span_ms=span_ms, bad_fraction=bad, stores=30))
    pairs = gen.batch(n)
    produce_all(settings.kafka, [pairs])
    values = [v for _, v in pairs]
    vb = validate_batch(values, now_ms=int(time.time() * 1000))
    return values, vb.n_valid


def test_ingest_valid_events_to_hot_rejects_to_dlq_and_late_to_ledger(ch: Client, isolated: Any) -> None:
    values, n_valid = _produce(isolated.settings, 12_000, seed=1, bad=0.05, span_ms=30 * 60_000)
    report = Ingestor(isolated.settings, ch).run(until_idle_s=3.0)
    assert report.consumed == len(values)
    assert report.inserted == n_valid and report.rejected == len(values) - n_valid
    rows, _ids = ch.query(f"SELECT count(), uniqExact(event_id) FROM {EVENTS_HOT}").result_rows[0]
    assert rows == n_valid
    dlq = read_dead_letters(isolated.settings.kafka, idle_s=1.5)
    assert len(dlq) == len(values) - n_valid
    assert all(d.reason and d.source_topic == isolated.settings.kafka.topic for d in dlq)
    # events older than now - 10 min may belong to computed windows: ledgered
    late = ch.query(f"SELECT sum(events) FROM {LATE_EVENTS}").result_rows[0][0]
    assert 0 < late == report.late < n_valid
    # a second run finds everything committed
    again = Ingestor(isolated.settings, ch).run(until_idle_s=2.0)
    assert again.consumed == 0


def _ingest(env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "ingest", "--until-idle", "3"],
        env={**env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_replay_after_kill_inserts_nothing_twice(isolated: Any) -> None:
    _values, n_valid = _produce(isolated.settings, 30_000, seed=2, bad=0.01, span_ms=5 * 60_000)
    env = isolated.env
    # 1. die right after inserting, before committing (the dangerous window)
    first = _ingest(
        env, LAMBDA_RT_BATCH__CRASH_AFTER="ingest:inserted", LAMBDA_RT_BATCH__INGEST_BATCH_SIZE="4000"
    )
    _, err = first.communicate(timeout=120)
    assert first.returncode == 137, err[-2000:]
    crashed = run_child(env, "ingest-counts")
    assert 0 < crashed["rows"] < n_valid  # inserted but never committed: must not count twice
    # 2. a real kill -9 somewhere in the middle of a run with small batches
    second = _ingest(env, LAMBDA_RT_BATCH__INGEST_BATCH_SIZE="500")
    time.sleep(6.0)
    os.kill(second.pid, signal.SIGKILL)
    second.communicate(timeout=30)
    # 3. run to the end
    third = _ingest(env)
    _out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err[-2000:]
    got = run_child(env, "ingest-counts")
    assert got == {"rows": n_valid, "messages": n_valid, "ids": n_valid}, got
