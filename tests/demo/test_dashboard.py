"""Where the demo and ``batch run`` say a job's Dask dashboard is."""

from __future__ import annotations

from lambda_rt.config import load_settings
from lambda_rt.demo.processes import dask_dashboard


def test_a_fixed_local_address_gives_a_link() -> None:
    settings = load_settings()
    assert dask_dashboard(settings, "127.0.0.1:8787").endswith("http://127.0.0.1:8787/status")


def test_a_random_port_is_not_printed_as_a_link() -> None:
    line = dask_dashboard(load_settings(), ":0")
    assert "http" not in line


def test_an_external_scheduler_is_named() -> None:
    settings = load_settings(dask={"scheduler": "tcp://sched:8786"})
    assert "tcp://sched:8786" in dask_dashboard(settings, "127.0.0.1:8787")
