"""Batch jobs as validated objects: one ``kind`` each, run once or on a schedule.

:func:`jobs_for` is the one place a job name (``recompute``, ``tier``, ``all``:
:data:`lambda_rt.vocabulary.RUNNABLE_JOBS`) becomes job objects; the command
line, the daemon and the schedule all go through it.

Every run is recorded in ``job_history`` (job, window, start, end, rows,
status, error): a ``running`` row when it starts, the final row when it ends
(ReplacingMergeTree keeps the latest). A failure is recorded and re-raised.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from batch_layer.recompute import RecomputeReport, run_recompute
from batch_layer.state import JobRecord, record_job
from batch_layer.tiering import TierReport, run_tier
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings
from lambda_rt.vocabulary import ALL_JOBS, JOB_KINDS, RUNNABLE_JOBS

__all__ = ["BatchJob", "RecomputeJob", "TierJob", "jobs_for", "run_all"]


class _Job(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    uses_dask: ClassVar[bool] = False
    """Whether ``run`` uses a Dask client (a caller keeps one for jobs that do)."""


class RecomputeJob(_Job):
    """Recompute closed windows, or backfill ``[start, end)`` when given."""

    kind: Literal["recompute"] = "recompute"
    uses_dask: ClassVar[bool] = True
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> RecomputeJob:
        for v in (self.start, self.end):
            if v is not None and v.tzinfo is None:
                raise ValueError("start/end must be timezone-aware")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def run(
        self, settings: Settings, client: Client, *, dask: Any | None = None, progress: bool = False
    ) -> RecomputeReport:
        rec = record_job(client, JobRecord(self.kind, self.start, self.end))
        try:
            report = run_recompute(
                settings, client, start=self.start, end=self.end, dask=dask, progress=progress
            )
        except BaseException as exc:
            _finish(client, rec, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        rec.window_start = rec.window_start or report.previous_watermark
        rec.window_end = rec.window_end or report.close
        _finish(client, rec, "ok", rows=sum(report.rows.values()))
        return report


class TierJob(_Job):
    """Move days that are old enough to the next tier (and finish interrupted moves)."""

    kind: Literal["tier"] = "tier"

    def run(
        self, settings: Settings, client: Client, *, dask: Any | None = None, progress: bool = False
    ) -> TierReport:
        """Run once; ``dask`` is accepted for a uniform call and not used (moves run in chDB)."""
        rec = record_job(client, JobRecord(self.kind))
        try:
            report = run_tier(settings, client, progress=progress)
        except BaseException as exc:
            _finish(client, rec, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        _finish(client, rec, "ok", rows=sum(m.rows for m in report.moves))
        return report


def _finish(client: Client, rec: JobRecord, status: str, *, rows: int = 0, error: str = "") -> None:
    rec.status, rec.rows, rec.error, rec.ended_at = status, rows, error, datetime.now(UTC)
    try:
        record_job(client, rec)
    except Exception:
        if status == "ok":
            raise


BatchJob = RecomputeJob | TierJob


def jobs_for(kind: str, start: datetime | None = None, end: datetime | None = None) -> list[BatchJob]:
    """The jobs ``kind`` names, in run order (``all``: a recompute, then a tier move).

    ``start``/``end`` bound the recompute (a backfill); a tier move takes no range.

    Raises:
        ValueError: ``kind`` is not one of ``RUNNABLE_JOBS``.
    """
    if kind not in RUNNABLE_JOBS:
        raise ValueError(f"unknown job {kind!r}: use {', '.join(RUNNABLE_JOBS)}")
    kinds = JOB_KINDS if kind == ALL_JOBS else (kind,)
    return [RecomputeJob(start=start, end=end) if k == "recompute" else TierJob() for k in kinds]


def run_all(
    settings: Settings, client: Client, *, dask: Any | None = None, progress: bool = False
) -> tuple[RecomputeReport, TierReport]:
    """Run every job once, recompute first (for cron / a Kubernetes CronJob)."""
    recompute = RecomputeJob().run(settings, client, dask=dask, progress=progress)
    tier = TierJob().run(settings, client, progress=progress)
    return recompute, tier
