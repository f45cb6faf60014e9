"""The demo's live terminal view: what the platform is doing, twice a second.

:class:`Poller` reads, without touching ClickHouse in this process:

- the speed layer's Redis ``meta`` hash (messages consumed, events applied,
  DLQ counts) and the batch watermark Redis copy;
- the revenue hashes of the last two minute buckets (top stores);
- the speed process's Prometheus endpoint (lag in seconds);
- the daemon's ``/status`` (ingest counters), every few refreshes.

:func:`render` turns two consecutive :class:`Snapshot` s into a rich table.
Key names come from the read side of the layers (``speed_layer.keys``,
``batch_layer.views``), imported when a poller is built.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Group, RenderableType
from rich.table import Table

from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings

__all__ = ["Poller", "Snapshot", "render"]


@dataclass
class Snapshot:
    """One reading of the platform's counters."""

    at: float
    produced: int = 0
    messages: int = 0
    events: int = 0
    dlq: int = 0
    watermark_ms: int | None = None
    lag_s: float | None = None
    ingested: int | None = None
    top_stores: list[tuple[int, int]] = field(default_factory=list)
    phase: str = ""
    note: str = ""
    offered: float | None = None  # events/s the traffic plan offers now (None: not producing)


class Poller:
    """Reads a :class:`Snapshot`; counters are relative to when it was built."""

    def __init__(self, settings: Settings, *, daemon_url: str | None, metrics_url: str | None) -> None:
        from batch_layer.views import redis_watermark_key
        from speed_layer.keys import SpeedKeys

        self.redis = make_redis(settings.redis)
        self.keys = SpeedKeys(settings.redis.key_prefix)
        self.watermark_key = redis_watermark_key(settings.redis.key_prefix)
        self.daemon_url = daemon_url
        self.metrics_url = metrics_url
        token = settings.serve.token.get_secret_value() if settings.serve.token else None
        self.http = httpx.Client(timeout=1.5, headers={"Authorization": f"Bearer {token}"} if token else {})
        self._calls = 0
        self._ingested: int | None = None
        self.base = self._meta()
        self.base_ingested = self._daemon_ingested() or 0

    def close(self) -> None:
        self.http.close()
        self.redis.close()

    def _meta(self) -> dict[str, int]:
        raw: dict[Any, Any] = self.redis.hgetall(self.keys.meta)
        meta = {(k.decode() if isinstance(k, bytes) else str(k)): int(float(v)) for k, v in raw.items()}
        meta["dlq"] = sum(v for k, v in meta.items() if k.startswith("dlq:"))
        return meta

    def _daemon_ingested(self) -> int | None:
        if not self.daemon_url:
            return None
        try:
            status = self.http.get(f"{self.daemon_url}/status").json()
        except (httpx.HTTPError, ValueError):
            return self._ingested
        ingest = status.get("ingest") or {}
        self._ingested = int(ingest.get("inserted", 0))
        return self._ingested

    def _lag_s(self) -> float | None:
        if not self.metrics_url:
            return None
        try:
            text = self.http.get(self.metrics_url).text
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith("lrt_speed_lag_seconds "):
                return float(line.split()[1])
        return None

    def _top_stores(self, n: int = 5) -> list[tuple[int, int]]:
        now_s = int(time.time())
        minute = now_s // 60 * 60
        pipe = self.redis.pipeline()
        for b in (minute - 60, minute):
            pipe.hgetall(self.keys.agg("minute", b, "revenue"))
        totals: dict[int, int] = {}
        for h in pipe.execute():
            for k, v in h.items():
                store = int(k)
                totals[store] = totals.get(store, 0) + int(v)
        return sorted(totals.items(), key=lambda kv: -kv[1])[:n]

    def read(self, produced: int, phase: str, note: str = "") -> Snapshot:
        """A snapshot now (the daemon is asked every fourth call)."""
        meta = self._meta()
        wm = self.redis.get(self.watermark_key)
        self._calls += 1
        ingested = self._daemon_ingested() if self._calls % 4 == 1 else self._ingested
        return Snapshot(
            at=time.monotonic(),
            produced=produced,
            messages=meta.get("messages", 0) - self.base.get("messages", 0),
            events=meta.get("events", 0) - self.base.get("events", 0),
            dlq=meta.get("dlq", 0) - self.base.get("dlq", 0),
            watermark_ms=int(wm) if wm else None,
            lag_s=self._lag_s(),
            ingested=None if ingested is None else ingested - self.base_ingested,
            top_stores=self._top_stores(),
            phase=phase,
            note=note,
        )


def _rate(new: int, old: int, dt: float) -> str:
    return f"{max(0, new - old) / dt:,.0f}/s" if dt > 0 else "-"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def render(cur: Snapshot, prev: Snapshot | None) -> RenderableType:
    """The live view: platform counters and the top stores of the last minute."""
    dt = cur.at - prev.at if prev else 0.0
    p = prev or cur
    t = Table(title=f"lambda-rt demo - {cur.phase}", show_header=False, title_justify="left", min_width=72)
    t.add_column("what", style="bold")
    t.add_column("value")
    if cur.offered is not None:
        t.add_row("offered by the traffic plan", f"{cur.offered:,.0f}/s" if cur.offered else "-")
    t.add_row("events in (produced)", f"{cur.produced:,}  ({_rate(cur.produced, p.produced, dt)})")
    t.add_row("applied by the speed layer", f"{cur.events:,}  ({_rate(cur.events, p.events, dt)})")
    behind = max(0, cur.produced - cur.messages)
    lag = f"{behind:,} messages not yet consumed"
    if cur.lag_s is not None:
        lag += f"; newest applied message was produced {cur.lag_s:.1f} s ago"
    t.add_row("speed lag", lag)
    t.add_row("ingested to ClickHouse", "-" if cur.ingested is None else f"{cur.ingested:,}")
    t.add_row("dead letters (DLQ)", f"{cur.dlq:,}")
    wm = "none yet" if cur.watermark_ms is None else _iso(cur.watermark_ms)
    t.add_row("batch watermark", wm)
    if cur.note:
        t.add_row("now", cur.note)
    stores = Table(
        title="top stores by revenue, current + previous minute (speed view)", title_justify="left"
    )
    stores.add_column("store", justify="right")
    stores.add_column("revenue", justify="right")
    for store, cents in cur.top_stores:
        stores.add_row(str(store), f"${cents / 100:,.2f}")
    return Group(t, stores)
