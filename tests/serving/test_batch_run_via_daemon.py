"""``lambda-rt batch run`` sends the job to a running daemon instead of failing.

The daemon owns the embedded chDB directory (one process per directory), so a
batch run from cron while it runs must go through ``POST /jobs/{kind}``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from serving.client import daemon_file


def test_batch_run_goes_through_the_running_daemon(isolated) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "--log-format", "json", "serve", "--port", "0", "--no-schedule"],
        env=isolated.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = daemon_file(isolated.settings)
        deadline = time.monotonic() + 90
        while not path.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the daemon did not start"
            time.sleep(0.1)
        assert json.loads(path.read_text())["pid"] == proc.pid
        for job in ("recompute", "tier"):
            out = subprocess.run(
                [sys.executable, "-m", "lambda_rt", "batch", "run", job],
                env=isolated.env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert out.returncode == 0, out.stderr
            assert "in the daemon at http://127.0.0.1:" in out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # the daemon logged (not printed) its start and stop, one JSON object per line (librdkafka
    # writes its own lines to stderr, outside Python's logging: those are skipped)
    lines = proc.stderr.read().splitlines()  # type: ignore[union-attr]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    daemon = [r["message"] for r in records if r["logger"] == "lambda_rt.daemon.host"]
    assert any(m.startswith("listening on http://127.0.0.1:") for m in daemon) and "stopped" in daemon
