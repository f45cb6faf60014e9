"""A gRPC client with the Python API of the other two: ``serving.connect(transport="grpc")``.

:class:`GrpcClient` answers ``query()`` / ``query_result()`` / ``status()``
like :class:`serving.HttpClient`, over ``lambda_rt.v1.Analytics``: the same
DataFrame with ``attrs["coverage"]``. gRPC status codes come back as the
same exceptions (``INVALID_ARGUMENT`` -> :class:`InvalidQueryError`,
``FAILED_PRECONDITION`` -> :class:`CoverageHoleError`). Batch jobs are not
part of the gRPC API: :meth:`GrpcClient.run_job` says to use HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson

from lambda_rt.config import Settings
from serving.apis import QueryArgs
from serving.client import ByArg, ServingClient, TimeArg, _Ask, _iso, daemon_file
from serving.errors import CoverageHoleError, DaemonError, InvalidQueryError, ServingError
from serving.grpc_api.convert import from_response, request_from_args
from serving.grpc_api.v1 import analytics_pb2 as pb
from serving.grpc_api.v1 import analytics_pb2_grpc as pb_grpc
from serving.result import QueryResult

__all__ = ["GrpcClient", "connect_grpc", "find_grpc_target"]


class GrpcClient(ServingClient):
    """Talks to the daemon's gRPC API.

    Args:
        target: ``host:port``.
        token: bearer token sent as ``authorization`` metadata.
        tls_ca: PEM root certificate to trust (None: plaintext).
        timeout_s: per-call deadline.
    """

    def __init__(
        self, target: str, *, token: str | None = None, tls_ca: Path | None = None, timeout_s: float = 600.0
    ) -> None:
        self.target = target
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s
        if tls_ca is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=tls_ca.read_bytes())
            self._channel = grpc.secure_channel(target, creds)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.AnalyticsStub(self._channel)

    def _raise(self, exc: grpc.RpcError) -> None:
        code, detail = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise InvalidQueryError(detail) from None
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            raise CoverageHoleError(detail, []) from None
        raise DaemonError(f"the daemon's gRPC API at {self.target} answered {code.name}: {detail}") from None

    def query_result(
        self,
        metric: str,
        by: ByArg = None,
        start: TimeArg = None,
        end: TimeArg = None,
        granularity: str = "hour",
        *,
        strict: bool = False,
        store_id: int | None = None,
    ) -> QueryResult:
        args = QueryArgs.build(metric, by, _iso(start), _iso(end), granularity, strict, store_id)
        try:
            msg = self._stub.Query(request_from_args(args), metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            self._raise(exc)
            raise
        return from_response(msg, _result_by(metric, args))

    def _answer(self, ask: _Ask) -> QueryResult:
        return self.query_result(ask.metric, ask.by, ask.start, ask.end, ask.granularity, strict=ask.strict)

    def watch(self, metric: str, by: ByArg = None, granularity: str = "hour") -> Iterator[QueryResult]:
        """The answer now, then each time it changes (until the caller stops iterating)."""
        args = QueryArgs.build(metric, by, None, None, granularity)
        stream = self._stub.WatchMetric(
            pb.WatchMetricRequest(query=request_from_args(args)), metadata=self._metadata
        )
        try:
            for msg in stream:
                yield from_response(msg, _result_by(metric, args))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self._raise(exc)
        finally:
            stream.cancel()

    def status(self) -> dict[str, Any]:
        try:
            msg = self._stub.Status(pb.StatusRequest(), metadata=self._metadata, timeout=self._timeout_s)
        except grpc.RpcError as exc:
            self._raise(exc)
            raise
        return dict(orjson.loads(msg.json))

    def run_job(self, kind: str, start: TimeArg = None, end: TimeArg = None) -> dict[str, Any]:
        raise ServingError(
            "batch jobs are not part of the gRPC API: use serving.connect() (HTTP) to run them"
        )

    def close(self) -> None:
        self._channel.close()


def _result_by(metric: str, args: QueryArgs) -> tuple[str, ...]:
    from serving.spec import make_spec

    return make_spec(metric, args.engine_by()).by


def find_grpc_target(settings: Settings) -> tuple[str, bool] | None:
    """The gRPC address the running daemon published in ``serve.json`` and whether it uses TLS."""
    try:
        info = json.loads(daemon_file(settings).read_text())
    except (OSError, ValueError):
        return None
    target = info.get("grpc")
    return (str(target), bool(info.get("grpc_tls"))) if target else None


def connect_grpc(settings: Settings, *, target: str | None = None, token: str | None = None) -> GrpcClient:
    """A :class:`GrpcClient` to ``target``, else to the address the daemon published.

    TLS: with ``serve.grpc_tls_cert`` set, the client trusts that certificate
    (the daemon's own, when it runs on this machine; a CA bundle otherwise).

    Raises:
        DaemonError: no target given and no running daemon published one.
    """
    tls = settings.serve.grpc_tls_cert is not None
    if target is None:
        found = find_grpc_target(settings)
        if found is None:
            raise DaemonError(
                f"no lambda-rt serve daemon with a gRPC API for state dir {settings.state_dir}: "
                "start one with 'lambda-rt serve' or pass url='host:port'"
            )
        target, tls = found
    ca = settings.serve.grpc_tls_cert if tls else None
    if tls and ca is None:
        raise DaemonError(
            "the daemon's gRPC API uses TLS: set serve.grpc_tls_cert to the certificate to trust"
        )
    return GrpcClient(target, token=token, tls_ca=ca)
