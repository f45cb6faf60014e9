"""Serving: one answer from the batch view and the speed view.

``serving.connect()`` returns a client that talks to the platform daemon
(``lambda-rt serve``) when one is running, and otherwise opens the engine in
this process. A query reads buckets before the batch watermark from the batch
views (exact) and the rest from the Redis speed view, composes buckets that
straddle the watermark from minutes, and says in its coverage metadata which
layer served which range, whether the answer is exact and where neither layer
had data::

    import serving

    with serving.connect() as client:
        df = client.query("revenue", by="store_id", granularity="hour")
        print(df.attrs["coverage"]["batch_through"], df.head())

It imports the read side of the layers only (``speed_layer.keys``,
``batch_layer.views``, ``batch_layer.tables``), never their runtime: the
daemon that hosts the ingest, the schedule and batch jobs on request is
:mod:`lambda_rt.daemon`, above serving (``make lint`` checks it).
"""

from __future__ import annotations

from lambda_rt.errors import JobRunningError
from serving.client import (
    DAEMON_FILE,
    HttpClient,
    JobRunner,
    LocalClient,
    ServingClient,
    connect,
    find_daemon,
)
from serving.errors import CoverageHoleError, DaemonError, InvalidQueryError, ServingError
from serving.result import Coverage, QueryResult
from serving.spec import QuerySpec, make_spec

__all__ = [
    "DAEMON_FILE",
    "Coverage",
    "CoverageHoleError",
    "DaemonError",
    "HttpClient",
    "InvalidQueryError",
    "JobRunner",
    "JobRunningError",
    "LocalClient",
    "QueryResult",
    "QuerySpec",
    "ServingClient",
    "ServingError",
    "connect",
    "find_daemon",
    "make_spec",
]
