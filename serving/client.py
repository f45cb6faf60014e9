"""The Python API: :func:`connect` and the two clients behind it.

:class:`HttpClient` talks to a running platform daemon; :class:`LocalClient`
opens the engine in this process (:class:`serving.engine.QueryEngine`). Both
answer the same calls with the same results::

    >>> import serving
    >>> client = serving.connect()                         # doctest: +SKIP
    >>> df = client.query("events", by="event_type", granularity="hour")  # doctest: +SKIP
    >>> df.attrs["coverage"]["exact"]                      # doctest: +SKIP
    True
    >>> table = client.query("revenue", format="arrow")    # doctest: +SKIP

The daemon is found through ``<state_dir>/serve.json`` (its URL and pid, written
at start, removed at a clean stop) or an explicit ``url``. Because chDB allows
one process per data directory, the in-process fallback is used only when no
daemon answers.

Batch jobs (``run_job``) run where the engine lives: in the daemon, or, for an
in-process client, through the :class:`JobRunner` it was given
(``connect(jobs=lambda_rt.daemon.run_job)``). Serving itself never imports the
batch layer's runtime.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, overload

import httpx
import orjson
import pandas as pd
import pyarrow as pa

from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import Settings, load_settings
from lambda_rt.errors import EngineLockedError, JobRunningError, LambdaRTError
from serving.errors import CoverageHoleError, DaemonError, InvalidQueryError, ServingError
from serving.result import QueryResult

if TYPE_CHECKING:
    from serving.grpc_api.client import GrpcClient

__all__ = [
    "DAEMON_FILE",
    "HttpClient",
    "JobRunner",
    "LocalClient",
    "ServingClient",
    "connect",
    "daemon_file",
    "find_daemon",
]

DAEMON_FILE = "serve.json"
TimeArg = str | datetime | None
ByArg = str | tuple[str, ...] | list[str] | None


def daemon_file(settings: Settings) -> Path:
    """Where the daemon publishes its URL and pid."""
    return Path(settings.state_dir) / DAEMON_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_daemon(settings: Settings, timeout_s: float = 1.0) -> str | None:
    """The URL of a running daemon for this state dir, or None if none answers."""
    path = daemon_file(settings)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    url, pid = info.get("url"), info.get("pid")
    if not url or not isinstance(pid, int) or not _pid_alive(pid):
        return None
    try:
        r = httpx.get(f"{url}/healthz", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return str(url) if r.status_code == 200 else None


def _by_tuple(metric: str, by: ByArg) -> tuple[str, ...]:
    from serving.spec import make_spec

    return make_spec(metric, by).by


class JobRunner(Protocol):
    """Runs one batch job now, in this process, on this engine; returns a JSON-able summary.

    :func:`lambda_rt.daemon.run_job` is the platform's; serving receives it
    rather than importing the batch layer's runtime.
    """

    def __call__(
        self, settings: Settings, clickhouse: Client, kind: str, start: TimeArg, end: TimeArg
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Ask:
    """One query's arguments as the caller gave them, unchecked (the engine checks them)."""

    metric: str
    by: ByArg
    start: TimeArg
    end: TimeArg
    granularity: str
    strict: bool


class ServingClient(ABC):
    """What both clients offer; the query methods are written here once.

    A client answers :meth:`_answer`; :meth:`query_result` and :meth:`query` are
    the same for both.
    """

    def query_result(
        self,
        metric: str,
        by: ByArg = None,
        start: TimeArg = None,
        end: TimeArg = None,
        granularity: str = "hour",
        *,
        strict: bool = False,
    ) -> QueryResult:
        """One merged metric with its coverage; the arguments are those of :meth:`query`."""
        return self._answer(_Ask(metric, by, start, end, granularity, strict))

    @abstractmethod
    def _answer(self, ask: _Ask) -> QueryResult: ...

    @overload
    def query(
        self,
        metric: str,
        by: ByArg = ...,
        start: TimeArg = ...,
        end: TimeArg = ...,
        granularity: str = ...,
        *,
        strict: bool = ...,
        format: Literal["pandas"] = ...,
    ) -> pd.DataFrame: ...

    @overload
    def query(
        self,
        metric: str,
        by: ByArg = ...,
        start: TimeArg = ...,
        end: TimeArg = ...,
        granularity: str = ...,
        *,
        strict: bool = ...,
        format: Literal["arrow"],
    ) -> pa.Table: ...

    def query(
        self,
        metric: str,
        by: ByArg = None,
        start: TimeArg = None,
        end: TimeArg = None,
        granularity: str = "hour",
        *,
        strict: bool = False,
        format: Literal["pandas", "arrow"] = "pandas",
    ) -> pd.DataFrame | pa.Table:
        """One merged metric as a DataFrame (``attrs["coverage"]``) or Arrow table.

        Args:
            metric: ``events``, ``orders``, ``revenue``, ``refunds``,
                ``unique_customers``, ``payment_failures`` or ``inventory_delta``.
            by: dimensions, ``"store_id,event_type"`` or a sequence
                (``product_id`` for ``inventory_delta`` only).
            start, end: ISO-8601 strings or aware datetimes (default: the last
                24 h ending now; ``end`` exclusive).
            granularity: ``minute``, ``hour`` or ``day``.
            strict: raise :class:`CoverageHoleError` instead of reporting a hole.
            format: ``pandas`` or ``arrow`` (coverage JSON in the schema metadata).
        """
        result = self.query_result(metric, by, start, end, granularity, strict=strict)
        return result.to_arrow() if format == "arrow" else result.frame

    @abstractmethod
    def status(self) -> dict[str, Any]: ...

    @abstractmethod
    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalClient(ServingClient):
    """Answers in this process; owns the embedded engine while open.

    ``jobs`` runs ``run_job`` here (the daemon's runner, ``lambda_rt.daemon.run_job``);
    without one, ``run_job`` says where batch jobs run instead.
    """

    def __init__(
        self, settings: Settings, *, cache_entries: int = 512, jobs: JobRunner | None = None
    ) -> None:
        from serving.engine import QueryEngine

        self.settings = settings
        self.jobs = jobs
        self.engine = QueryEngine(settings, cache_entries=cache_entries)

    def _answer(self, ask: _Ask) -> QueryResult:
        return self.engine.query(ask.metric, ask.by, ask.start, ask.end, ask.granularity, strict=ask.strict)

    def status(self) -> dict[str, Any]:
        return self.engine.status()

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]:
        """Run a batch job on this client's engine (needs a ``jobs`` runner).

        Raises:
            ServingError: this client was opened without a job runner.
        """
        if self.jobs is None:
            raise ServingError(
                "this in-process client has no batch job runner: open it with "
                "serving.connect(jobs=lambda_rt.daemon.run_job), or start 'lambda-rt serve' "
                f"(jobs then run in the daemon), or run 'lambda-rt batch run {kind}'"
            )
        return self.jobs(self.settings, self.engine.clickhouse, kind, start, end)

    def close(self) -> None:
        self.engine.close()


def _iso(value: TimeArg) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class HttpClient(ServingClient):
    """Talks to a platform daemon's HTTP API."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def _call(self, method: str, path: str, params: dict[str, str | None]) -> bytes:
        """The body of a 200 answer; any other answer as the exception it stands for."""
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            r = self._http.request(method, path, params=clean)
        except httpx.HTTPError as exc:
            raise DaemonError(f"the daemon at {self.url} did not answer: {exc}") from exc
        try:
            r.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise self._error_of(r) from exc
        return r.content

    def _error_of(self, r: httpx.Response) -> LambdaRTError:
        """The exception the daemon raised, rebuilt from its answer (see ``serving.app``)."""
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        if r.status_code == 422:
            return InvalidQueryError(str(detail))
        if r.status_code == 409 and isinstance(detail, dict):
            message = str(detail.get("message"))
            if detail.get("error") == "JobRunningError":
                return JobRunningError(message, job=str(detail.get("job") or ""))
            return CoverageHoleError(message, list(detail.get("holes", [])))
        return DaemonError(f"the daemon at {self.url} answered {r.status_code}: {detail}")

    def _answer(self, ask: _Ask) -> QueryResult:
        by = ask.by
        by_str = by if isinstance(by, str) or by is None else ",".join(by)
        # Arrow, not JSON rows: decoding thousands of JSON rows into a frame costs more
        # than the whole cached answer on the daemon's side
        data = self._call(
            "GET",
            "/query",
            {
                "metric": ask.metric,
                "by": by_str,
                "start": _iso(ask.start),
                "end": _iso(ask.end),
                "granularity": ask.granularity,
                "strict": "true" if ask.strict else None,
                "format": "arrow",
            },
        )
        return QueryResult.from_arrow_ipc(data, ask.metric, ask.granularity, _by_tuple(ask.metric, by))

    def _json(self, method: str, path: str, params: dict[str, str | None]) -> dict[str, Any]:
        return dict(orjson.loads(self._call(method, path, params)))

    def status(self) -> dict[str, Any]:
        return self._json("GET", "/status", {})

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]:
        """Run a batch job in the daemon.

        Raises:
            JobRunningError: the daemon is already running that job (HTTP 409).
        """
        return self._json("POST", f"/jobs/{kind}", {"start": _iso(start), "end": _iso(end)})

    def close(self) -> None:
        self._http.close()


def connect(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    in_process: bool | None = None,
    jobs: JobRunner | None = None,
    transport: Literal["http", "grpc"] = "http",
) -> HttpClient | LocalClient | GrpcClient:
    """A client: the daemon's when one answers, else the engine in this process.

    Args:
        settings: default ``load_settings()`` (env, lambda-rt.toml, state dir).
        url: talk to this daemon (no discovery, no fallback); with
            ``transport="grpc"`` a ``host:port`` gRPC target.
        token: bearer token (default ``settings.serve.token``).
        in_process: True forces the in-process engine, False requires a daemon.
        jobs: how an in-process client runs ``run_job`` (``lambda_rt.daemon.run_job``);
            a daemon runs its jobs itself, so an HTTP client does not use it.
        transport: ``grpc`` talks to the daemon's gRPC API (no in-process
            fallback): the same ``query()``, over ``lambda_rt.v1.Analytics``.

    Raises:
        EngineLockedError: no daemon answers but another process owns the engine.
        DaemonError: ``in_process=False`` and no daemon answers.
    """
    settings = settings or load_settings()
    if token is None and settings.serve.token is not None:
        token = settings.serve.token.get_secret_value()
    if transport == "grpc":
        from serving.grpc_api.client import connect_grpc

        return connect_grpc(settings, target=url, token=token)
    if url is not None:
        return HttpClient(url, token=token)
    if in_process is not True:
        found = find_daemon(settings)
        if found:
            return HttpClient(found, token=token)
        if in_process is False:
            raise DaemonError(f"no lambda-rt serve daemon answers for state dir {settings.state_dir}")
    try:
        return LocalClient(settings, jobs=jobs)
    except EngineLockedError as exc:
        found = find_daemon(settings, timeout_s=5.0)
        if found:
            return HttpClient(found, token=token)
        raise EngineLockedError(
            f"{exc}; no daemon answers at {daemon_file(settings)} - if 'lambda-rt serve' is "
            "starting, retry in a moment"
        ) from exc
