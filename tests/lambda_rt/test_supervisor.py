"""The supervisor on real processes: restart with growing backoff, run.json, clean stop."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lambda_rt.config import load_settings
from lambda_rt.supervisor import Child, Supervisor, default_speed_processes, read_run_file


def test_a_child_that_keeps_failing_is_restarted_with_backoff_and_reported(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    # `lambda-rt no-such-command` exits 2 at once: a crash loop
    sup = Supervisor(settings, [Child("broken", ["no-such-command"])], stop_timeout_s=10)
    runner = threading.Thread(target=sup.run, kwargs={"handle_signals": False})
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            doc = read_run_file(settings)
            if doc and doc["children"][0]["restarts"] >= 2:
                break
            time.sleep(0.2)
        doc = read_run_file(settings)
        assert doc is not None and doc["running"]
        (child,) = doc["children"]
        assert child["restarts"] >= 2 and child["last_exit"]["code"] == 2
        # quick failures back off: 0.5 s, 1 s, 2 s ... so the loop is not a busy one
        assert sup.children[0].quick_failures >= 2
    finally:
        sup.stop()
        runner.join(30)
    assert not runner.is_alive()


def test_default_speed_processes_is_partitions_capped_at_cores(tmp_path: Path) -> None:
    import os

    one = load_settings(state_dir=tmp_path, kafka={"partitions": 1})
    many = load_settings(state_dir=tmp_path, kafka={"partitions": 64})
    assert default_speed_processes(one) == 1
    assert default_speed_processes(many) == (os.cpu_count() or 1)
