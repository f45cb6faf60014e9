"""Recompute: closed windows of raw events (all tiers) -> exact batch views -> watermark.

One run, step by step:

1. ``close`` = now - ``allowed_lateness``, floored to the minute: buckets ending
   at or before it are closed.
2. Pick the days to compute: from the watermark's day up to ``close`` (all days
   with data on the first run), plus the days of the late-event ledger; or, for
   a backfill, every day that intersects ``[start, end)``.
3. One Dask task per day (every bucket, distinct counts included, lies in one
   day): the owner exports the day's visible hot/warm rows as Arrow, the task
   adds the day's cold Parquet files and aggregates with chDB
   (:mod:`batch_layer.aggregate`).
4. Each day's result replaces that day in the views atomically (staging table +
   ``REPLACE PARTITION``): re-running a window gives the same rows.
5. Watermark and ledger position are written in one insert, then the watermark
   is published to Redis. A crash before step 5 leaves the old watermark: the
   next run recomputes the same days again (idempotent).

It does not ingest or move tiers; see :mod:`batch_layer.ingest` and
:mod:`batch_layer.tiering`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from batch_layer import pushdown, state, visibility
from batch_layer.aggregate import PartitionResult, aggregate_partition
from batch_layer.migrations import ensure_tables
from batch_layer.runtime import crash_point, dask_client, dataset_lock, job_lock
from batch_layer.staging import replace_day
from batch_layer.views import BATCH_CAMPAIGNS, BATCH_INVENTORY, BATCH_METRICS, WATERMARK_KEY
from lambda_rt.clients.clickhouse import Client
from lambda_rt.clients.s3_worker import register_local_credentials, s3_location
from lambda_rt.config import Settings
from lambda_rt.vocabulary import DAY_MS, MINUTE_MS

__all__ = ["RecomputeReport", "run_recompute"]

log = logging.getLogger(__name__)

# a day is resubmitted after a lost worker at most this many times
MAX_DAY_ATTEMPTS = 3


@dataclass
class RecomputeReport:
    """What a recompute or backfill did (printed by the CLI, stored in job history)."""

    windows: list[date] = field(default_factory=list)
    revised: dict[date, int] = field(default_factory=dict)  # day -> late events that caused it
    rows: dict[str, int] = field(default_factory=dict)  # tier -> rows read
    view_rows: int = 0
    watermark: datetime | None = None
    previous_watermark: datetime | None = None
    close: datetime | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # owner-side phases, seconds

    def summary(self) -> str:
        tiers_txt = ", ".join(f"{k} {v:,}" for k, v in self.rows.items()) or "none"
        revised = ", ".join(f"{d.isoformat()} (+{n})" for d, n in sorted(self.revised.items())) or "none"
        return (
            f"recompute: {len(self.windows)} day windows written ({self.view_rows:,} view rows), "
            f"rows read per tier: {tiers_txt}; revised by late events: {revised}; "
            f"watermark {_iso(self.previous_watermark)} -> {_iso(self.watermark)}; "
            f"{self.seconds:.1f} s"
        )


def _iso(d: datetime | None) -> str:
    return d.isoformat().replace("+00:00", "Z") if d else "none"


def _ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _day_of(ms: int) -> date:
    return _dt(ms // DAY_MS * DAY_MS).date()


def run_recompute(
    settings: Settings,
    client: Client,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
    dask: Any | None = None,
    progress: bool = False,
) -> RecomputeReport:
    """Run one recompute (``start``/``end`` None) or a backfill of ``[start, end)``.

    Args:
        settings: the settings tree (``batch.allowed_lateness_s``, ``dask``, ``s3``).
        client: a ClickHouse client on the engine that holds the master dataset.
        start, end: backfill range (timezone-aware); days are computed whole.
        now: the clock (tests); default the wall clock.
        dask: an existing ``distributed.Client``; default: :func:`dask_client`.
        progress: show a rich progress bar.
    """
    with job_lock("recompute"), dataset_lock():
        t0 = time.monotonic()
        ensure_tables(client)
        now_ms = _ms(now or datetime.now(UTC))
        close_ms = (now_ms - settings.batch.allowed_lateness_s * 1000) // MINUTE_MS * MINUTE_MS
        snap = visibility.snapshot(client)
        wm_ms = state.read_state(client, WATERMARK_KEY)
        # a clock behind the watermark (skew, a longer lateness setting) must not recompute the
        # watermark's day only partly: buckets up to the watermark are already served as final
        close_ms = max(close_ms, wm_ms or 0)
        report = RecomputeReport(close=_dt(close_ms))
        report.previous_watermark = _dt(wm_ms) if wm_ms is not None else None
        ledger, ledger_upto = state.read_ledger(client, now_ms)
        data_days = sorted(set(visibility.engine_days(client, snap, 0, close_ms)) | set(snap.cold_days()))
        data_days = [d for d in data_days if visibility.day_start_ms(d) < close_ms]

        if start is not None or end is not None:
            lo = _ms(start) if start else 0
            hi = min(_ms(end), close_ms) if end else close_ms
            days = [
                d
                for d in data_days
                if visibility.day_start_ms(d) + DAY_MS > lo and visibility.day_start_ms(d) < hi
            ]
            first_open = (wm_ms // DAY_MS * DAY_MS) if wm_ms is not None else None
            covers = hi >= close_ms and (
                (first_open is not None and lo <= first_open)
                or (first_open is None and (not data_days or lo <= visibility.day_start_ms(data_days[0])))
            )
        else:
            first_open = wm_ms // DAY_MS * DAY_MS if wm_ms is not None else 0
            days = [d for d in data_days if visibility.day_start_ms(d) >= first_open]
            days = sorted(set(days) | {w.day for w in ledger if visibility.day_start_ms(w.day) < close_ms})
            covers = True
        for w in ledger:
            if wm_ms is not None and w.min_ts_ms < wm_ms and w.day in days:
                report.revised[w.day] = w.events

        report.rows = _rows_per_tier(client, snap, days, close_ms)
        report.timings["plan"] = time.monotonic() - t0
        if days:
            if dask is not None:
                _compute(settings, client, snap, days, close_ms, dask, report, progress)
            else:
                with dask_client(settings, quiet=not progress) as dc:
                    _compute(settings, client, snap, days, close_ms, dc, report, progress)
        crash_point(settings, "recompute:views")
        new_wm = max(wm_ms or 0, close_ms) if covers else wm_ms
        updates: dict[str, int] = {}
        if new_wm is not None and new_wm != wm_ms:
            updates[WATERMARK_KEY] = new_wm
        if ledger_upto is not None and (start is None and end is None):
            updates[state.LEDGER_KEY] = ledger_upto
        if updates:
            state.write_state(client, updates)
        if new_wm is not None:
            state.publish_watermark(settings, new_wm)
            report.watermark = _dt(new_wm)
        report.seconds = time.monotonic() - t0
        return report


def _rows_per_tier(
    client: Client, snap: visibility.TierSnapshot, days: list[date], close_ms: int
) -> dict[str, int]:
    out: dict[str, int] = {"hot": 0, "warm": 0, "cold": 0}
    for d in days:
        out["cold"] += snap.cold_rows.get(d, 0)
        s, e = visibility.day_window(d, close_ms)
        rows = client.query(visibility.tier_count_sql(snap, s, e)).result_rows
        for tier, n in rows:
            out[tier] += int(n)
    return out


def _compute(
    settings: Settings,
    client: Client,
    snap: visibility.TierSnapshot,
    days: list[date],
    close_ms: int,
    dc: Any,
    report: RecomputeReport,
    progress: bool,
) -> None:
    from distributed import as_completed

    workers = list(dc.scheduler_info().get("workers", {}))
    mode = settings.batch.recompute_mode
    if mode == "auto":
        mode = "pushdown" if workers and all(w.startswith("inproc://") for w in workers) else "export"
    report.timings["mode_" + mode] = 0.0
    if mode == "pushdown":
        pushdown.compute(settings, client, snap, days, close_ms, dc, report, _bar(progress, len(days)))
        return
    location = s3_location(settings.s3)  # no secret: workers log in with their own keys
    register_local_credentials(settings.s3)  # ... and workers that are threads of this process, with ours
    in_flight = max(2, 2 * len(dc.scheduler_info().get("workers", {})) or 2)
    pending = list(days)
    attempts: dict[date, int] = {}
    day_of: dict[str, date] = {}
    ac = as_completed()

    def submit(day: date) -> None:
        s, e = visibility.day_window(day, close_ms)
        t = time.monotonic()
        rows = visibility.export_engine_rows(client, snap, s, e)
        _add(report, "export", t)
        cold = list(snap.cold_files.get(day, []))
        # scatter, not embed: large Arrow tables in the task graph slow the scheduler
        data = _scatter(dc, rows) if rows.num_rows else None
        fut = dc.submit(aggregate_partition, data, cold, location, s, e, close_ms, pure=False)
        day_of[fut.key] = day
        ac.add(fut)

    with _bar(progress, len(days)) as advance:
        for _ in range(min(in_flight, len(pending))):
            submit(pending.pop(0))
        waited = time.monotonic()
        for fut in ac:
            day = day_of.pop(fut.key)
            try:
                result: PartitionResult = fut.result()
            except Exception as exc:
                # A worker died: Dask reruns tasks it can, but a day whose scattered rows
                # lived on that worker is lost. The day is exported and submitted again;
                # writing a day replaces it, so a rerun never double counts.
                attempts[day] = attempts.get(day, 0) + 1
                if attempts[day] > MAX_DAY_ATTEMPTS:
                    raise
                log.warning("recompute of %s failed on the cluster (%r); retrying", day, exc)
                submit(day)
                waited = time.monotonic()
                continue
            _add(report, "wait", waited)
            t = time.monotonic()
            report.view_rows += write_day(client, result)
            _add(report, "write", t)
            report.windows.append(_day_of(result.start_ms))
            advance()
            if pending:
                submit(pending.pop(0))
            waited = time.monotonic()
    report.windows.sort()


def _scatter(dc: Any, rows: Any) -> Any:
    """Scatter one day's rows; retried when the chosen worker died under us.

    The scheduler may still list a worker killed a moment ago: scattering to it
    fails with a closed connection until the scheduler has removed it.
    """
    for attempt in range(1, MAX_DAY_ATTEMPTS + 1):
        try:
            return dc.scatter(rows, hash=False)
        except OSError as exc:  # distributed's CommClosedError is an OSError
            if attempt == MAX_DAY_ATTEMPTS:
                raise
            log.warning("scatter failed (%r); retrying", exc)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def _add(report: RecomputeReport, phase: str, since: float) -> None:
    report.timings[phase] = report.timings.get(phase, 0.0) + time.monotonic() - since


def write_day(client: Client, result: PartitionResult) -> int:
    """Replace one day of both views with ``result`` (atomic per table)."""
    day = _day_of(result.start_ms).isoformat()
    written = 0
    tables = [(BATCH_METRICS, result.metrics), (BATCH_INVENTORY, result.inventory)]
    if result.campaigns is not None:
        tables.append((BATCH_CAMPAIGNS, result.campaigns))
    for table, data in tables:

        def fill(staging: str, data: pa.Table = data) -> int:
            if data.num_rows:
                client.insert_arrow(staging, data)
            return int(data.num_rows)

        written += replace_day(client, table, day, fill)
    return written


class _bar:
    """A rich progress bar over days, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._enabled = enabled
        self._total = total
        self._progress: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self._enabled:
            return lambda: None
        from rich.progress import Progress

        self._progress = Progress(transient=False)
        self._progress.start()
        task = self._progress.add_task("recompute (days)", total=self._total)
        return lambda: self._progress.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
