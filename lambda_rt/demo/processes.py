"""The demo's child processes: the platform daemon and one speed-layer process.

Both run as ``python -m lambda_rt ...`` in their own session (so a Ctrl-C in
the terminal reaches the demo only, which then stops them in order), with
their output in ``<state_dir>/logs/demo-<name>.log``. :class:`Children` is a
context manager: leaving it sends SIGTERM to each child (speed first, then the
daemon, which finishes its ingest batch and commits), waits, and kills a child
that does not stop within ``stop_timeout_s``.

It does not start the embedded servers (``lambda_rt.stack.launcher`` does).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from lambda_rt.config import Settings
from lambda_rt.errors import LambdaRTError
from lambda_rt.signals import signal_handlers

__all__ = ["DEMO_OVERRIDES", "Children", "DemoProcessError", "dask_dashboard"]

# Batch settings that make a recompute and a tier move meaningful within minutes:
# buckets close 90 s after the fact, yesterday's hot data is due for warm and
# older days for cold. Applied to the children only, and only where the user's
# environment does not set them already.
DEMO_OVERRIDES: dict[str, str] = {
    "LAMBDA_RT_BATCH__ALLOWED_LATENESS_S": "90",
    "LAMBDA_RT_BATCH__HOT_TO_WARM_AFTER_S": "0",
    "LAMBDA_RT_BATCH__WARM_TO_COLD_AFTER_S": "86400",
}


def dask_dashboard(settings: Settings, address: str | None) -> str:
    """Where to watch a batch job's Dask cluster, or why there is nothing to watch.

    ``address`` is the ``host:port`` the job's LocalCluster serves its dashboard
    on, when known (``None``: a free port chosen at each job). The dashboard
    needs bokeh; without it distributed serves nothing and the link is dead.
    """
    if settings.dask.scheduler:
        return f"Dask dashboard: the one of your scheduler {settings.dask.scheduler} (usually port 8787)"
    if importlib.util.find_spec("bokeh") is None:
        return "Dask dashboard: not available (bokeh is not installed: pip install bokeh)"
    host, _, port = (address or "").rpartition(":")
    if not port or port == "0":
        return "Dask dashboard: on a free port chosen per job (set dask.dashboard_address to fix it)"
    return f"Dask dashboard (while the job runs): http://{host or '127.0.0.1'}:{port}/status"


class DemoProcessError(LambdaRTError):
    """A child process did not start or died; the message names its log file."""


class Children:
    """Start, watch and stop the demo's child processes."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_file: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
        stop_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.logs = Path(settings.state_dir) / "logs"
        self.stop_timeout_s = stop_timeout_s
        env = dict(os.environ)
        for key, value in {**DEMO_OVERRIDES, **(extra_env or {})}.items():
            env.setdefault(key, value)
        env["LAMBDA_RT_STATE_DIR"] = str(settings.state_dir)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.env = env
        self._prefix = [sys.executable, "-m", "lambda_rt"]
        if config_file is not None:
            self._prefix += ["--config", str(config_file)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Run ``lambda-rt <args>`` as child ``name`` (output to its log file)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(
                [*self._prefix, *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log_path(self, name: str) -> Path:
        return self.logs / f"demo-{name}.log"

    def check(self) -> None:
        """Raise if a child has exited (with the tail of its log)."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                raise DemoProcessError(
                    f"'lambda-rt {name}' exited with code {code}; its log "
                    f"{self.log_path(name)} ends with:\n{self.tail(name)}"
                )

    def tail(self, name: str, lines: int = 12) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_daemon(self, timeout_s: float = 90.0) -> str:
        """The URL of the daemon this demo started, once it answers."""
        from serving import find_daemon

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            url = find_daemon(self.settings)
            if url:
                return url
            time.sleep(0.2)
        raise DemoProcessError(
            f"the daemon did not answer within {timeout_s:.0f} s; see {self.log_path('serve')}"
        )

    def stop(self) -> dict[str, int | None]:
        """SIGTERM each child (speed first), wait, kill what does not stop; exit codes."""
        codes: dict[str, int | None] = {}
        for name in sorted(self.procs, key=lambda n: n != "speed"):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            codes[name] = proc.returncode
        self.procs.clear()
        return codes

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Ignore a second Ctrl-C while the children shut down cleanly.
        with signal_handlers(signal.SIG_IGN, (signal.SIGINT,)):
            self.stop()
