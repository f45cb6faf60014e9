"""The platform's status: watermark, tier sizes, recent job history (``GET /status``).

Read by whichever process owns the ClickHouse engine: the daemon serves it at
``GET /status``, the in-process client calls it directly. It only reads (the
batch layer's tables by their names in :mod:`batch_layer.tables` and
:mod:`batch_layer.views`); running batch jobs is the daemon's
(:mod:`lambda_rt.daemon.jobs`).
"""

from __future__ import annotations

import time
from typing import Any

from batch_layer.tables import EVENTS_HOT, EVENTS_WARM, JOB_HISTORY, TIER_MOVES
from batch_layer.views import BATCH_INVENTORY, BATCH_METRICS, read_watermark
from lambda_rt.clients.clickhouse import Client
from serving.spec import format_ts

__all__ = ["status_of"]

_SIZED_TABLES = (EVENTS_HOT, EVENTS_WARM, BATCH_METRICS, BATCH_INVENTORY)


def _rows(client: Client, sql: str) -> list[tuple[Any, ...]]:
    try:
        return [tuple(r) for r in client.query(sql).result_rows]
    except Exception:  # a table that does not exist yet: report nothing
        return []


def status_of(client: Client, engine_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Watermark, tier sizes and recent job history (``GET /status``)."""
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
            f"AND table IN ({', '.join(repr(t) for t in _SIZED_TABLES)}) "
            "GROUP BY table ORDER BY table",
        )
    }
    cold = _rows(
        client,
        "SELECT count(), sum(rows) FROM (SELECT day, argMax(rows, version) AS rows, "
        f"argMax(state, version) AS state FROM {TIER_MOVES} WHERE dst = 'cold' GROUP BY move_id, day) "
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
            f"FROM {JOB_HISTORY} GROUP BY run_id, job ORDER BY 4 DESC LIMIT 20",
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
