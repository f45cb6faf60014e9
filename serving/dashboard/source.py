"""Where the dashboard's numbers come from: the daemon's engine, status and Redis.

:class:`EngineSource` adapts whatever hosts the HTTP API (the daemon's
``Daemon``: an ``engine`` attribute holding a :class:`~serving.engine.QueryEngine`
and a ``status()`` method; optionally ``alerts()`` once detection exists) to
the few calls the snapshot builder makes. It asks the same engine as
``GET /query``, so the page and ``lambda-rt query`` cannot disagree. The
status (tiers, job history) costs several ClickHouse queries and changes
slowly: it is kept for a few seconds rather than read every tick.

:class:`LiveSampler` turns the speed layer's cumulative counters (Redis
``meta``) into the live events/s and lag series, one sample per tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from serving.result import QueryResult

__all__ = ["EngineSource", "LiveSample", "LiveSampler", "Source"]

log = logging.getLogger(__name__)


class Source(Protocol):
    """The calls a dashboard snapshot needs."""

    def query(self, metric: str, by: tuple[str, ...], start_ms: int, end_ms: int, gran: str) -> QueryResult:
        """One merged answer (the engine's, with coverage)."""
        ...

    def status(self) -> dict[str, Any]:
        """``GET /status``'s document (watermark, tiers, jobs)."""
        ...

    def speed_meta(self) -> dict[str, int]:
        """The speed layer's counters (``P:meta``)."""
        ...

    def alerts(self) -> list[dict[str, Any]] | None:
        """Recent alerts, newest first; None while the platform has no alerting."""
        ...


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class EngineSource:
    """:class:`Source` over the daemon (its ``engine`` and ``status()``)."""

    def __init__(self, host: Any, status_ttl_s: float = 3.0) -> None:
        self._host = host
        self._status_ttl_s = status_ttl_s
        self._status: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    @property
    def _engine(self) -> Any:
        return self._host.engine

    def query(self, metric: str, by: tuple[str, ...], start_ms: int, end_ms: int, gran: str) -> QueryResult:
        result: QueryResult = self._engine.query(metric, by, _dt(start_ms), _dt(end_ms), gran)
        return result

    def status(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._status is None or now - self._status[0] > self._status_ttl_s:
                status = dict(self._host.status())
                status["compression"] = self._compression()
                self._status = (now, status)
            return self._status[1]

    def _compression(self) -> dict[str, float]:
        """Uncompressed / compressed bytes per ClickHouse table (``/status`` has bytes on disk only)."""
        engine = self._engine
        sql = (
            "SELECT table, sum(data_uncompressed_bytes), sum(data_compressed_bytes) FROM system.parts "
            "WHERE database = currentDatabase() AND active GROUP BY table"
        )
        try:
            with engine._ch_lock:  # the engine's one-query-at-a-time lock on its client, as /status takes it
                rows = engine.clickhouse.query(sql).result_rows
        except Exception as exc:  # the tiers panel shows no ratio rather than failing
            log.warning("compression figures unavailable: %s", exc)
            return {}
        return {str(t): round(int(u) / int(c), 2) for t, u, c in rows if int(c)}

    def speed_meta(self) -> dict[str, int]:
        engine = self._engine
        raw: dict[Any, Any] = engine.redis.hgetall(engine.keys.meta)
        out: dict[str, int] = {}
        for k, v in raw.items():
            try:
                out[k.decode() if isinstance(k, bytes) else str(k)] = int(float(v))
            except (TypeError, ValueError):
                continue
        return out

    def alerts(self) -> list[dict[str, Any]] | None:
        fn = getattr(self._host, "alerts", None)
        if fn is None:  # no detection stage in this build: the panel says "no alerts yet"
            return None
        rows = fn()
        return list(rows) if rows is not None else None


@dataclass(frozen=True)
class LiveSample:
    """One tick's reading: applied events/s since the previous sample, and the lag."""

    at_ms: int
    events_per_s: float | None
    lag_s: float | None
    since_apply_s: float | None


class LiveSampler:
    """Rates from the speed layer's cumulative ``events`` counter, kept for ``keep_s``.

    ``lag_s`` is now minus the newest event time the speed layer applied
    (``max_event_ts``): for live traffic, how far behind the real world the
    speed view is. ``since_apply_s`` is how long ago it last applied a batch.
    Thread-safe: ticks for several ranges may sample at once; samples closer
    than ``min_gap_s`` are not taken twice.
    """

    def __init__(self, keep_s: float = 600.0, min_gap_s: float = 0.5) -> None:
        self._samples: deque[LiveSample] = deque(maxlen=int(keep_s / min_gap_s) + 1)
        self._keep_ms = int(keep_s * 1000)
        self._min_gap_ms = int(min_gap_s * 1000)
        self._last: tuple[int, int] | None = None  # (at_ms, events counter)
        self._lock = threading.Lock()

    def sample(self, meta: dict[str, int], now_ms: int | None = None) -> None:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        with self._lock:
            if self._last is not None and now - self._last[0] < self._min_gap_ms:
                return
            events = meta.get("events", 0)
            rate = None
            if self._last is not None and events >= self._last[1]:
                rate = (events - self._last[1]) * 1000 / (now - self._last[0])
            mx, applied = meta.get("max_event_ts"), meta.get("last_applied_ms")
            self._samples.append(
                LiveSample(
                    now,
                    None if rate is None else round(rate, 1),
                    None if not mx else round(max(0.0, (now - mx) / 1000), 2),
                    None if not applied else round(max(0.0, (now - applied) / 1000), 2),
                )
            )
            self._last = (now, events)

    def series(self, now_ms: int | None = None) -> dict[str, list[Any]]:
        """Columns for the chart: ``t`` (epoch ms), ``events_per_s``, ``lag_s``, ``since_apply_s``."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        with self._lock:
            rows = [s for s in self._samples if now - s.at_ms <= self._keep_ms]
        return {
            "t": [s.at_ms for s in rows],
            "events_per_s": [s.events_per_s for s in rows],
            "lag_s": [s.lag_s for s in rows],
            "since_apply_s": [s.since_apply_s for s in rows],
        }
