"""Batch jobs on request: ``POST /jobs/{kind}`` in the daemon, ``run_job`` in a client.

The process that owns the ClickHouse engine runs them: the daemon for its HTTP
route, an in-process :class:`serving.LocalClient` given this function as its
job runner (``serving.connect(jobs=run_job)``). The jobs themselves are the
batch layer's (:func:`batch_layer.jobs.jobs_for`); this module checks the
request, runs them in order and reports. It lives at the top of the import
graph because it joins serving (request parsing) and the batch layer's runtime.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from batch_layer.jobs import jobs_for
from batch_layer.recompute import RecomputeReport
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings
from lambda_rt.vocabulary import RUNNABLE_JOBS
from serving.errors import InvalidQueryError
from serving.spec import parse_time

__all__ = ["run_job"]


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
    if kind not in RUNNABLE_JOBS:
        raise InvalidQueryError(
            f"unknown job {kind!r}: use {', '.join(RUNNABLE_JOBS[:-1])} or {RUNNABLE_JOBS[-1]}"
        )
    s, e = _opt_time(start, "start"), _opt_time(end, "end")
    if s is not None and e is not None and e <= s:
        raise InvalidQueryError("end is not after start")
    out: dict[str, Any] = {"job": kind, "summaries": []}
    t0 = time.monotonic()
    for job in jobs_for(kind, s, e):
        report = job.run(settings, client, dask=dask)
        out["summaries"].append(report.summary())
        if isinstance(report, RecomputeReport):
            wm = report.watermark
            out["watermark"] = wm.isoformat().replace("+00:00", "Z") if wm else None
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out
