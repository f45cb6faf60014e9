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
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import httpx
import orjson
import pandas as pd
import pyarrow as pa

from lambda_rt.config import Settings, load_settings
from lambda_rt.errors import EngineLockedError
from serving.errors import CoverageHoleError, DaemonError, InvalidQueryError
from serving.result import QueryResult

if TYPE_CHECKING:
    from serving.grpc_api.client import GrpcClient

__all__ = [
    "DAEMON_FILE",
    "HttpClient",
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


class ServingClient(Protocol):
    """What both clients offer."""

    def query_result(
        self,
        metric: str,
        by: ByArg = None,
        start: TimeArg = None,
        end: TimeArg = None,
        granularity: str = "hour",
        *,
        strict: bool = False,
    ) -> QueryResult: ...

    def status(self) -> dict[str, Any]: ...

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _Base:
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
        raise NotImplementedError

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

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


class LocalClient(_Base):
    """Answers in this process; owns the embedded engine while open."""

    def __init__(self, settings: Settings, *, cache_entries: int = 512) -> None:
        from serving.engine import QueryEngine

        self.settings = settings
        self.engine = QueryEngine(settings, cache_entries=cache_entries)

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
        return self.engine.query(metric, by, start, end, granularity, strict=strict)

    def status(self) -> dict[str, Any]:
        from serving.ops import status_of

        return status_of(self.engine.clickhouse, self.engine.stats())

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]:
        from serving.ops import run_job

        return run_job(self.settings, self.engine.clickhouse, kind, start, end)

    def close(self) -> None:
        self.engine.close()


def _iso(value: TimeArg) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.isoformat()


class HttpClient(_Base):
    """Talks to a platform daemon's HTTP API."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 600.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def _call(self, method: str, path: str, params: dict[str, Any], *, raw: bool = False) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            r = self._http.request(method, path, params=clean)
        except httpx.HTTPError as exc:
            raise DaemonError(f"the daemon at {self.url} did not answer: {exc}") from exc
        if r.status_code == 200:
            return r.content if raw else orjson.loads(r.content)
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        if r.status_code == 422:
            raise InvalidQueryError(str(detail))
        if r.status_code == 409 and isinstance(detail, dict):
            raise CoverageHoleError(str(detail.get("message")), list(detail.get("holes", [])))
        raise DaemonError(f"the daemon at {self.url} answered {r.status_code}: {detail}")

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
        by_str = by if isinstance(by, str) or by is None else ",".join(by)
        # Arrow, not JSON rows: decoding thousands of JSON rows into a frame costs more
        # than the whole cached answer on the daemon's side
        data = self._call(
            "GET",
            "/query",
            {
                "metric": metric,
                "by": by_str,
                "start": _iso(start),
                "end": _iso(end),
                "granularity": granularity,
                "strict": "true" if strict else None,
                "format": "arrow",
            },
            raw=True,
        )
        return QueryResult.from_arrow_ipc(data, metric, granularity, _by_tuple(metric, by))

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/status", {}))

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]:
        return dict(self._call("POST", f"/jobs/{kind}", {"start": _iso(start), "end": _iso(end)}))

    def close(self) -> None:
        self._http.close()


def connect(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    in_process: bool | None = None,
    transport: Literal["http", "grpc"] = "http",
) -> HttpClient | LocalClient | GrpcClient:
    """A client: the daemon's when one answers, else the engine in this process.

    Args:
        settings: default ``load_settings()`` (env, lambda-rt.toml, state dir).
        url: talk to this daemon (no discovery, no fallback); with
            ``transport="grpc"`` a ``host:port`` gRPC target.
        token: bearer token (default ``settings.serve.token``).
        in_process: True forces the in-process engine, False requires a daemon.
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
        return LocalClient(settings)
    except EngineLockedError as exc:
        found = find_daemon(settings, timeout_s=5.0)
        if found:
            return HttpClient(found, token=token)
        raise EngineLockedError(
            f"{exc}; no daemon answers at {daemon_file(settings)} - if 'lambda-rt serve' is "
            "starting, retry in a moment"
        ) from exc
