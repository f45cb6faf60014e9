"""The ``/dashboard`` routes on the daemon's FastAPI app.

- ``GET /dashboard?start=&end=&store_id=``: the page (see :mod:`serving.dashboard.page`);
- ``GET /dashboard/api/snapshot``: one snapshot as JSON;
- ``GET /dashboard/api/stream``: Server-Sent Events, one ``snapshot`` event
  per tick (about once a second) from a :class:`~serving.live.LiveHub`: every
  viewer of the same range shares one computation per tick, so 100 open
  dashboards cost about what one costs. Each event is a whole snapshot, so a
  browser that reconnects is up to date with its first event;
- ``GET /dashboard/static/...``: the page's own script and style, and
  plotly.js's basic bundle from ``node_modules/`` (see
  :mod:`serving.dashboard.assets`: nothing is loaded from the internet, no
  third-party code is in the repository).

The data routes take the same bearer token as the JSON API (the ``auth``
dependency of :func:`serving.app.create_app`); the page and its static files
carry no data and are served without it, so the page can ask for the token.
Streams end when :meth:`Dashboard.close` is called (the daemon does it on
SIGTERM, before uvicorn waits for open responses to finish).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from serving.dashboard.assets import MISSING_HINT, chart_lib
from serving.dashboard.page import STATIC_FILES, render_page
from serving.dashboard.snapshot import build_snapshot
from serving.dashboard.source import EngineSource, LiveSampler, Source
from serving.dashboard.view_range import RangeKey, parse_range
from serving.errors import InvalidQueryError
from serving.live import LiveHub, Snapshot

__all__ = ["Dashboard", "Frame"]

log = logging.getLogger(__name__)

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


@dataclass(frozen=True)
class Frame:
    """A snapshot and its JSON, serialised once per tick for every viewer."""

    data: dict[str, Any]
    body: bytes


class Dashboard:
    """The dashboard's state on one app: its data source, live hub and sampler.

    Args:
        backend: what hosts the API (the daemon); None answers 503 on data routes.
        auth: the app's bearer-token dependency.
        auth_required: whether a token is set (the page then asks for it).
        interval_s: the live tick.
        source: a :class:`Source` to use instead of one over ``backend``.
    """

    def __init__(
        self,
        backend: Any | None,
        auth: Callable[..., None],
        *,
        auth_required: bool,
        interval_s: float = 1.0,
        source: Source | None = None,
        max_streams: int = 1000,
    ) -> None:
        self.source: Source | None = source or (EngineSource(backend) if backend is not None else None)
        self.sampler = LiveSampler()
        self.hub: LiveHub[RangeKey, Frame] = LiveHub(self._frame, interval_s=interval_s)
        self.auth_required = auth_required
        self.max_streams = max_streams
        self.closing = False
        self.router = self._routes(auth)
        chart_lib()  # read and gzipped once at start (a warning now if it is not installed)

    def close(self) -> None:
        """End every open stream at its next tick (safe from a signal handler)."""
        self.closing = True

    def snapshot(self, key: RangeKey) -> dict[str, Any]:
        """One snapshot now (not shared: the page and ``/api/snapshot`` use it)."""
        if self.source is None:
            raise HTTPException(status_code=503, detail="no engine")
        return build_snapshot(self.source, key, self.sampler)

    def _frame(self, key: RangeKey) -> Frame:
        data = self.snapshot(key)
        return Frame(data, orjson.dumps(data, option=_JSON_OPTS))

    @property
    def plotly_url(self) -> str:
        lib = chart_lib()
        return f"/dashboard/static/{lib.name if lib else 'plotly-basic-missing.min.js'}"

    def _routes(self, auth: Callable[..., None]) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        def key_of(request: Request) -> RangeKey:
            q = request.query_params
            return parse_range(q.get("start"), q.get("end"), q.get("store_id"))

        @router.get("/dashboard", response_class=HTMLResponse)
        async def page(request: Request) -> HTMLResponse:
            try:
                key = key_of(request)
            except InvalidQueryError as exc:
                body = render_page(
                    None, auth_required=self.auth_required, plotly_url=self.plotly_url, error=str(exc)
                )
                return HTMLResponse(body, status_code=422)
            snap = None
            if not self.auth_required and self.source is not None:
                snap = await asyncio.to_thread(self.snapshot, key)
            body = render_page(snap, auth_required=self.auth_required, plotly_url=self.plotly_url)
            return HTMLResponse(body, headers={"Cache-Control": "no-store"})

        @router.get("/dashboard/api/snapshot", dependencies=[Depends(auth)])
        async def snapshot(request: Request) -> Response:
            key = key_of(request)
            data = await asyncio.to_thread(self.snapshot, key)
            return Response(orjson.dumps(data, option=_JSON_OPTS), media_type="application/json")

        @router.get("/dashboard/api/stream", dependencies=[Depends(auth)])
        async def stream(request: Request) -> StreamingResponse:
            key = key_of(request)
            if self.source is None:
                raise HTTPException(status_code=503, detail="no engine")
            if self.hub.subscribers >= self.max_streams:
                raise HTTPException(status_code=503, detail="too many open dashboards")
            return StreamingResponse(
                self._events(key),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )

        @router.get("/dashboard/static/{name}")
        async def static(name: str, request: Request) -> Response:
            if name.startswith("plotly-basic-"):
                lib = chart_lib()
                if lib is None:
                    raise HTTPException(status_code=404, detail=MISSING_HINT)
                if name != lib.name:
                    raise HTTPException(status_code=404, detail=f"no such file (the page loads {lib.name})")
                # a versioned URL: browsers keep it a year without asking again
                headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
                if "gzip" in request.headers.get("accept-encoding", ""):
                    headers["Content-Encoding"] = "gzip"
                    return Response(lib.gzipped, media_type="text/javascript", headers=headers)
                return Response(lib.body, media_type="text/javascript", headers=headers)
            if name not in STATIC_FILES:
                raise HTTPException(status_code=404, detail="no such file")
            text = resources.files("serving.dashboard").joinpath("static", name).read_bytes()
            return Response(text, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})

        return router

    async def _events(self, key: RangeKey) -> AsyncIterator[bytes]:
        """SSE frames: ``retry`` first (EventSource-style clients reconnect after 1 s), then snapshots."""
        yield b"retry: 1000\n\n"
        agen = cast(AsyncGenerator[Snapshot[Frame], None], self.hub.subscribe(key))
        try:
            async for snap in agen:
                if self.closing:
                    return
                if snap.value is not None:
                    yield b"id: %d\nevent: snapshot\ndata: " % snap.tick + snap.value.body + b"\n\n"
                else:
                    err = orjson.dumps({"error": snap.error or "no data"})
                    yield b"id: %d\nevent: problem\ndata: " % snap.tick + err + b"\n\n"
        finally:
            await agen.aclose()
