"""One dashboard snapshot: every panel's data for a range, as one JSON-able dict.

:func:`build_snapshot` asks the engine the same questions as ``lambda-rt
query`` (``events`` by store and event type, ``revenue``, ``orders`` and
``payment_failures`` by store), filters the store in the rows and sums them,
so each headline number equals the sum of that query's rows for the same
range and store. The series keep the layer that served each bucket, and a
bucket inside a coverage hole has no value (None, drawn as a gap), never 0;
a bucket missing from the rows outside any hole is 0 (the views omit zeros).

Panels that depend on work still to come (the campaign dimension, alerts)
report ``available: false`` with a label instead of failing, and a panel
that fails on its own (its data source errors) carries a note; only the
headline queries failing makes the whole snapshot an error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from serving.dashboard.source import LiveSampler, Source
from serving.dashboard.view_range import RangeKey, ViewRange, resolve
from serving.errors import InvalidQueryError
from serving.result import Coverage, QueryResult
from serving.spec import GRANULARITY_MS, format_ts

__all__ = ["HEADLINES", "build_snapshot"]

log = logging.getLogger(__name__)

HEADLINES = ("revenue", "orders", "events", "payment_failures")
"""The headline metrics (``data-testid``: ``total-revenue``, ``total-orders``, ``total-events``,
``payment-failures``)."""

_TOP_STORES = 10


def _ms(frame: pd.DataFrame) -> np.ndarray:
    return frame["bucket"].dt.as_unit("ms").astype("int64").to_numpy()


def _store(frame: pd.DataFrame, store_id: int | None) -> pd.DataFrame:
    if store_id is None or frame.empty:
        return frame
    return frame[frame["store_id"] == store_id]


def _layer_of(cov: Coverage, start: int, end: int) -> str:
    """``batch``, ``speed``, ``mixed`` (a bucket tiled across the watermark) or ``hole``."""
    if any(h.start_ms < end and start < h.end_ms for h in cov.holes):
        return "hole"
    layers = {r.layer for r in cov.ranges if r.start_ms < end and start < r.end_ms}
    return layers.pop() if len(layers) == 1 else "mixed" if layers else "hole"


def _grid(vr: ViewRange) -> list[int]:
    w = vr.width_ms
    first = vr.start_ms // w * w
    return list(range(first, -(-vr.end_ms // w) * w, w))


def _series(frame: pd.DataFrame, grid: list[int], layers: list[str]) -> list[int | None]:
    sums: dict[int, int] = {}
    if not frame.empty:
        s = frame.groupby(_ms(frame))["value"].sum()
        sums = dict(zip(s.index.tolist(), s.to_numpy().tolist(), strict=True))
    return [None if layer == "hole" else sums.get(b, 0) for b, layer in zip(grid, layers, strict=True)]


def _coverage(cov: Coverage) -> dict[str, Any]:
    return {
        "batch_through": format_ts(cov.batch_through_ms) if cov.batch_through_ms is not None else None,
        "batch_through_ms": cov.batch_through_ms,
        "exact": cov.exact,
        "complete": cov.complete,
        "ranges": [{"layer": r.layer, "start_ms": r.start_ms, "end_ms": r.end_ms} for r in cov.ranges],
        "holes": [{"start_ms": h.start_ms, "end_ms": h.end_ms, "reason": h.reason} for h in cov.holes],
    }


def _panel(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One panel's data, or a note saying why it is unavailable (never a page error)."""
    try:
        return fn()
    except Exception as exc:  # a panel's own failure is shown in that panel only
        log.warning("dashboard panel %s failed: %s", name, exc)
        return {"available": False, "note": f"unavailable: {type(exc).__name__}: {exc}"}


def _uniques(source: Source, vr: ViewRange) -> dict[str, Any]:
    # per-store distinct counts exist per hour only in the speed view (serving.spec)
    gran = "hour" if vr.store_id is not None and vr.granularity == "minute" else vr.granularity
    by: tuple[str, ...] = ("store_id",) if vr.store_id is not None else ()
    res = source.query("unique_customers", by, vr.start_ms, vr.end_ms, gran)
    w = GRANULARITY_MS[gran]
    grid = list(range(vr.start_ms // w * w, -(-vr.end_ms // w) * w, w))
    cov = res.coverage
    frame = _store(res.frame, vr.store_id)
    values = dict(zip(_ms(frame).tolist(), frame["value"].astype("int64").tolist(), strict=True))
    holes = [_layer_of(cov, b, b + w) == "hole" for b in grid]
    approx = [any(r.start_ms < b + w and b < r.end_ms for r in cov.approximate_ranges) for b in grid]
    return {
        "available": True,
        "granularity": gran,
        "t": grid,
        "values": [None if h else int(values.get(b, 0)) for b, h in zip(grid, holes, strict=True)],
        "exact": [not (h or a) for h, a in zip(holes, approx, strict=True)],
    }


def _funnel(source: Source, vr: ViewRange) -> dict[str, Any]:
    try:
        res = source.query("events", ("campaign_id", "event_type"), vr.start_ms, vr.end_ms, vr.granularity)
    except InvalidQueryError:  # the campaign dimension does not exist in this build
        return {"available": False, "note": "no campaigns yet", "rows": []}
    f = res.frame
    f = f[f["campaign_id"].astype(str) != ""] if not f.empty else f
    if f.empty:
        return {"available": False, "note": "no campaigns yet", "rows": []}
    pivot = f.pivot_table(
        index="campaign_id", columns="event_type", values="value", aggfunc="sum", fill_value=0
    )
    rows: list[dict[str, Any]] = []
    for campaign, r in pivot.iterrows():
        views, carts, orders = (int(r.get(t, 0)) for t in ("page_view", "add_to_cart", "order_placed"))
        rows.append(
            {
                "campaign_id": str(campaign),
                "views": views,
                "carts": carts,
                "orders": orders,
                "conversion": round(orders / views, 4) if views else None,
            }
        )
    rows.sort(key=lambda r: (-r["orders"], r["campaign_id"]))
    note = "all stores (campaigns are not kept per store)" if vr.store_id is not None else ""
    return {"available": True, "note": note, "rows": rows[:20]}


def _alerts(source: Source, vr: ViewRange) -> dict[str, Any]:
    rows = source.alerts()
    if rows is None:
        return {"available": False, "note": "no alerts yet", "rows": []}
    if vr.store_id is not None:
        rows = [a for a in rows if a.get("store_id") in (None, vr.store_id)]
    if not rows:
        return {"available": False, "note": "no alerts yet", "rows": []}
    keep = ("alert_id", "rule", "severity", "store_id", "key", "value", "threshold", "status", "detected_at")
    return {"available": True, "note": "", "rows": [{k: a.get(k) for k in keep} for a in rows[:50]]}


def _platform(source: Source) -> dict[str, Any]:
    st = source.status()
    return {
        "available": True,
        "watermark": st.get("watermark"),
        "batch_lag_s": st.get("batch_lag_s"),
        "tiers": {
            name: {**t, "compression": st.get("compression", {}).get(name)}
            for name, t in st.get("tiers", {}).items()
        },
        "jobs": list(st.get("jobs", []))[:10],
        "ingest": st.get("ingest", {}),
    }


def _totals(source: Source, vr: ViewRange, charts: dict[str, QueryResult]) -> dict[str, pd.DataFrame]:
    """The rows the headline sums: the chart's when its buckets tile the range, else minute rows."""
    w = vr.width_ms
    if vr.start_ms % w == 0 and vr.end_ms % w == 0:
        return {m: r.frame for m, r in charts.items()}
    return {m: source.query(m, r.by, vr.start_ms, vr.end_ms, "minute").frame for m, r in charts.items()}


def build_snapshot(
    source: Source, key: RangeKey, sampler: LiveSampler | None = None, now_ms: int | None = None
) -> dict[str, Any]:
    """Every panel for ``key`` now (see the module docstring for what each holds)."""
    t0 = time.perf_counter()
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    vr = resolve(key, now)
    charts = {
        "events": source.query("events", ("store_id", "event_type"), vr.start_ms, vr.end_ms, vr.granularity),
        "revenue": source.query("revenue", ("store_id",), vr.start_ms, vr.end_ms, vr.granularity),
        "orders": source.query("orders", ("store_id",), vr.start_ms, vr.end_ms, vr.granularity),
        "payment_failures": source.query(
            "payment_failures", ("store_id",), vr.start_ms, vr.end_ms, vr.granularity
        ),
    }
    unfiltered = _totals(source, vr, charts)
    totals = {m: _store(f, vr.store_id) for m, f in unfiltered.items()}
    ev = totals["events"]
    payments = int(ev.loc[ev["event_type"] == "payment", "value"].sum()) if not ev.empty else 0
    headline: dict[str, Any] = {m: int(f["value"].sum()) if not f.empty else 0 for m, f in totals.items()}
    headline["payments"] = payments
    # unrounded: its data-value is the exact ratio of the two integers (the page rounds what it shows)
    headline["failure_rate"] = headline["payment_failures"] / payments if payments else None
    cov = charts["revenue"].coverage
    headline["complete"] = all(r.coverage.complete for r in charts.values())

    grid = _grid(vr)
    layers = [_layer_of(cov, b, b + vr.width_ms) for b in grid]
    series: dict[str, Any] = {"t": grid, "layer": layers}
    for m in ("revenue", "orders", "events"):
        series[m] = _series(_store(charts[m].frame, vr.store_id), grid, layers)

    top = _top_stores(unfiltered["revenue"], unfiltered["orders"])
    meta = source.speed_meta()
    if sampler is not None:
        sampler.sample(meta, now)
    live: dict[str, Any] = (
        dict(sampler.series(now)) if sampler is not None else {"t": [], "events_per_s": [], "lag_s": []}
    )
    mx, applied = meta.get("max_event_ts"), meta.get("last_applied_ms")
    live["last_applied"] = format_ts(applied) if applied else None
    live["max_event_time"] = format_ts(mx) if mx else None
    live["shed"] = {k.removeprefix("shed:"): v for k, v in meta.items() if k.startswith("shed:") and v}
    return {
        "generated_at": format_ts(now),
        "now_ms": now,
        "range": vr.to_dict(),
        "headline": headline,
        "coverage": _coverage(cov),
        "series": series,
        "top_stores": top,
        "uniques": _panel("uniques", lambda: _uniques(source, vr)),
        "funnel": _panel("funnel", lambda: _funnel(source, vr)),
        "alerts": _panel("alerts", lambda: _alerts(source, vr)),
        "platform": _panel("platform", lambda: _platform(source)),
        "live": live,
        "compute_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


def _top_stores(revenue: pd.DataFrame, orders: pd.DataFrame) -> list[dict[str, int]]:
    """Every store's revenue and orders over the range, the best first (the store filter's choices)."""
    if revenue.empty:
        return []
    rev = revenue.groupby("store_id")["value"].sum().sort_values(ascending=False, kind="stable")
    cnt = orders.groupby("store_id")["value"].sum() if not orders.empty else pd.Series(dtype="int64")
    return [
        {"store_id": int(s), "revenue": int(v), "orders": int(cnt.get(s, 0))}
        for s, v in zip(rev.index[:_TOP_STORES].tolist(), rev.to_numpy()[:_TOP_STORES].tolist(), strict=True)
    ]
