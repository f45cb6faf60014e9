"""The platform daemon ``lambda-rt serve`` and the batch jobs it runs on request.

The top of the import graph with the command line and the demo: it joins
serving (the query engine and its HTTP app) with the batch layer's runtime
(ingest, schedule, jobs), which serving itself never imports.

- :mod:`lambda_rt.daemon.host`: :class:`Daemon` (engine owner, ingest and
  schedule threads, the backend of :func:`serving.app.create_app`) and
  :func:`run_daemon`;
- :mod:`lambda_rt.daemon.jobs`: :func:`run_job`, also the job runner an
  in-process client takes (``serving.connect(jobs=run_job)``).
"""

from __future__ import annotations

from lambda_rt.daemon.host import Daemon, run_daemon
from lambda_rt.daemon.jobs import run_job

__all__ = ["Daemon", "run_daemon", "run_job"]
