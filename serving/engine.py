"""The merge: one answer from the batch view and the speed view.

:class:`QueryEngine` runs a query in four steps:

1. read the batch state (watermark + change token, see
   :mod:`serving.batch_view`) and the speed state (applied offsets, one Redis
   round trip);
2. plan: cut the range at the watermark (:mod:`serving.plan`) and find the
   holes, the speed pieces whose Redis keys may have expired (older than the
   speed retention) - neither layer covers those;
3. look the exact key up in the cache (:mod:`serving.cache`);
4. on a miss, read every piece from its one layer, map rows to their target
   bucket, sum (additive metrics; distinct-count pieces never overlap),
   drop zeros and sort.

It owns no process-wide state and opens its clients itself unless given them.
It does not run any batch or speed job.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import redis

from batch_layer.views import redis_watermark_key
from lambda_rt.clients.clickhouse import Client, open_clickhouse
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from serving.batch_view import BatchState, BatchStateReader, read_batch_piece
from serving.cache import ResultCache
from serving.errors import CoverageHoleError
from serving.metrics import ServingMetrics
from serving.plan import Plan, make_plan
from serving.result import Coverage, Hole, LayerRange, QueryResult, SpeedFreshness
from serving.spec import QuerySpec, format_ts, make_spec
from serving.speed_view import SpeedState, key_buckets, read_speed_piece, read_speed_state
from speed_layer.keys import SpeedKeys

__all__ = ["Prepared", "QueryEngine", "find_holes"]


@dataclass(frozen=True)
class Prepared:
    """A planned query and the states it was planned under (its cache key)."""

    plan: Plan
    batch: BatchState
    speed: SpeedState
    holes: tuple[Hole, ...]

    def cache_key(self) -> tuple[object, ...]:
        touches_speed = any(p.layer == "speed" for p in self.plan.pieces)
        return (
            self.plan.spec.key(),
            self.batch.token,
            self.speed.token() if touches_speed else None,
            self.holes,
        )


def find_holes(plan: Plan, speed: SpeedState, settings: Settings, now_ms: int) -> tuple[Hole, ...]:
    """Speed pieces that the speed view cannot be trusted to hold.

    A Redis bucket key lives ``retention_hours`` after its last write, and an
    event is written at most ``max_event_future_ms`` before its bucket starts;
    a key bucket starting before ``now - retention + future`` may be gone.
    Before the speed layer applied anything, all its pieces are holes.
    """
    retention_ms = settings.speed.retention_hours * 3_600_000
    horizon = now_ms - retention_ms + settings.speed.max_event_future_ms
    holes: list[Hole] = []
    for p in plan.pieces:
        if p.layer != "speed":
            continue
        if not speed.offsets:
            holes.append(Hole(p.start_ms, p.end_ms, "the speed layer has applied nothing yet"))
            continue
        _, buckets = key_buckets(p)
        unsafe = [b for b in buckets if b * 1000 < horizon]
        if not unsafe:
            continue
        width = 60_000 if p.granularity == "minute" else 3_600_000
        end = min(p.end_ms, unsafe[-1] * 1000 + width)
        # a distinct-count target bucket is read whole: widen to its end
        end = min(p.end_ms, -(-end // plan.spec.width_ms) * plan.spec.width_ms)
        holes.append(
            Hole(
                p.start_ms,
                end,
                f"older than the speed retention ({settings.speed.retention_hours} h) and "
                f"after the batch watermark ({format_ts(plan.boundary_ms) if plan.boundary_ms else 'none'})",
            )
        )
    merged: list[Hole] = []
    for h in holes:
        if merged and merged[-1].end_ms == h.start_ms and merged[-1].reason == h.reason:
            merged[-1] = Hole(merged[-1].start_ms, h.end_ms, h.reason)
        else:
            merged.append(h)
    return tuple(merged)


class QueryEngine:
    """Answers queries in this process from ClickHouse + Redis (see the module docstring).

    Args:
        settings: the settings tree.
        clickhouse: a client to use (default: open ``settings`` ClickHouse, which
            for the embedded engine fails with ``EngineLockedError`` if another
            process owns it).
        redis_client: a Redis client to use (default: ``make_redis``).
        cache_entries: result-cache size (0 disables caching).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clickhouse: Client | None = None,
        redis_client: redis.Redis | None = None,
        cache_entries: int = 512,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.clickhouse = clickhouse if clickhouse is not None else open_clickhouse(settings)
        self._own_redis = redis_client is None
        self.redis = redis_client if redis_client is not None else make_redis(settings.redis)
        self.keys = SpeedKeys(settings.redis.key_prefix)
        self.cache = ResultCache(cache_entries)
        self.metrics = metrics or ServingMetrics()
        self.batch_state = BatchStateReader(self.clickhouse, embedded=settings.embedded_clickhouse)
        self._wm_key = redis_watermark_key(settings.redis.key_prefix)
        self._ch_lock = threading.Lock()  # one ClickHouse query at a time per client

    def close(self) -> None:
        """Close the Redis client this engine opened (the ClickHouse engine stays up)."""
        if self._own_redis:
            self.redis.close()

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prepare(self, spec: QuerySpec, *, now_ms: int | None = None) -> Prepared:
        """Steps 1-2: states, plan and holes (no data read yet)."""
        with self._ch_lock:
            batch = self.batch_state.state()
        speed = read_speed_state(self.redis, self.keys, self._wm_key)
        plan = make_plan(spec, batch.watermark_ms)
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return Prepared(plan, batch, speed, find_holes(plan, speed, self.settings, now))

    def query(
        self,
        metric: str,
        by: str | tuple[str, ...] | list[str] | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
        granularity: str = "hour",
        *,
        strict: bool = False,
        use_cache: bool = True,
    ) -> QueryResult:
        """One merged answer; see :func:`serving.connect` for the arguments.

        Raises:
            InvalidQueryError: a bad argument.
            CoverageHoleError: ``strict`` and part of the range is in no layer.
        """
        t0 = time.perf_counter()
        spec = make_spec(metric, by, start, end, granularity)
        prepared = self.prepare(spec)
        result = self.execute(prepared, use_cache=use_cache)
        self.metrics.latency.labels(cached=str(result.coverage.cached).lower()).observe(
            time.perf_counter() - t0
        )
        if result.coverage.holes:
            self.metrics.holes.inc()
            if strict:
                raise CoverageHoleError(
                    _hole_message(result.coverage.holes), result.coverage.to_dict()["holes"]
                )
        return result

    def execute(self, prepared: Prepared, *, use_cache: bool = True) -> QueryResult:
        """Steps 3-4: the cache, else read the pieces and merge."""
        freshness = SpeedFreshness(
            offsets=prepared.speed.offsets,
            last_applied_ms=prepared.speed.last_applied_ms,
            max_event_ts_ms=prepared.speed.max_event_ts_ms,
            shed=prepared.speed.shed,
        )
        key = prepared.cache_key()
        if use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                return hit.copy(hit.coverage.with_speed(freshness, cached=True))
            self.metrics.cache_misses.inc()
        result = self._compute(prepared, freshness)
        if use_cache:
            self.cache.put(key, result)
        self._observe(prepared)
        return result.copy()

    def _compute(self, prepared: Prepared, freshness: SpeedFreshness) -> QueryResult:
        plan, spec = prepared.plan, prepared.plan.spec
        frames: list[pd.DataFrame] = []
        for piece in plan.pieces:
            if piece.layer == "batch":
                with self._ch_lock:
                    frames.append(read_batch_piece(self.clickhouse, piece, spec.metric, spec.by))
            else:
                frames.append(read_speed_piece(self.redis, self.keys, piece, spec.metric, spec.by))
        frame = _merge(frames, spec)
        approximate = tuple(
            LayerRange("speed", p.start_ms, p.end_ms)
            for p in plan.pieces
            if p.layer == "speed" and spec.metric == "unique_customers"
        )
        coverage = Coverage(
            batch_through_ms=prepared.batch.watermark_ms,
            exact=not approximate and not prepared.holes,
            ranges=tuple(LayerRange(*r) for r in plan.layer_ranges()),
            holes=prepared.holes,
            speed=freshness,
            approximate_ranges=_merge_ranges(approximate),
        )
        return QueryResult(spec.metric, spec.granularity, spec.by, frame, coverage)

    def _observe(self, prepared: Prepared) -> None:
        if prepared.batch.watermark_ms is not None:
            self.metrics.watermark.set(prepared.batch.watermark_ms / 1000)
        if prepared.speed.last_applied_ms is not None:
            self.metrics.speed_last_applied.set(prepared.speed.last_applied_ms / 1000)

    def stats(self) -> dict[str, Any]:
        """Cache figures (for ``/status``)."""
        return {"entries": len(self.cache), "hits": self.cache.hits, "misses": self.cache.misses}


def _merge_ranges(ranges: tuple[LayerRange, ...]) -> tuple[LayerRange, ...]:
    out: list[LayerRange] = []
    for r in ranges:
        if out and out[-1].end_ms == r.start_ms:
            out[-1] = LayerRange(r.layer, out[-1].start_ms, r.end_ms)
        else:
            out.append(r)
    return tuple(out)


def _merge(frames: list[pd.DataFrame], spec: QuerySpec) -> pd.DataFrame:
    """Map rows to target buckets, sum, drop zeros, sort; ``bucket`` as UTC datetimes."""
    parts = [f for f in frames if not f.empty]
    keys = ["bucket_ms", *spec.by]
    if parts:
        data = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
        data["bucket_ms"] = data["bucket_ms"] // spec.width_ms * spec.width_ms
        data = data[(data["bucket_ms"] >= spec.start_ms) & (data["bucket_ms"] < spec.end_ms)]
        data = data.groupby(keys, as_index=False, sort=True)[["value"]].sum()
        data = data[data["value"] != 0]
    else:
        data = pd.DataFrame({k: pd.Series(dtype="int64") for k in [*keys, "value"]})
        if "event_type" in spec.by:
            data["event_type"] = data["event_type"].astype(object)
    # Series.to_numpy() drops the time zone and an empty column loses the dtype:
    # build the column from a DatetimeIndex so it is always datetime64[ns, UTC].
    bucket = pd.DatetimeIndex(pd.to_datetime(data["bucket_ms"].astype("int64").to_numpy(), unit="ms", utc=True))
    out = pd.DataFrame({"bucket": bucket.as_unit("ns")})
    for d in spec.by:
        out[d] = data[d].to_numpy()
    out["value"] = data["value"].astype("int64").to_numpy()
    return out.reset_index(drop=True)


def _hole_message(holes: tuple[Hole, ...]) -> str:
    first = holes[0]
    more = f" (and {len(holes) - 1} more)" if len(holes) > 1 else ""
    return (
        f"no layer covers {format_ts(first.start_ms)} to {format_ts(first.end_ms)}{more}: {first.reason}; "
        "run 'lambda-rt batch run recompute' over that range"
    )
