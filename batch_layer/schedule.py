"""The batch schedule: APScheduler 3.x running recompute and tier jobs in threads.

Triggers come from ``settings.batch``: recompute every ``recompute_every_s``
seconds (interval), tiering on ``tier_cron`` (crontab, UTC). Each job has
``max_instances=1`` (no overlapping runs of the same job), ``coalesce=True``
and a ``misfire_grace_time`` (a run missed while the process was busy or down
runs once, late, rather than being dropped or repeated). Runs are recorded in
``job_history`` by :mod:`batch_layer.jobs`.

:class:`BatchScheduler` is hostable by the platform daemon: ``run(stop)``
blocks until the ``stop`` event is set. One Dask client is kept for the
scheduler's lifetime (a LocalCluster takes seconds to start).
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from typing import Any

from batch_layer.jobs import jobs_for
from batch_layer.runtime import dask_client
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings
from lambda_rt.errors import JobRunningError
from lambda_rt.vocabulary import JOB_KINDS

__all__ = ["BatchScheduler"]

log = logging.getLogger(__name__)


class BatchScheduler:
    """Recompute and tier jobs on their triggers, until ``stop`` is set."""

    def __init__(self, settings: Settings, client: Client, *, dask: Any | None = None) -> None:
        self._settings = settings
        self._client = client
        self._dask = dask
        self._stack = ExitStack()
        self.runs: dict[str, int] = dict.fromkeys(JOB_KINDS, 0)
        self.errors: dict[str, int] = dict.fromkeys(JOB_KINDS, 0)

    def _dask_client(self) -> Any:
        if self._dask is None:
            self._dask = self._stack.enter_context(dask_client(self._settings, quiet=True))
        return self._dask

    def _run(self, kind: str) -> None:
        try:
            (job,) = jobs_for(kind)
            dask = self._dask_client() if job.uses_dask else None
            summary = job.run(self._settings, self._client, dask=dask).summary()
            self.runs[kind] += 1
            log.info("%s", summary)
        except JobRunningError as exc:
            log.warning("%s", exc)
        except Exception:
            self.errors[kind] += 1
            log.exception("batch job %s failed (recorded in job_history)", kind)

    def build(self) -> Any:
        """The configured (not yet started) APScheduler ``BackgroundScheduler``."""
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        b = self._settings.batch
        sched = BackgroundScheduler(timezone="UTC")
        common = {"max_instances": 1, "coalesce": True}
        sched.add_job(
            self._run,
            IntervalTrigger(seconds=b.recompute_every_s, timezone="UTC"),
            args=["recompute"],
            id="recompute",
            misfire_grace_time=max(1, b.recompute_every_s // 2),
            **common,
        )
        sched.add_job(
            self._run,
            CronTrigger.from_crontab(b.tier_cron, timezone="UTC"),
            args=["tier"],
            id="tier",
            misfire_grace_time=600,
            **common,
        )
        return sched

    def run(self, stop: threading.Event, *, run_now: bool = True) -> None:
        """Start the schedule, optionally run each job once now, block until ``stop``."""
        sched = self.build()
        sched.start()
        try:
            if run_now:
                from datetime import UTC, datetime

                for job in sched.get_jobs():
                    job.modify(next_run_time=datetime.now(UTC))
            stop.wait()
        finally:
            sched.shutdown(wait=True)
            self._stack.close()
