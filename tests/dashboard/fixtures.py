"""Dashboard test helpers: Debian's Chromium driven by Playwright, and a daemon subprocess.

Playwright drives ``/usr/bin/chromium`` (installed by ``make install`` through
``scripts/install-system-deps.sh``); ``playwright install`` is never run (it
downloads a browser build). :class:`PageWatch` records console errors and
failed requests so a test can assert a clean page. :func:`start_daemon` runs
``lambda-rt serve`` on a free port, as the daemon tests do.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def artifact_dir() -> Path:
    """Where screenshots go (``LAMBDA_RT_TEST_ARTIFACTS``, default ``test-artifacts/``)."""
    path = Path(os.environ.get("LAMBDA_RT_TEST_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``); fails with how to install it if missing."""
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: run ./scripts/install-system-deps.sh (apt chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageWatch:
    """Console errors, page errors and failed requests of one page, in order."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("request", lambda r: self.urls.append(r.url))
        page.on(
            "response", lambda r: self.failed.append(f"{r.url}: HTTP {r.status}") if r.status >= 400 else None
        )

    def mark(self) -> tuple[int, int]:
        return len(self.errors), len(self.failed)


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[str]
    url: str


def start_daemon(env: dict[str, str], daemon_file: Path, timeout_s: float = 90) -> RunningDaemon:
    """``lambda-rt serve --port 0 --no-schedule``; returns once ``serve.json`` names its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambda_rt", "serve", "--port", "0", "--no-schedule"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited: {proc.stderr.read() if proc.stderr else ''}")
        if daemon_file.exists():
            return RunningDaemon(proc, str(json.loads(daemon_file.read_text())["url"]))
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{daemon_file} not written in {timeout_s} s")


def stop_daemon(daemon: RunningDaemon, timeout_s: float = 60) -> None:
    """SIGTERM and a clean exit (open dashboard streams must not hold the stop)."""
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        rc = daemon.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        raise AssertionError(f"the daemon did not stop {timeout_s} s after SIGTERM") from None
    assert rc == 0, daemon.proc.stderr.read() if daemon.proc.stderr else ""
