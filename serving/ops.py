"""Status and batch jobs, run by whichever process owns the ClickHouse engine.

The daemon serves these at ``GET /status`` and ``POST /jobs/{kind}``; the
in-process client calls them directly when no daemon runs. Jobs are the batch
layer's own functions (``batch_layer.recompute.run_recompute``,
``batch_layer.tiering.run_tier``); this module only dispatches and reports.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings
from serving.errors import InvalidQueryError
from serving.spec import format_ts, parse_time

__all__ = ["JOB_KINDS", "run_job", "status_of"]

JOB_KINDS = ("recompute", "tier", "all")


def _opt_time(value: str | datetime | None, name: str) -> datetime | None:
    return parse_time(value, name) if value is not None else None


def run_job(
    settings: Settings,
    client: Client,
    kind: str,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    dask: Any | None = None,
) -> dict[str, Any]:
    """Run one batch job now, in this process; returns a JSON-able summary.

    Raises:
        InvalidQueryError: unknown kind or bad time.
        JobRunningError: the same job is already running (the daemon answers 409).
    """
    if kind not in JOB_KINDS:
        raise InvalidQueryError(f"unknown job {kind!r}: use recompute, tier or all")
    s, e = _opt_time(start, "start"), _opt_time(end, "end")
    if s is not None and e is not None and e <= s:
        raise InvalidQueryError("end is not after start")
    out: dict[str, Any] = {"job": kind, "summaries": []}
    t0 = time.monotonic()
    if kind in ("recompute", "all"):
        from batch_layer.jobs import RecomputeJob

        rep = RecomputeJob(start=s, end=e).run(settings, client, dask=dask)
        out["summaries"].append(rep.summary())
        out["watermark"] = rep.watermark.isoformat().replace("+00:00", "Z") if rep.watermark else None
    if kind in ("tier", "all"):
        from batch_layer.jobs import TierJob

        out["summaries"].append(TierJob().run(settings, client).summary())
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def _rows(client: Client, sql: str) -> list[tuple[Any, ...]]:
    try:
        return [tuple(r) for r in client.query(sql).result_rows]
    except Exception:  # a table that does not exist yet: report nothing
        return []


def status_of(client: Client, engine_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Watermark, tier sizes and recent job history (``GET /status``)."""
    from batch_layer.views import read_watermark

    try:
        wm = read_watermark(client)
    except Exception:
        wm = None
    now_ms = int(time.time() * 1000)
    tiers = {
        str(t): {"rows": int(r), "bytes": int(b)}
        for t, r, b in _rows(
            client,
            "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts "
            "WHERE database = currentDatabase() AND active "
            "AND table IN ('events_hot', 'events_warm', 'batch_metrics', 'batch_inventory') "
            "GROUP BY table ORDER BY table",
        )
    }
    cold = _rows(
        client,
        "SELECT count(), sum(rows) FROM (SELECT day, argMax(rows, version) AS rows, "
        "argMax(state, version) AS state FROM tier_moves WHERE dst = 'cold' GROUP BY move_id, day) "
        "WHERE state = 'done'",
    )
    if cold:
        tiers["cold"] = {"days": int(cold[0][0]), "rows": int(cold[0][1] or 0)}
    jobs = [
        {
            "run_id": r[0],
            "job": r[1],
            "status": r[2],
            "started_at": r[3].isoformat() if r[3] else None,
            "ended_at": r[4].isoformat() if r[4] else None,
            "rows": int(r[5]),
            "error": r[6],
        }
        for r in _rows(
            client,
            "SELECT run_id, job, argMax(status, version), argMax(started_at, version), "
            "argMax(ended_at, version), argMax(rows, version), argMax(error, version) "
            "FROM job_history GROUP BY run_id, job ORDER BY 4 DESC LIMIT 20",
        )
    ]
    wm_ms = int(wm.timestamp() * 1000) if wm else None
    return {
        "watermark": format_ts(wm_ms) if wm_ms is not None else None,
        "batch_lag_s": round((now_ms - wm_ms) / 1000, 1) if wm_ms is not None else None,
        "tiers": tiers,
        "jobs": jobs,
        "cache": engine_stats or {},
    }
