"""A batch job's LocalCluster listens on loopback only, and logs a link that works."""

from __future__ import annotations

import logging
import os
import urllib.request
from pathlib import Path

import psutil
import pytest

from batch_layer.runtime import dask_client
from lambda_rt.config import load_settings


def test_local_cluster_listens_on_loopback_and_logs_a_live_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(state_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="batch_layer.runtime")
    with dask_client(settings) as client:
        link = caplog.text.split("dask dashboard: ")[1].split()[0]
        with urllib.request.urlopen(link.replace("/status", "/health"), timeout=30) as r:
            assert r.status == 200
        listening = [
            c.laddr
            for c in psutil.Process(os.getpid()).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        assert client is not None and listening
        assert all(addr.ip == "127.0.0.1" for addr in listening), listening
