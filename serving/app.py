"""The daemon's HTTP JSON API (FastAPI), over one :class:`~serving.engine.QueryEngine`.

``GET /query`` takes the Python API's parameters and returns the CLI's JSON
shape (or, with ``format=arrow``, the rows as an Arrow IPC stream with the
coverage JSON in its schema metadata: what :class:`serving.HttpClient`
uses); ``GET /status`` the watermark, tier sizes, job history and cache
figures; ``POST /jobs/{kind}`` runs a batch job in the daemon (what
``lambda-rt batch run`` uses while the daemon owns the engine; 409 when the
same job is already running); ``GET
/metrics`` the Prometheus text; ``GET /healthz`` liveness. With
``settings.serve.token`` set every route but ``/healthz`` needs
``Authorization: Bearer <token>``. The OpenAPI document is checked in as
``serving/openapi.json`` (``python -m serving.app`` prints it). The live web
dashboard (``/dashboard``, :mod:`serving.dashboard`) is mounted here too.

The app holds no engine of its own: the daemon (:mod:`lambda_rt.daemon`)
passes in an :class:`AppBackend` (the tests and ``python -m serving.app``
build it without any). :func:`create_app` is the one function that builds the
app: a new route goes there.
"""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, Protocol

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from lambda_rt.errors import JobRunningError, LambdaRTError
from serving.dashboard import dashboard_router
from serving.errors import CoverageHoleError, InvalidQueryError

__all__ = ["API_VERSION", "ARROW_MEDIA_TYPE", "AppBackend", "create_app", "openapi_document"]

API_VERSION = "1"
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"


class AppBackend(Protocol):
    """What the routes call; the daemon provides the real one."""

    def query(
        self,
        metric: str,
        by: str | None,
        start: str | None,
        end: str | None,
        granularity: str,
        strict: bool,
        fmt: str = "json",
    ) -> bytes | dict[str, Any]:
        """The body: JSON or Arrow IPC bytes, or an object to encode as JSON."""
        ...

    def status(self) -> dict[str, Any]: ...

    def run_job(self, kind: str, start: str | None, end: str | None) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...


def create_app(
    backend: AppBackend | None = None,
    token: str | None = None,
    *,
    graphql: Callable[[FastAPI], object] | None = None,
) -> FastAPI:
    """The FastAPI app over ``backend`` (``None``: every route but ``/healthz`` answers 503).

    ``graphql`` mounts ``/graphql`` on the app (the daemon passes
    :func:`serving.api_hosting.graphql_mounter`'s; it is not in the OpenAPI document).
    """
    app = FastAPI(
        title="lambda-rt serving",
        version=API_VERSION,
        description="Merged batch + speed views of the lambda-rt metrics, with coverage metadata.",
    )

    def auth(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    def need() -> AppBackend:
        if backend is None:
            raise HTTPException(status_code=503, detail="no engine")
        return backend

    @app.exception_handler(InvalidQueryError)
    async def _invalid(_: Request, exc: InvalidQueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    # A 409's detail names its error type, so serving.HttpClient raises the same type again.
    @app.exception_handler(CoverageHoleError)
    async def _hole(_: Request, exc: CoverageHoleError) -> JSONResponse:
        detail = {"error": "CoverageHoleError", "message": str(exc), "holes": exc.holes}
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(JobRunningError)
    async def _job_running(_: Request, exc: JobRunningError) -> JSONResponse:
        detail = {"error": "JobRunningError", "message": str(exc), "job": exc.job}
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(LambdaRTError)
    async def _error(_: Request, exc: LambdaRTError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": f"{type(exc).__name__}: {exc}"})

    @app.get("/healthz", summary="Liveness")
    def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/query", summary="One merged metric", dependencies=[Depends(auth)])
    def query(
        metric: Annotated[str, Query(description="events, orders, revenue, refunds, unique_customers, ...")],
        by: Annotated[
            str | None, Query(description="store_id, event_type (product_id: inventory_delta), campaign_id")
        ] = None,
        start: Annotated[str | None, Query(description="ISO-8601 (default: end - 24 h)")] = None,
        end: Annotated[str | None, Query(description="ISO-8601, exclusive (default: now)")] = None,
        granularity: Annotated[str, Query(description="minute, hour or day")] = "hour",
        strict: Annotated[bool, Query(description="409 instead of reporting a hole")] = False,
        format: Annotated[
            str, Query(description="json (default), or arrow: an Arrow IPC stream, coverage in its metadata")
        ] = "json",
    ) -> Response:
        if format == "arrow":  # what serving.HttpClient asks for: no JSON rows to build or parse
            body = need().query(metric, by, start, end, granularity, strict, "arrow")
            return Response(content=body, media_type=ARROW_MEDIA_TYPE)
        if format != "json":
            raise InvalidQueryError(f"unknown format {format!r}: use json or arrow")
        # JSON bytes from the backend (a cached result keeps its own), or a plain dict
        # through orjson: FastAPI's generic encoder costs ~10x more on thousands of rows
        result = need().query(metric, by, start, end, granularity, strict)
        body = result if isinstance(result, bytes) else orjson.dumps(result)
        return Response(content=body, media_type="application/json")

    @app.get("/status", summary="Watermark, tiers, job history", dependencies=[Depends(auth)])
    def status() -> dict[str, Any]:
        out: dict[str, Any] = need().status()
        return out

    @app.post("/jobs/{kind}", summary="Run a batch job in the daemon", dependencies=[Depends(auth)])
    def jobs(kind: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = need().run_job(kind, start, end)
        return out

    @app.get("/metrics", summary="Prometheus metrics", dependencies=[Depends(auth)])
    def metrics() -> Response:
        return Response(content=need().metrics(), media_type="text/plain; version=0.0.4")

    # the live web dashboard (/dashboard, outside the OpenAPI document): serving/dashboard/
    app.include_router(dashboard_router(app, backend, auth, auth_required=token is not None))
    if graphql is not None:
        graphql(app)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the daemon serves (``serving/openapi.json``)."""
    doc: dict[str, Any] = create_app().openapi()
    return doc


if __name__ == "__main__":
    json.dump(openapi_document(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
