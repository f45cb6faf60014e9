"""The daemon's HTTP JSON API (FastAPI), over one :class:`~serving.engine.QueryEngine`.

``GET /query`` takes the Python API's parameters and returns the CLI's JSON
shape (or, with ``format=arrow``, the rows as an Arrow IPC stream with the
coverage JSON in its schema metadata: what :class:`serving.HttpClient`
uses); ``GET /status`` the watermark, tier sizes, job history and cache
figures; ``POST /jobs/{kind}`` runs a batch job in the daemon (what
``lambda-rt batch run`` uses while the daemon owns the engine); ``GET
/metrics`` the Prometheus text; ``GET /healthz`` liveness. With
``settings.serve.token`` set every route but ``/healthz`` needs
``Authorization: Bearer <token>``. The OpenAPI document is checked in as
``serving/openapi.json`` (``python -m serving.app`` prints it).

The app holds no engine of its own: the daemon passes one in (the tests and
``python -m serving.app`` build it without any).
"""

from __future__ import annotations

import hmac
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from lambda_rt.errors import LambdaRTError
from serving.errors import CoverageHoleError, InvalidQueryError

__all__ = ["API_VERSION", "ARROW_MEDIA_TYPE", "create_app", "openapi_document"]

API_VERSION = "1"
ARROW_MEDIA_TYPE = "application/vnd.apache.arrow.stream"


class _Backend:
    """What the routes call; the daemon provides the real one."""

    query: Callable[..., bytes | dict[str, Any]]  # the JSON body, or the object to encode
    status: Callable[[], dict[str, Any]]
    run_job: Callable[[str, str | None, str | None], dict[str, Any]]
    metrics: Callable[[], bytes]


def create_app(backend: Any | None = None, token: str | None = None) -> FastAPI:
    """The FastAPI app; ``backend`` has ``query``, ``status``, ``run_job`` and ``metrics``."""
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

    def need() -> Any:
        if backend is None:
            raise HTTPException(status_code=503, detail="no engine")
        return backend

    @app.exception_handler(InvalidQueryError)
    async def _invalid(_: Request, exc: InvalidQueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(CoverageHoleError)
    async def _hole(_: Request, exc: CoverageHoleError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": {"message": str(exc), "holes": exc.holes}})

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

    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the daemon serves (``serving/openapi.json``)."""
    doc: dict[str, Any] = create_app().openapi()
    return doc


if __name__ == "__main__":
    json.dump(openapi_document(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
