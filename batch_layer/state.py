"""Small state tables: the batch watermark, the late-event ledger, job history.

The watermark lives in ``batch_state`` (source of truth, see
:mod:`batch_layer.views`) and is copied to Redis after each advance. The
ledger (``late_events``) is written by ingest for events whose window may
already be computed and consumed by recompute through ``ledger_through`` (the
largest ``recorded_ms`` handled), written in the same insert as the watermark.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa

from batch_layer.tables import BATCH_STATE, JOB_HISTORY, LATE_EVENTS
from batch_layer.views import redis_watermark_key
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings
from lambda_rt.vocabulary import DAY_MS

__all__ = [
    "LEDGER_KEY",
    "JobRecord",
    "LateWindow",
    "publish_watermark",
    "read_ledger",
    "read_state",
    "record_job",
    "record_late",
    "write_state",
]

LEDGER_KEY = "ledger_through"
LEDGER_SETTLE_MS = 2_000  # ledger rows younger than this are left for the next run


def read_state(client: Client, key: str) -> int | None:
    rows = client.query(
        f"SELECT argMax(value, version) FROM {BATCH_STATE} WHERE key = %(k)s HAVING count() > 0",
        parameters={"k": key},
    ).result_rows
    return int(rows[0][0]) if rows else None


def write_state(client: Client, values: dict[str, int]) -> None:
    """Write several keys in one insert (one block: all or nothing)."""
    version = time.time_ns()
    client.insert(
        BATCH_STATE,
        [[k, int(v), version] for k, v in values.items()],
        column_names=["key", "value", "version"],
    )


def publish_watermark(settings: Settings, watermark_ms: int) -> bool:
    """Copy the watermark to Redis; False (logged by the caller) if Redis is down."""
    from lambda_rt.clients.redis import make_redis

    try:
        r = make_redis(settings.redis)
        key = redis_watermark_key(settings.redis.key_prefix)
        # Never move the published copy backwards (a slow run racing a newer one).
        r.eval(
            "local c = tonumber(redis.call('GET', KEYS[1]) or '-1') "
            "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end return 1",
            1,
            key,
            str(watermark_ms),
        )
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class LateWindow:
    """Late events recorded for one day since the last recompute."""

    day: date
    events: int
    min_ts_ms: int


def record_late(client: Client, ts_ms: pa.Array | list[int], now_ms: int) -> int:
    """Ingest side: ledger the events of ``ts_ms`` grouped by day; returns how many."""
    import numpy as np

    arr = np.asarray(ts_ms, dtype=np.int64)
    if arr.size == 0:
        return 0
    days = arr // DAY_MS
    rows = []
    for d in np.unique(days):
        sel = arr[days == d]
        rows.append(
            [
                datetime.fromtimestamp(int(d) * DAY_MS // 1000, tz=UTC).date(),
                int(sel.size),
                datetime.fromtimestamp(int(sel.min()) / 1000, tz=UTC),
                datetime.fromtimestamp(int(sel.max()) / 1000, tz=UTC),
                now_ms,
            ]
        )
    client.insert(LATE_EVENTS, rows, column_names=["day", "events", "min_ts", "max_ts", "recorded_ms"])
    return int(arr.size)


def read_ledger(client: Client, now_ms: int) -> tuple[list[LateWindow], int | None]:
    """Pending late windows and the ``recorded_ms`` bound to store once handled."""
    since = read_state(client, LEDGER_KEY) or 0
    upto = now_ms - LEDGER_SETTLE_MS
    rows = client.query(
        f"SELECT day, sum(events), toUnixTimestamp64Milli(min(min_ts)), max(recorded_ms) "
        f"FROM {LATE_EVENTS} WHERE recorded_ms > %(a)s AND recorded_ms <= %(b)s GROUP BY day ORDER BY day",
        parameters={"a": since, "b": upto},
    ).result_rows
    if not rows:
        return [], None
    return [LateWindow(r[0], int(r[1]), int(r[2])) for r in rows], max(int(r[3]) for r in rows)


@dataclass
class JobRecord:
    """One row of ``job_history`` (written at start as ``running``, then final)."""

    job: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int = 0
    status: str = "running"
    error: str = ""
    run_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None


def record_job(client: Client, rec: JobRecord) -> JobRecord:
    """Insert the current state of ``rec`` (ReplacingMergeTree keeps the latest)."""
    if not rec.run_id:
        rec.run_id = uuid.uuid4().hex[:16]
    if rec.started_at is None:
        rec.started_at = datetime.now(UTC)
    client.insert(
        JOB_HISTORY,
        [
            [
                rec.run_id,
                rec.job,
                rec.window_start,
                rec.window_end,
                rec.started_at,
                rec.ended_at,
                rec.rows,
                rec.status,
                rec.error[:2000],
                time.time_ns(),
            ]
        ],
        column_names=[
            "run_id",
            "job",
            "window_start",
            "window_end",
            "started_at",
            "ended_at",
            "rows",
            "status",
            "error",
            "version",
        ],
    )
    return rec
