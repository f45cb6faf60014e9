"""Read the speed view (Redis) for the speed pieces of a plan.

Only reads, through the key layout of :mod:`speed_layer.keys`; it never
imports the speed layer's runtime. Every bucket key of a piece is fetched in
one pipelined round trip. Additive metrics come back as flat rows; distinct
counts are ``PFCOUNT`` over the union of the HyperLogLog keys of a bucket
(minute/hour keys; a day is its 24 hour keys), so they are approximate
(about 0.8% standard error).

It also reads the speed layer's state: the applied partition offsets (the
cache key of anything served from here) and its freshness counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import redis

from lambda_rt.errors import ServiceUnavailableError
from lambda_rt.events.schema import EVENT_TYPES
from serving.plan import Piece
from serving.spec import GRANULARITY_MS, METRIC_EVENT_TYPE
from speed_layer.keys import META_LAST_APPLIED_MS, META_MAX_EVENT_TS, SpeedKeys

__all__ = ["SpeedState", "key_buckets", "read_speed_piece", "read_speed_state"]


@dataclass(frozen=True)
class SpeedState:
    """What the speed layer has applied: offsets (exactly-once state) and freshness."""

    offsets: dict[int, int] = field(default_factory=dict)
    last_applied_ms: int | None = None
    max_event_ts_ms: int | None = None
    shed: dict[str, int] = field(default_factory=dict)
    watermark_ms: int | None = None  # the batch watermark's published copy (may lag)

    def token(self) -> tuple[tuple[int, int], ...]:
        """Changes whenever a micro-batch is applied (the speed half of a cache key)."""
        return tuple(sorted(self.offsets.items()))


def read_speed_state(client: redis.Redis, keys: SpeedKeys, watermark_key: str | None = None) -> SpeedState:
    """Offsets and meta in one round trip."""
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.offsets)
        pipe.hgetall(keys.meta)
        if watermark_key:
            pipe.get(watermark_key)
        replies = pipe.execute()
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc
    offsets = {int(k): int(v) for k, v in replies[0].items()}
    meta = {k.decode(): int(v) for k, v in replies[1].items()}
    shed = {k.removeprefix("shed:"): v for k, v in meta.items() if k.startswith("shed:") and v}
    wm = replies[2] if watermark_key else None
    return SpeedState(
        offsets=offsets,
        last_applied_ms=meta.get(META_LAST_APPLIED_MS),
        max_event_ts_ms=meta.get(META_MAX_EVENT_TS) or None,
        shed=shed,
        watermark_ms=int(wm) if wm is not None else None,
    )


def key_buckets(piece: Piece) -> tuple[str, list[int]]:
    """Redis granularity (``m``/``h``) and bucket starts (epoch s) a piece reads."""
    gran = "m" if piece.granularity == "minute" else "h"
    width = 60 if gran == "m" else 3600
    return gran, list(range(piece.start_ms // 1000, piece.end_ms // 1000, width))


def _empty(by: tuple[str, ...]) -> pd.DataFrame:
    cols: dict[str, pd.Series] = {"bucket_ms": pd.Series(dtype="int64")}
    for d in by:
        cols[d] = pd.Series(dtype="object" if d == "event_type" else "int64")
    cols["value"] = pd.Series(dtype="int64")
    return pd.DataFrame(cols)


def read_speed_piece(
    client: redis.Redis, keys: SpeedKeys, piece: Piece, metric: str, by: tuple[str, ...]
) -> pd.DataFrame:
    """Rows ``bucket_ms`` (the *target* bucket start), dims, ``value`` of one piece.

    Additive rows are per key bucket (the caller sums them into target
    buckets); distinct counts are already per target bucket of the piece.
    """
    try:
        if metric == "unique_customers":
            return _read_unique(client, keys, piece, by)
        return _read_additive(client, keys, piece, metric, by)
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc


def _read_additive(
    client: redis.Redis, keys: SpeedKeys, piece: Piece, metric: str, by: tuple[str, ...]
) -> pd.DataFrame:
    gran, buckets = key_buckets(piece)
    pipe = client.pipeline(transaction=False)
    for b in buckets:
        pipe.hgetall(keys.agg(gran, b, metric))
    replies = pipe.execute()
    bucket_col: list[int] = []
    fields: list[bytes] = []
    values: list[bytes] = []
    for b, reply in zip(buckets, replies, strict=True):
        if reply:
            bucket_col.extend([b * 1000] * len(reply))
            fields.extend(reply.keys())
            values.extend(reply.values())
    if not fields:
        return _empty(by)
    data: dict[str, object] = {"bucket_ms": np.asarray(bucket_col, dtype=np.int64)}
    split = [f.decode().split(":", 1) for f in fields]
    if "store_id" in by:
        data["store_id"] = np.asarray([int(s[0]) for s in split], dtype=np.int64)
    if "event_type" in by:
        fixed = METRIC_EVENT_TYPE.get(metric)
        data["event_type"] = [fixed] * len(split) if fixed else [s[1] for s in split]
    if "product_id" in by:
        data["product_id"] = np.asarray([int(s[1]) for s in split], dtype=np.int64)
    data["value"] = np.asarray([int(v) for v in values], dtype=np.int64)
    return pd.DataFrame(data)


def _target_groups(piece: Piece) -> list[tuple[int, list[int]]]:
    """Each target bucket of a distinct-count piece and the key buckets it unions."""
    _gran, buckets = key_buckets(piece)
    width_s = GRANULARITY_MS[piece.granularity] // 1000
    groups: dict[int, list[int]] = {}
    for b in buckets:
        groups.setdefault(b // width_s * width_s, []).append(b)
    return sorted(groups.items())


def _read_unique(client: redis.Redis, keys: SpeedKeys, piece: Piece, by: tuple[str, ...]) -> pd.DataFrame:
    gran, _ = key_buckets(piece)
    groups = _target_groups(piece)
    labels: list[tuple[int, object]] = []
    pipe = client.pipeline(transaction=False)
    if by == ("store_id",):
        # which stores have any event in each hour: the fields of the events hash
        probe = client.pipeline(transaction=False)
        for _, hours in groups:
            for h in hours:
                probe.hkeys(keys.agg("h", h, "events"))
        seen = iter(probe.execute())
        for target, hours in groups:
            stores: set[int] = set()
            for _ in hours:
                stores.update(int(f.split(b":", 1)[0]) for f in next(seen))
            for s in sorted(stores):
                pipe.pfcount(*[keys.hll_store(h, s) for h in hours])
                labels.append((target, s))
    elif by == ("event_type",):
        for target, sub in groups:
            for t in EVENT_TYPES:
                pipe.pfcount(*[keys.hll_event_type(gran, b, t) for b in sub])
                labels.append((target, t))
    else:
        for target, sub in groups:
            names = [keys.hll(gran, b) for b in sub]
            names += [keys.hll_event_type(gran, b, t) for b in sub for t in EVENT_TYPES]
            pipe.pfcount(*names)
            labels.append((target, None))
    counts = pipe.execute() if labels else []
    rows = [(t * 1000, lab, int(c)) for (t, lab), c in zip(labels, counts, strict=True) if c]
    if not rows:
        return _empty(by)
    out: dict[str, object] = {"bucket_ms": np.asarray([r[0] for r in rows], dtype=np.int64)}
    if by:
        col = [r[1] for r in rows]
        out[by[0]] = np.asarray(col, dtype=np.int64) if by[0] == "store_id" else col
    out["value"] = np.asarray([r[2] for r in rows], dtype=np.int64)
    return pd.DataFrame(out)
