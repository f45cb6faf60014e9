"""An in-process client runs batch jobs only through the runner it is given.

serving never imports the batch layer's runtime (``make lint`` checks it), so
``LocalClient.run_job`` takes the daemon's runner (``lambda_rt.daemon.run_job``)
from its caller, and without one says where jobs run instead.
"""

from __future__ import annotations

import pytest

import serving
from batch_layer.migrations import ensure_tables
from lambda_rt.daemon import run_job


def test_in_process_client_runs_jobs_through_its_runner(isolated) -> None:  # type: ignore[no-untyped-def]
    no_runner = pytest.raises(serving.ServingError, match="runner")
    with serving.LocalClient(isolated.settings) as client, no_runner:
        client.run_job("tier")
    with serving.LocalClient(isolated.settings, jobs=run_job) as client:
        ensure_tables(client.engine.clickhouse)  # what the daemon does at start
        out = client.run_job("tier")
        with pytest.raises(serving.InvalidQueryError, match="unknown job"):
            client.run_job("compact")
    assert out["job"] == "tier"
    assert len(out["summaries"]) == 1
