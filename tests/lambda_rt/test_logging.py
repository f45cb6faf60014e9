"""The CLI's logging: lambda-rt's records on stderr as text or JSON lines, others kept quiet."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lambda_rt.cli.logs import OWN_PACKAGES, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, levels = list(root.handlers), {n: logging.getLogger(n).level for n in OWN_PACKAGES}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_json_format_is_one_object_per_line_for_own_packages_only(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    configure_logging("INFO", "json", stream=stream)  # idempotent: one handler, no doubled lines
    logging.getLogger("lambda_rt.daemon.host").info("listening on %s", "http://127.0.0.1:1")
    logging.getLogger("batch_layer.runtime").debug("below the level")
    logging.getLogger("httpx").info("HTTP Request: GET / 200")  # another library's INFO: not shown
    chatty = logging.getLogger("a_library.scheduler")
    chatty.setLevel(logging.INFO)  # as distributed does to its own loggers
    chatty.info("State start")
    chatty.warning("a worker died")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("speed_layer.pipeline").exception("failed")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(d["logger"], d["level"], d["message"]) for d in lines] == [
        ("lambda_rt.daemon.host", "INFO", "listening on http://127.0.0.1:1"),
        ("a_library.scheduler", "WARNING", "a worker died"),
        ("speed_layer.pipeline", "ERROR", "failed"),
    ]
    assert lines[0]["ts"].endswith("Z") and "ValueError: boom" in lines[-1]["exc"]


def test_debug_level_and_text_format(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", "text", stream=stream)
    logging.getLogger("batch_layer.runtime").debug("dask dashboard: %s", "http://x")
    text = stream.getvalue()
    assert "DEBUG batch_layer.runtime: dask dashboard: http://x" in text


def test_unknown_log_format_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lambda_rt", "--log-format", "xml", "status"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--log-format" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
