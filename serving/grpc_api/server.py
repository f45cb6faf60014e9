"""The ``lambda_rt.v1.Analytics`` gRPC server (``grpc.aio``), with reflection and health.

:class:`GrpcServer` runs the server on its own event loop in a thread of the
daemon, beside uvicorn, and answers from the same :class:`~serving.apis.ApiBackend`
as GraphQL: the same rows and coverage as ``GET /query``. Engine calls run in
worker threads (``asyncio.to_thread``) so a slow query never stalls the loop
that serves the streams and the health checks.

- Auth: with a token set, every call but the health service needs metadata
  ``authorization: Bearer <token>``; otherwise ``UNAUTHENTICATED``.
- Errors: a bad argument is ``INVALID_ARGUMENT`` with the engine's one-line
  message; a hole in strict mode ``FAILED_PRECONDITION``; anything unexpected
  ``INTERNAL`` with no traceback (that goes to the log).
- ``WatchMetric`` sends the answer at once and then each time its rows change,
  through a :class:`~serving.live.LiveHub`: one computation per tick for all
  watchers of the same question.
- TLS when ``serve.grpc_tls_cert`` and ``serve.grpc_tls_key`` are set;
  plaintext otherwise (meant for loopback, logged as a warning elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lambda_rt.errors import LambdaRTError
from serving.apis import ApiBackend, EncodedCache, QueryArgs, fingerprint, run_query
from serving.errors import CoverageHoleError, InvalidQueryError, ServingError
from serving.grpc_api.convert import alert_to_pb, args_from_request, status_to_pb, to_response
from serving.grpc_api.v1 import analytics_pb2 as pb
from serving.grpc_api.v1 import analytics_pb2_grpc as pb_grpc
from serving.live import LiveHub
from serving.result import QueryResult

__all__ = ["SERVICE_NAME", "AnalyticsService", "GrpcServer"]

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Analytics"].full_name  # lambda_rt.v1.Analytics
_HEALTH_PREFIX = f"/{health.SERVICE_NAME}/"
T = TypeVar("T")


async def _answer(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call``; turn lambda-rt errors into one-line gRPC statuses (never a traceback)."""
    try:
        return await call()
    except InvalidQueryError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except CoverageHoleError as exc:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    except LambdaRTError as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception:
        log.exception("gRPC call failed")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error: see the daemon's log")
    raise AssertionError("unreachable: abort raises")


@dataclass(frozen=True)
class _Live:
    digest: bytes
    response: bytes


def _encode(result: QueryResult) -> bytes:
    return bytes(to_response(result).SerializeToString())


def _serialize(message: bytes | Any) -> bytes:
    """Responses built as bytes pass through (cached answers, live ticks); messages are serialized."""
    return message if isinstance(message, bytes) else bytes(message.SerializeToString())


class AnalyticsService(pb_grpc.AnalyticsServicer):
    """The servicer: each RPC validates, asks the backend in a thread, converts.

    ``Query`` and ``WatchMetric`` return serialized ``QueryResponse`` bytes:
    a cached engine result is encoded once (:class:`~serving.apis.EncodedCache`),
    a live tick once for all its watchers.
    """

    def __init__(self, backend: ApiBackend) -> None:
        self._backend = backend
        self._encoded: EncodedCache[bytes] = EncodedCache()
        self._hub: LiveHub[QueryArgs, _Live] = LiveHub(self._live, backend.live_interval_s)

    def _live(self, args: QueryArgs) -> _Live:
        result = run_query(self._backend.query, args)
        return _Live(fingerprint(result), self._encoded.get(result, _encode))

    def _query(self, args: QueryArgs) -> bytes:
        return self._encoded.get(run_query(self._backend.query, args), _encode)

    async def Query(self, request: pb.QueryRequest, context: grpc.aio.ServicerContext) -> bytes:
        async def call() -> bytes:
            return await asyncio.to_thread(self._query, args_from_request(request))

        return await _answer(context, call)

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        async def call() -> pb.StatusResponse:
            return status_to_pb(await asyncio.to_thread(self._backend.status))

        return await _answer(context, call)

    async def WatchMetric(
        self, request: pb.WatchMetricRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async def check() -> QueryArgs:
            args = args_from_request(request.query)
            args.validate()
            return args

        args = await _answer(context, check)
        last: bytes | None = None
        async for snap in self._hub.subscribe(args):
            if snap.value is None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, snap.error or "live query failed")
                return
            if snap.value.digest != last:
                last = snap.value.digest
                yield snap.value.response

    async def StreamAlerts(
        self, request: pb.StreamAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Alert]:
        source = self._backend.alerts
        if not source.available:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, source.note)
            return
        for alert in source.recent(request.since or None, request.rule or None, request.status or None):
            yield alert_to_pb(alert)


def _add_service(service: AnalyticsService, server: grpc.aio.Server) -> None:
    """What the generated ``add_AnalyticsServicer_to_server`` does, with :func:`_serialize` for answers."""
    handlers = {
        "Query": grpc.unary_unary_rpc_method_handler(
            service.Query, request_deserializer=pb.QueryRequest.FromString, response_serializer=_serialize
        ),
        "Status": grpc.unary_unary_rpc_method_handler(
            service.Status, request_deserializer=pb.StatusRequest.FromString, response_serializer=_serialize
        ),
        "WatchMetric": grpc.unary_stream_rpc_method_handler(
            service.WatchMetric,
            request_deserializer=pb.WatchMetricRequest.FromString,
            response_serializer=_serialize,
        ),
        "StreamAlerts": grpc.unary_stream_rpc_method_handler(
            service.StreamAlerts,
            request_deserializer=pb.StreamAlertsRequest.FromString,
            response_serializer=_serialize,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class _BearerAuth(grpc.aio.ServerInterceptor):
    """``UNAUTHENTICATED`` unless ``authorization: Bearer <token>`` (the health service is open)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method or ""
        if method.startswith(_HEALTH_PREFIX):
            return await continuation(handler_call_details)
        given = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(given, self._expected):
            return await continuation(handler_call_details)
        return self._deny


class GrpcServer:
    """The gRPC server on its own loop in a daemon thread: :meth:`start`, then :meth:`stop`.

    Args:
        backend: what the RPCs answer from.
        host, port: where to listen (port 0: any free port; :meth:`start` returns it).
        token: the bearer token every call must carry (None: open).
        tls_cert, tls_key: PEM files; both set means TLS, neither plaintext.
    """

    def __init__(
        self,
        backend: ApiBackend,
        *,
        host: str = "127.0.0.1",
        port: int = 28090,
        token: str | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("set both serve.grpc_tls_cert and serve.grpc_tls_key for TLS, or neither")
        self.backend = backend
        self.host, self.port, self._token = host, port, token
        self._tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
        self.bound_port: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def tls(self) -> bool:
        return self._tls is not None

    @property
    def address(self) -> str:
        """``host:port`` as a gRPC target (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.bound_port if self.bound_port is not None else self.port}"

    def start(self, timeout_s: float = 15.0) -> int:
        """Start serving; returns the bound port. Raises what binding raised (e.g. port in use)."""
        self._thread = threading.Thread(target=self._run, name="grpc", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"the gRPC server did not start in {timeout_s} s")
        if self._error is not None:
            raise self._error
        assert self.bound_port is not None
        return self.bound_port

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting calls, give the ones in flight ``grace_s``, close the streams."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended already
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(grace_s + 5.0)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() or logged; the daemon's HTTP API stays
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.exception("the gRPC server stopped")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        interceptors = [_BearerAuth(self._token)] if self._token else []
        # no SO_REUSEPORT: a second daemon on the same port must fail, not share its calls
        server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
        _add_service(AnalyticsService(self.backend), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            if self._tls is not None:
                cert, key = self._tls
                creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
                self.bound_port = server.add_secure_port(target, creds)
            else:
                self.bound_port = server.add_insecure_port(target)
        except (RuntimeError, OSError) as exc:
            raise ServingError(
                f"cannot serve gRPC on {target}: {exc}; pass --grpc-port 0 (any free port) or --no-grpc"
            ) from exc
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        await health_servicer.set("", serving)
        await health_servicer.set(SERVICE_NAME, serving)
        self._ready.set()
        log.info("gRPC %s listening on %s (tls: %s)", SERVICE_NAME, self.address, self.tls)
        await self._stop.wait()
        await health_servicer.enter_graceful_shutdown()
        await server.stop(5.0)
