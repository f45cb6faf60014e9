"""Start, find and stop the embedded stack's server processes by pid file.

A server is started detached (its own session, output to its log file) so it
outlives the ``lambda-rt up`` that started it. ``stop`` only signals a pid
whose command line still names the binary that was started, so a recycled pid
of an unrelated process is never killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from lambda_rt.errors import PortInUseError, ServiceStartError
from lambda_rt.stack.ports import port_is_free

__all__ = ["read_pid", "require_free_ports", "running_pid", "spawn", "stop", "wait_until"]


# Servers started by this process, kept so they are reaped (not zombies) when
# stopped from here and not reported as leaked when the launcher returns.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def require_free_ports(service: str, ports: Mapping[str, int]) -> None:
    """Fail with a message naming the setting to change when a port is taken."""
    for name, port in ports.items():
        if not port_is_free(port):
            raise PortInUseError(
                f"{service}: port {port} ({name}) is already in use by another process; "
                f"choose another with LAMBDA_RT_STACK__{name.upper()} or stop that process"
            )


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file``, or None."""
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _executable(pid: int) -> str:
    """The binary a pid runs (servers may rewrite their argv, not their exe); "" if none."""
    try:
        exe = psutil.Process(pid).exe()
    except psutil.Error:
        return ""
    return os.path.realpath(exe) if exe else ""


def running_pid(pid_file: Path, executable: str) -> int | None:
    """The pid from ``pid_file`` if that process is alive and runs ``executable``."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    if _executable(pid) != os.path.realpath(executable):
        return None
    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return None
    return pid


def spawn(cmd: Sequence[str], *, log_file: Path, pid_file: Path, env: Mapping[str, str] | None = None) -> int:
    """Start ``cmd`` detached, appending its output to ``log_file``; return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    _CHILDREN[proc.pid] = proc
    return proc.pid


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    service: str,
    log_file: Path,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` until it is true; fail naming the log file otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise ServiceStartError(f"{service} exited during start-up; see its log: {log_file}")
        time.sleep(0.05)
    raise ServiceStartError(f"{service} did not answer within {timeout_s:.0f} s; see its log: {log_file}")


def _exiting(pid: int) -> bool:
    """True while ``pid`` is exiting but may still hold its files, hence its ports.

    The kernel releases a process's memory (its executable stops resolving,
    so :func:`running_pid` no longer names it) before it closes its files, and
    a multithreaded server's main thread shows as a zombie while its other
    threads still exit; restarting it in that window finds its ports taken.
    A child of ours is done when it is reaped; any other pid when no thread of
    it runs without a binary (a recycled pid has one).
    """
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return False
    try:
        if proc.exe():
            return False
    except psutil.ZombieProcess:
        pass  # the main thread is a zombie: its other threads may still be exiting
    except psutil.Error:
        return False
    try:
        tids = [t.id for t in proc.threads()]
    except psutil.Error:
        return False
    return any(_thread_status(tid) not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, "") for tid in tids)


def _thread_status(tid: int) -> str:
    """A thread's scheduler state (``psutil.STATUS_*``), "" if it is gone."""
    try:
        return str(psutil.Process(tid).status())
    except psutil.Error:
        return ""


def stop(pid_file: Path, executable: str, *, timeout_s: float = 15.0) -> bool:
    """SIGTERM the recorded process, SIGKILL it after ``timeout_s``; True if it ran.

    Returns once the process has fully exited, so its ports are free again.
    """
    pid = running_pid(pid_file, executable)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (running_pid(pid_file, executable) or _exiting(pid)):
        time.sleep(0.05)
    if running_pid(pid_file, executable):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _exiting(pid):
        time.sleep(0.05)
    _reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect a child's exit status when we are its parent (tests start servers)."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]
