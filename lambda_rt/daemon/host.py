"""The platform daemon ``lambda-rt serve``: engine owner, ingest, schedule, HTTP API.

In embedded mode chDB allows one process per data directory, so this process
owns the ClickHouse engine and does everything that needs it:

1. open the engine (``EngineLockedError`` if another process holds it);
2. start the batch ingest (``batch_layer.ingest.Ingestor``) in a thread;
3. start the batch schedule (``batch_layer.schedule.BatchScheduler.run``)
   in a thread;
4. bind the HTTP API (127.0.0.1 by default), then publish its URL and pid in
   ``<state_dir>/serve.json`` so clients and ``lambda-rt batch run`` find it;
5. on SIGTERM/SIGINT: stop accepting requests (uvicorn finishes the ones in
   flight), stop the schedule and the ingest (it finishes its batch and
   commits), remove ``serve.json``, return.

It does not run the speed layer (that needs no ClickHouse). The HTTP app and
the query engine are serving's (:func:`serving.app.create_app`,
:class:`serving.engine.QueryEngine`); :class:`Daemon` is the app's backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from batch_layer.ingest import Ingestor
from batch_layer.migrations import ensure_tables
from batch_layer.schedule import BatchScheduler
from lambda_rt.clients.clickhouse import open_clickhouse
from lambda_rt.config import Settings
from lambda_rt.daemon.jobs import run_job
from lambda_rt.signals import install_signal_handlers, restore_signal_handlers
from serving.app import create_app
from serving.client import daemon_file
from serving.dashboard import stop_live_streams
from serving.engine import QueryEngine

__all__ = ["Daemon", "bind_listener", "run_daemon"]

log = logging.getLogger(__name__)


class Daemon:
    """The daemon's parts, startable and stoppable (``run_daemon`` drives it)."""

    def __init__(self, settings: Settings, *, ingest: bool = True, schedule: bool = True) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.engine = QueryEngine(settings)  # opens (and so locks) the embedded engine first
        # tables exist before the API answers: a query on a fresh engine must not race the
        # ingest thread's CREATE TABLEs (a query on a missing table answers 500)
        ensure_tables(self.engine.clickhouse)
        self._threads: list[threading.Thread] = []
        self._ingest_on = ingest
        self._schedule_on = schedule
        self._ingestor: Ingestor | None = None
        self.errors: list[str] = []

    # -- backend of serving.app (serving.app.AppBackend) ---------------------------
    def query(
        self,
        metric: str,
        by: str | None,
        start: str | None,
        end: str | None,
        granularity: str,
        strict: bool,
        fmt: str = "json",
    ) -> bytes:
        """The body, JSON or Arrow IPC (a cached result's bytes are built once and reused)."""
        result = self.engine.query(metric, by, start, end, granularity, strict=strict)
        return result.to_arrow_ipc() if fmt == "arrow" else result.to_json()

    def status(self) -> dict[str, Any]:
        out = self.engine.status()
        rep = getattr(self._ingestor, "report", None)
        out["ingest"] = (
            {"running": any(t.name == "ingest" and t.is_alive() for t in self._threads), **vars(rep)}
            if rep is not None
            else {"running": False}
        )
        out["schedule"] = {"running": any(t.name == "schedule" and t.is_alive() for t in self._threads)}
        out["errors"] = list(self.errors[-10:])
        out["pid"] = os.getpid()
        return out

    def run_job(self, kind: str, start: str | None, end: str | None) -> dict[str, Any]:
        client = open_clickhouse(self.settings)
        return run_job(self.settings, client, kind, start, end)

    def metrics(self) -> bytes:
        return self.engine.metrics.render()

    # -- lifecycle -------------------------------------------------------------
    def start_background(self) -> None:
        if self._ingest_on:
            self._ingestor = Ingestor(self.settings, open_clickhouse(self.settings))
            t = threading.Thread(
                target=self._guard, args=("ingest", self._ingestor.run), name="ingest", daemon=True
            )
            t.start()
            self._threads.append(t)
        if self._schedule_on:
            scheduler = BatchScheduler(self.settings, open_clickhouse(self.settings))
            t = threading.Thread(
                target=self._guard, args=("schedule", scheduler.run), name="schedule", daemon=True
            )
            t.start()
            self._threads.append(t)

    def _guard(self, name: str, fn: Callable[..., Any]) -> None:
        try:
            fn(stop=self.stop)
        except Exception as exc:  # reported in /status, the API keeps serving
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log.error("%s stopped: %s", name, exc, exc_info=exc)

    def shutdown(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.engine.close()


def _make_server_class() -> type:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn without its own signal handling (the daemon installs its own)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return _Server


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket for uvicorn (``port`` 0: any free port)."""
    # proto IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto
    # says TCP, and with Nagle on every response waited ~40 ms for the client's delayed ACK
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def run_daemon(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    ingest: bool = True,
    schedule: bool = True,
    grpc_port: int | None = None,
    grpc: bool = True,
) -> None:
    """Run until SIGTERM/SIGINT (see the module docstring for the order of steps)."""
    import uvicorn

    from serving.api_hosting import graphql_mounter, start_grpc
    from serving.apis import ApiBackend

    _Server = _make_server_class()
    daemon = Daemon(settings, ingest=ingest, schedule=schedule)
    token = settings.serve.token.get_secret_value() if settings.serve.token else None
    h = host or settings.serve.host
    apis = ApiBackend(query=daemon.engine.query, status=daemon.status)
    app = create_app(daemon, token=token, graphql=graphql_mounter(settings, apis, token=token, host=h))
    sock = bind_listener(h, settings.serve.port if port is None else port)
    actual = sock.getsockname()[1]
    url = f"http://{'[' + h + ']' if ':' in h else h}:{actual}"
    server = _Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))

    def _on_signal(_signum: int) -> None:
        server.should_exit = True  # uvicorn drains requests in flight, then run() returns
        stop_live_streams(app)  # dashboard streams never finish by themselves

    previous = install_signal_handlers(_on_signal)
    path = daemon_file(settings)
    grpc_server = None
    try:
        daemon.start_background()
        info: dict[str, Any] = {
            "url": url,
            "pid": os.getpid(),
            "started_at": time.time(),
            "auth": token is not None,
        }
        if grpc:  # serving.grpc_api beside uvicorn, on its own port and loop
            if grpc_port is None and port == 0:  # "any free port" for HTTP means the same for gRPC
                grpc_port = 0
            grpc_server = start_grpc(settings, apis, token=token, host=h, port=grpc_port)
            info.update(grpc=grpc_server.address, grpc_tls=grpc_server.tls)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(path)
        grpc_note = f", gRPC on {grpc_server.address}" if grpc_server is not None else ""
        log.info(
            "listening on %s%s (pid %d); live dashboard at %s/dashboard", url, grpc_note, os.getpid(), url
        )
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(FileNotFoundError):
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        if grpc_server is not None:
            grpc_server.stop()
        daemon.shutdown()
        sock.close()
        restore_signal_handlers(previous)
        log.info("stopped")
