"""The merge: one answer from the batch view and the speed view.

:class:`QueryEngine` runs a query in four steps:

1. read the batch state (watermark + change token, see
   :mod:`serving.batch_view`) and the speed state (applied offsets, one Redis
   round trip);
2. plan: cut the range at the watermark (:mod:`serving.plan`) and find the
   holes, the speed pieces whose Redis keys may have expired (older than the
   speed retention) - neither layer covers those;
3. look the exact key up in the cache (:mod:`serving.cache`);
4. on a miss, read every piece from its one layer (the batch pieces from
   the in-memory copy of the batch views, :mod:`serving.batch_copy`, loaded
   once per batch version; all speed pieces in one Redis pipeline), then
   group by (target bucket, dims) with numpy (a sort and ``np.add.reduceat``;
   distinct-count pieces never overlap), drop zeros. Only when the batch
   pieces need more rows than the copy's budget do they come from one
   aggregating ClickHouse query instead.

A cache hit returns the prebuilt :class:`QueryResult` itself (no copy: it is
shared, treat it as read-only) after a dict lookup; the freshness check in
front of it costs a ``stat`` of the batch tables and one Redis round trip.

Under load the speed layer may shed low-priority event types from its path
(never from the batch path): a speed bucket that shed events of a type the
metric counts is named in ``coverage.shed_ranges`` with the counts, and the
answer is not exact until the batch view covers it. The speed state's shed
totals gate that read, so a view that never shed costs nothing more.

The speed view is a hole while the speed layer rebuilds it after losing its
state (``rebuilding`` = 1) and whenever its ``epoch`` key is missing (state
lost and not noticed yet): see the state contract in :mod:`speed_layer.keys`.

It owns no process-wide state and opens its clients itself unless given them.
It does not run any batch or speed job.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import redis

from batch_layer.views import redis_watermark_key
from lambda_rt.clients.clickhouse import Client, open_clickhouse
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.vocabulary import HOUR_MS
from serving.batch_copy import BatchCopy
from serving.batch_view import BatchState, BatchStateReader, read_batch_pieces
from serving.cache import ResultCache
from serving.campaign_view import CampaignCodes, read_campaign_pieces
from serving.errors import CoverageHoleError
from serving.metrics import ServingMetrics
from serving.plan import Piece, Plan, make_plan
from serving.result import Coverage, Hole, LayerRange, QueryResult, ShedRange, SpeedFreshness
from serving.spec import QuerySpec, counted_event_types, format_ts, make_spec
from serving.speed_view import (
    EVENT_TYPE_NAMES,
    Columns,
    SpeedSnapshot,
    key_buckets,
    read_shed,
    read_speed_pieces,
    read_speed_snapshot,
)
from serving.status import status_of
from speed_layer.keys import SpeedKeys

__all__ = ["REBUILDING_REASON", "STATE_LOST_REASON", "Prepared", "QueryEngine", "find_holes"]

REBUILDING_REASON = "speed view rebuilding after state loss (replaying the topic)"
STATE_LOST_REASON = "speed view state lost (no epoch key): not rebuilt yet"


@dataclass(frozen=True)
class Prepared:
    """A planned query and the states it was planned under (its cache key)."""

    plan: Plan
    batch: BatchState
    speed: SpeedSnapshot
    holes: tuple[Hole, ...]

    def cache_key(self) -> tuple[object, ...]:
        touches_speed = any(p.layer == "speed" for p in self.plan.pieces)
        return (
            self.plan.spec.key(),
            self.batch.token,
            self.speed.token() if touches_speed else None,
            self.holes,
        )


def find_holes(plan: Plan, speed: SpeedSnapshot, settings: Settings, now_ms: int) -> tuple[Hole, ...]:
    """Speed pieces that the speed view cannot be trusted to hold.

    - Before the speed layer applied anything, all its pieces are holes.
    - While it rebuilds its view after finding no state (``rebuilding`` = 1),
      or when the view's ``epoch`` key is missing (the state was lost and no
      running speed process noticed yet), every bucket may be short: all its
      pieces are holes.
    - A Redis bucket key lives ``retention_hours`` after its last write, and
      an event is written at most ``max_event_future_ms`` before its bucket
      starts; a key bucket starting before ``now - retention + future`` may be
      gone.
    """
    retention_ms = settings.speed.retention_hours * HOUR_MS
    horizon = now_ms - retention_ms + settings.speed.max_event_future_ms
    holes: list[Hole] = []
    whole = None
    if speed.rebuilding:
        whole = REBUILDING_REASON
    elif not speed.offsets:
        whole = "the speed layer has applied nothing yet"
    elif speed.epoch_ms is None:
        whole = STATE_LOST_REASON
    for p in plan.pieces:
        if p.layer != "speed":
            continue
        if whole is not None:
            holes.append(Hole(p.start_ms, p.end_ms, whole))
            continue
        _, buckets = key_buckets(p)
        if not buckets or buckets[0] * 1000 >= horizon:
            continue
        unsafe_last = max(b for b in buckets if b * 1000 < horizon)
        width = buckets.step * 1000  # the Redis bucket width (a day piece reads hour keys)
        end = min(p.end_ms, unsafe_last * 1000 + width)
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
        batch_copy_rows: row budget of the in-memory batch copy (0: always
            read the batch pieces with a ClickHouse query).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clickhouse: Client | None = None,
        redis_client: redis.Redis | None = None,
        cache_entries: int = 512,
        metrics: ServingMetrics | None = None,
        batch_copy_rows: int = 2_000_000,
    ) -> None:
        self.settings = settings
        self.clickhouse = clickhouse if clickhouse is not None else open_clickhouse(settings)
        self._own_redis = redis_client is None
        self.redis = redis_client if redis_client is not None else make_redis(settings.redis)
        self.keys = SpeedKeys(settings.redis.key_prefix)
        self.cache: ResultCache[QueryResult] = ResultCache(cache_entries)
        self.metrics = metrics or ServingMetrics()
        self.batch_state = BatchStateReader(self.clickhouse, embedded=settings.embedded_clickhouse)
        self._wm_key = redis_watermark_key(settings.redis.key_prefix)
        self._ch_lock = threading.Lock()  # one ClickHouse query at a time per client
        self.batch_copy = BatchCopy(self.clickhouse, self._ch_lock, max_rows=batch_copy_rows)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="serving-speed-read")
        self.campaign_codes = CampaignCodes()

    def close(self) -> None:
        """Close the Redis client this engine opened (the ClickHouse engine stays up)."""
        self._pool.shutdown(wait=False)
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
        speed = read_speed_snapshot(self.redis, self.keys, self._wm_key)
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
        """Steps 3-4: the cache (the prebuilt result itself), else read the pieces and merge."""
        speed = prepared.speed
        freshness = SpeedFreshness(speed.offsets, speed.last_applied_ms, speed.max_event_ts_ms, speed.shed)
        if use_cache:
            key = prepared.cache_key()
            hit = self.cache.get(key)
            if hit is not None:
                self.metrics.cache_hits.inc()
                if hit.coverage.speed != freshness:  # batch-only answer, the speed layer moved on
                    hit = hit.with_coverage(hit.coverage.with_speed(freshness, cached=True))
                    self.cache.put(key, hit)
                return hit
            self.metrics.cache_misses.inc()
        result = self._compute(prepared, freshness, use_cache=use_cache)
        if use_cache:
            self.cache.put(key, result.with_coverage(result.coverage.with_speed(freshness, cached=True)))
        self._observe(prepared)
        return result

    def _compute(self, prepared: Prepared, freshness: SpeedFreshness, *, use_cache: bool) -> QueryResult:
        plan, spec = prepared.plan, prepared.plan.spec
        batch = [p for p in plan.pieces if p.layer == "batch"]
        speed = [p for p in plan.pieces if p.layer == "speed"]
        parts: list[Columns] = []
        if "campaign_id" in spec.by:
            parts = read_campaign_pieces(
                (self.clickhouse, self._ch_lock),
                self.redis,
                self.keys,
                spec,
                batch,
                speed,
                self.campaign_codes,
            )
            batch = speed = []  # read above; the shared path below reads nothing
        token = prepared.batch.token
        warm = self.batch_copy.read(token, batch, spec.metric, spec.by, load=False) if batch else None
        if batch and speed and warm is None:
            # ClickHouse will be queried: overlap it with Redis (chDB runs without the GIL,
            # Redis mostly waits on its socket). Not when the copy is warm: a thread
            # handoff costs more than the ~0.1 ms the batch rows take then.
            pending = self._pool.submit(read_speed_pieces, self.redis, self.keys, speed, spec.metric, spec.by)
            try:
                parts.append(self._batch_half(prepared, batch))
            finally:
                parts += pending.result()
        else:
            if batch:
                parts.append(warm if warm is not None else self._batch_half(prepared, batch))
            parts += read_speed_pieces(self.redis, self.keys, speed, spec.metric, spec.by)
        frame = _merge(parts, spec, self.campaign_codes)
        approximate = tuple(
            LayerRange("speed", p.start_ms, p.end_ms)
            for p in plan.pieces
            if p.layer == "speed" and spec.metric == "unique_customers"
        )
        shed = self._shed_ranges(prepared, speed)
        coverage = Coverage(
            batch_through_ms=prepared.batch.watermark_ms,
            exact=not approximate and not prepared.holes and not shed,
            ranges=tuple(LayerRange(*r) for r in plan.layer_ranges()),
            holes=prepared.holes,
            speed=freshness,
            approximate_ranges=_merge_ranges(approximate),
            shed_ranges=shed,
        )
        return QueryResult(spec.metric, spec.granularity, spec.by, frame, coverage)

    def _shed_ranges(self, prepared: Prepared, speed: list[Piece]) -> tuple[ShedRange, ...]:
        """The speed pieces' buckets that lack shed events the metric counts, merged when adjacent.

        Holes are left out: neither layer covers them, which they already say.
        """
        types = counted_event_types(prepared.plan.spec.metric) & frozenset(prepared.speed.shed)
        if not speed or not types:
            return ()
        found = read_shed(self.redis, self.keys, speed, frozenset(types))
        out: list[tuple[int, int, dict[str, int]]] = []
        for start, end, counts in found:
            if any(h.start_ms <= start and end <= h.end_ms for h in prepared.holes):
                continue
            if out and out[-1][1] == start:
                last = out[-1][2]
                for t, n in counts.items():
                    last[t] = last.get(t, 0) + n
                out[-1] = (out[-1][0], end, last)
            else:
                out.append((start, end, dict(counts)))
        return tuple(ShedRange(s, e, tuple(sorted(c.items()))) for s, e, c in out)

    def _batch_half(self, prepared: Prepared, pieces: list[Piece]) -> Columns:
        """The batch pieces' rows: from the batch copy (loading what it lacks), else ClickHouse.

        ``use_cache=False`` does not skip the copy: it is not a cache of answers
        but of the views' rows, exact for its batch token.
        """
        spec = prepared.plan.spec
        cols = self.batch_copy.read(prepared.batch.token, pieces, spec.metric, spec.by)
        if cols is None:
            with self._ch_lock:
                cols = read_batch_pieces(self.clickhouse, pieces, spec.metric, spec.by, spec.width_ms)
        return cols

    def _observe(self, prepared: Prepared) -> None:
        if prepared.batch.watermark_ms is not None:
            self.metrics.watermark.set(prepared.batch.watermark_ms / 1000)
        if prepared.speed.last_applied_ms is not None:
            self.metrics.speed_last_applied.set(prepared.speed.last_applied_ms / 1000)

    def stats(self) -> dict[str, Any]:
        """Cache figures (for ``/status``)."""
        return {
            "entries": len(self.cache),
            "hits": self.cache.hits,
            "misses": self.cache.misses,
            "batch_copy": self.batch_copy.stats(),
        }

    def status(self) -> dict[str, Any]:
        """Watermark, tier sizes, job history and cache figures (``GET /status``)."""
        with self._ch_lock:
            return status_of(self.clickhouse, self.stats())


def _merge_ranges(ranges: tuple[LayerRange, ...]) -> tuple[LayerRange, ...]:
    out: list[LayerRange] = []
    for r in ranges:
        if out and out[-1].end_ms == r.start_ms:
            out[-1] = LayerRange(r.layer, out[-1].start_ms, r.end_ms)
        else:
            out.append(r)
    return tuple(out)


def _merge(parts: list[Columns], spec: QuerySpec, campaigns: CampaignCodes | None = None) -> pd.DataFrame:
    """Map rows to target buckets, sum per (bucket, dims), drop zeros, sort; ``bucket`` UTC.

    numpy, not a pandas group-by: the key columns become one int64 (bucket
    index, then each dimension minus its minimum, in mixed radix), which is
    argsorted, and ``np.add.reduceat`` sums each run exactly (int64, no float
    round trip).
    """
    names = ["bucket_ms", *spec.by]
    parts = [p for p in parts if len(p["value"])]
    cols = {c: np.concatenate([p[c] for p in parts]) for c in [*names, "value"]} if parts else {}
    if cols:
        b = cols["bucket_ms"] // spec.width_ms * spec.width_ms
        keep = (b >= spec.start_ms) & (b < spec.end_ms)
        cols["bucket_ms"] = b
        if not keep.all():
            cols = {c: v[keep] for c, v in cols.items()}
    n = len(cols["value"]) if cols else 0
    if n:
        n_buckets = (spec.end_ms - spec.start_ms) // spec.width_ms
        codes = [((cols["bucket_ms"] - spec.start_ms) // spec.width_ms, n_buckets)]
        codes += [_rank(cols[c]) for c in spec.by]
        if np.prod([float(r) for _, r in codes]) < 2.0**62:
            key = np.zeros(n, dtype=np.int64)
            for code, radix in codes:
                key = key * radix + code
            order = np.argsort(key)
            sk = key[order]
            change = sk[1:] != sk[:-1]
        else:  # ids too sparse for one int64 key (not with real data): sort on the columns
            order = np.lexsort(tuple(cols[c] for c in reversed(names)))
            change = np.zeros(n - 1, dtype=bool)
            for c in names:
                sc = cols[c][order]
                change |= sc[1:] != sc[:-1]
        starts = np.flatnonzero(np.concatenate(([True], change)))
        sums = np.add.reduceat(cols["value"][order], starts)
        first = order[starts]
        nz = sums != 0
        out_cols = {c: cols[c][first][nz] for c in names}
        values = sums[nz]
    else:
        out_cols = {c: np.empty(0, dtype=np.int64) for c in names}
        values = np.empty(0, dtype=np.int64)
    bucket = pd.DatetimeIndex(pd.to_datetime(out_cols["bucket_ms"], unit="ms", utc=True)).as_unit("ns")
    data: dict[str, object] = {"bucket": bucket}
    for d in spec.by:
        if d == "event_type":
            data[d] = np.asarray(EVENT_TYPE_NAMES, dtype=object)[out_cols[d]]
        elif d == "campaign_id" and campaigns is not None:
            data[d] = campaigns.names(out_cols[d])
        else:
            data[d] = out_cols[d]
    data["value"] = values
    frame = pd.DataFrame(data)
    if "campaign_id" in spec.by and len(frame):  # codes follow first sight, not names: sort by name
        frame = frame.sort_values(["bucket", *spec.by], kind="stable", ignore_index=True)
    return frame


def _rank(col: np.ndarray) -> tuple[np.ndarray, int]:
    """Order-preserving non-negative codes of an int column, and how many there can be."""
    lo, hi = int(col.min()), int(col.max())
    if hi - lo < 4 * len(col) + 1024:
        return col - lo, hi - lo + 1
    _, inv = np.unique(col, return_inverse=True)
    return inv, int(inv.max()) + 1


def _hole_message(holes: tuple[Hole, ...]) -> str:
    first = holes[0]
    more = f" (and {len(holes) - 1} more)" if len(holes) > 1 else ""
    return (
        f"no layer covers {format_ts(first.start_ms)} to {format_ts(first.end_ms)}{more}: {first.reason}; "
        "run 'lambda-rt batch run recompute' over that range"
    )
