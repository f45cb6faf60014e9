"""The live web dashboard at ``/dashboard`` on the daemon (``lambda-rt serve``).

:func:`dashboard_router` adds the page, its JSON and Server-Sent Events data
routes and its static files to the daemon's FastAPI app;
:func:`stop_live_streams` ends the open live streams so the server can stop.
Modules: :mod:`~serving.dashboard.view_range` (the URL's range),
:mod:`~serving.dashboard.source` (the engine, status, live counters),
:mod:`~serving.dashboard.snapshot` (every panel's numbers),
:mod:`~serving.dashboard.page` (the HTML), :mod:`~serving.dashboard.assets`
(the chart library from ``node_modules/``), :mod:`~serving.dashboard.routes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI

from serving.dashboard.routes import Dashboard
from serving.dashboard.snapshot import HEADLINES, build_snapshot
from serving.dashboard.view_range import RangeKey, parse_range

__all__ = [
    "HEADLINES",
    "Dashboard",
    "RangeKey",
    "build_snapshot",
    "dashboard_router",
    "parse_range",
    "stop_live_streams",
]


def dashboard_router(
    app: FastAPI, backend: Any | None, auth: Callable[..., None], *, auth_required: bool
) -> APIRouter:
    """The dashboard's routes for ``app`` (kept as ``app.state.dashboard`` for :func:`stop_live_streams`)."""
    dash = Dashboard(backend, auth, auth_required=auth_required)
    app.state.dashboard = dash
    return dash.router


def stop_live_streams(app: FastAPI) -> None:
    """End the dashboard's open streams at their next tick (call before stopping the server)."""
    dash = getattr(app.state, "dashboard", None)
    if dash is not None:
        dash.close()
