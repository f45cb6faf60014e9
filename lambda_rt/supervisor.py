"""``lambda-rt run``: start the platform's processes and keep them running.

One supervisor process starts each child (``lambda-rt serve`` and N
``lambda-rt speed``) as ``python -m lambda_rt ...`` in its own session, with
its output in ``<state_dir>/logs/run-<name>.log``, and:

1. restarts a child that exits, after a backoff that doubles with each quick
   failure (0.5 s, 1 s, 2 s ... capped at 30 s) and resets once a child stayed
   up for ``STABLE_AFTER_S``;
2. writes its view (pid, start time, restarts, last exit of every child) to
   ``<state_dir>/run.json`` once a second and on every change, which
   ``lambda-rt status`` reports;
3. on SIGTERM or SIGINT sends SIGTERM to every child (speed processes first,
   then the daemon, which finishes its ingest batch), waits up to
   ``stop_timeout_s`` and kills what is left, then exits 0.

It does not start the embedded servers (``lambda-rt up``) and does not judge
whether a child does useful work: a child that runs is left alone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambda_rt.config import KafkaSettings, Settings

__all__ = ["RUN_FILE", "Child", "Supervisor", "default_speed_processes", "read_run_file"]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 30.0
STABLE_AFTER_S = 30.0
# Session timeout of supervised speed consumers on the embedded broker, unless
# configured otherwise.
SUPERVISED_SESSION_TIMEOUT_MS = 3000


def default_speed_processes(settings: Settings) -> int:
    """One speed process per partition, at most one per core (more would only wait)."""
    return max(1, min(settings.kafka.partitions, os.cpu_count() or 1))


@dataclass
class Child:
    """One supervised process: what to run and what happened to it."""

    name: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float | None = None
    restarts: int = 0
    quick_failures: int = 0
    next_start: float = 0.0
    last_exit: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)  # added to the supervisor's environment

    def view(self, now: float) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.poll() is None
        return {
            "name": self.name,
            "pid": self.proc.pid if alive and self.proc is not None else None,
            "state": "running" if alive else "restarting",
            "started_at": self.started_at if alive else None,
            "uptime_s": round(now - self.started_at, 1) if alive and self.started_at else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


def _describe_exit(code: int) -> dict[str, Any]:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return {"code": None, "signal": name, "at": time.time()}
    return {"code": code, "signal": None, "at": time.time()}


@dataclass
class Supervisor:
    """Runs ``children`` until :meth:`stop` (or SIGTERM through :meth:`run`)."""

    settings: Settings
    children: list[Child]
    global_args: Sequence[str] = ()
    env: dict[str, str] | None = None
    stop_timeout_s: float = 60.0
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def for_platform(
        cls,
        settings: Settings,
        speed_processes: int,
        *,
        global_args: Sequence[str] = (),
        serve_args: Sequence[str] = (),
    ) -> Supervisor:
        """The daemon plus ``speed_processes`` speed-layer processes."""
        children = [Child("daemon", ["serve", *serve_args])]
        speed_env: dict[str, str] = {}
        embedded = settings.kafka.bootstrap == f"127.0.0.1:{settings.stack.kafka_port}"
        if embedded and settings.kafka.session_timeout_ms == KafkaSettings().session_timeout_ms:
            # The group reassigns a killed process's partitions only when its session
            # expires: at the default (6 s) plus a rejoin, recovery measured 7-14 s.
            # Embedded broker only: Apache Kafka refuses sessions under 6 s by default.
            speed_env["LAMBDA_RT_KAFKA__SESSION_TIMEOUT_MS"] = str(SUPERVISED_SESSION_TIMEOUT_MS)
        children += [Child(f"speed-{i + 1}", ["speed"], env=speed_env) for i in range(speed_processes)]
        return cls(settings, children, global_args=global_args)

    @property
    def run_file(self) -> Path:
        return self.settings.state_dir / RUN_FILE

    def _start(self, child: Child) -> None:
        logs = self.settings.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "lambda_rt", *self.global_args, *child.args]
        with open(logs / f"run-{child.name}.log", "ab") as out:
            env = {**(self.env if self.env is not None else os.environ), **child.env}
            child.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        child.started_at = time.time()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _reap(self, child: Child, now: float) -> bool:
        """Note a child that exited and schedule its restart; True if it did."""
        if child.proc is None or child.proc.poll() is None:
            return False
        code = int(child.proc.returncode)
        child.last_exit = _describe_exit(code)
        lived = now - (child.started_at or now)
        child.quick_failures = 0 if lived >= STABLE_AFTER_S else child.quick_failures + 1
        delay = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** max(0, child.quick_failures - 1))
        child.next_start = time.monotonic() + delay
        child.proc = None
        child.started_at = None
        log.warning(
            "%s exited (%s) after %.1f s; restarting in %.1f s", child.name, child.last_exit, lived, delay
        )
        return True

    def write_state(self) -> None:
        """``run.json``: this supervisor and every child (atomically replaced)."""
        now = time.time()
        doc = {"pid": os.getpid(), "updated_at": now, "children": [c.view(now) for c in self.children]}
        tmp = self.run_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        os.replace(tmp, self.run_file)

    def stop(self) -> None:
        """Ask :meth:`run` to stop every child and return."""
        self._stop.set()

    def run(self, *, handle_signals: bool = True) -> int:
        """Start and supervise the children until stopped; returns the exit code (0)."""
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda _s, _f: self._stop.set())
        for child in self.children:
            self._start(child)
        self.write_state()
        last_write = time.monotonic()
        try:
            while not self._stop.wait(0.1):
                now = time.time()
                changed = False
                for child in self.children:
                    changed |= self._reap(child, now)
                    if child.proc is None and time.monotonic() >= child.next_start:
                        child.restarts += 1
                        self._start(child)
                        changed = True
                if changed or time.monotonic() - last_write >= 1.0:
                    self.write_state()
                    last_write = time.monotonic()
        finally:
            self._stop_children()
        return 0

    def _stop_children(self) -> None:
        # speed processes first, the daemon (ingest, HTTP) last
        ordered = [c for c in self.children if c.name != "daemon"] + [
            c for c in self.children if c.name == "daemon"
        ]
        for child in ordered:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        for child in ordered:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop in %.0f s; killing it", child.name, self.stop_timeout_s)
                child.proc.kill()
                child.proc.wait()
            child.last_exit = _describe_exit(int(child.proc.returncode))
        self.write_state()
        log.info("all supervised processes stopped")


def read_run_file(settings: Settings) -> dict[str, Any] | None:
    """What a running supervisor last wrote, with uptimes brought to now; None if none runs."""
    path = settings.state_dir / RUN_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = int(doc.get("pid") or 0)
    try:
        os.kill(pid, 0)
        running = pid > 0
    except OSError:
        running = False
    now = time.time()
    for child in doc.get("children", []):
        if running and child.get("started_at"):
            child["uptime_s"] = round(now - float(child["started_at"]), 1)
    doc["running"] = running
    return doc
