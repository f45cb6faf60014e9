"""Read the speed view (Redis) for the speed pieces of a plan, and its state.

Only reads, through the key layout of :mod:`speed_layer.keys`; it never
imports the speed layer's runtime. Every bucket hash of every speed piece of a
query is fetched in one pipelined round trip and parsed vectorised (the hash
fields and values are joined into one byte string each and parsed by numpy,
not one Python ``int()`` per field). Distinct counts are ``PFCOUNT`` over the
union of the HyperLogLog keys of a bucket (minute/hour keys; a day is its 24
hour keys), so they are approximate (about 0.8% standard error).

It also reads the speed layer's state in one round trip: the applied
partition offsets (the cache key of anything served from here), its freshness
counters, and whether the view can be trusted at all (the ``epoch`` key and
the ``rebuilding`` flag, see the state contract in :mod:`speed_layer.keys`).
That read sits in front of every cache hit, so it is one ``EVALSHA`` of a
read-only script (one command, flat replies) rather than a four-command
pipeline: about half the client-side cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import redis
from redis.commands.core import Script

from lambda_rt.errors import ServiceUnavailableError
from lambda_rt.events.schema import EVENT_TYPES
from lambda_rt.vocabulary import GRANULARITY_MS
from serving.plan import Piece
from serving.spec import METRIC_EVENT_TYPE
from speed_layer.keys import (
    META_LAST_APPLIED_MS,
    META_MAX_EVENT_TS,
    META_REBUILDING,
    SHED,
    SpeedKeys,
    bucket_width_s,
    epoch_key,
)

__all__ = [
    "EVENT_TYPE_CODES",
    "EVENT_TYPE_NAMES",
    "Columns",
    "SpeedSnapshot",
    "empty_columns",
    "key_buckets",
    "read_shed",
    "read_speed_pieces",
    "read_speed_snapshot",
]

Columns = dict[str, np.ndarray]
"""``bucket_ms``, the dimension columns and ``value``, all int64 (``event_type`` as a code)."""

EVENT_TYPE_NAMES: tuple[str, ...] = tuple(sorted(EVENT_TYPES))
"""``event_type`` codes index this tuple; sorted, so sorting codes sorts names."""
EVENT_TYPE_CODES: dict[str, int] = {t: i for i, t in enumerate(EVENT_TYPE_NAMES)}


@dataclass(frozen=True)
class SpeedSnapshot:
    """What serving reads of the speed view's state in one round trip: offsets, freshness, trust.

    A read-only snapshot taken per query; the speed layer's own state machine
    (claiming and rebuilding the view) is a different class in :mod:`speed_layer`.
    """

    offsets: dict[int, int] = field(default_factory=dict)
    last_applied_ms: int | None = None
    max_event_ts_ms: int | None = None
    shed: dict[str, int] = field(default_factory=dict)
    watermark_ms: int | None = None  # the batch watermark's published copy (may lag)
    epoch_ms: int | None = None  # when the current view's (re)build started; None: state lost
    rebuilding: bool = False  # replaying the topic after finding no state

    def token(self) -> tuple[object, ...]:
        """Changes whenever a micro-batch is applied or the view is rebuilt (the speed cache key)."""
        return (self.epoch_ms, self.rebuilding, tuple(sorted(self.offsets.items())))


def _int(value: object) -> int | None:
    if not isinstance(value, (bytes, str, int)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


_STATE_SCRIPT = b"""
local out = {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('GET', KEYS[3])}
if #KEYS > 3 then out[4] = redis.call('GET', KEYS[4]) end
return out
"""
# The replies are ``[offsets pairs, meta pairs, epoch, (watermark)]``: ``GET`` of a missing key is
# ``false`` in Lua, so the list never shortens. Given as bytes, the script needs no client to be
# hashed; each call names its client, and redis-py loads the script where the server lacks it.
_STATE = Script(None, _STATE_SCRIPT)


def _pairs_of(flat: object) -> list[tuple[bytes, bytes]]:
    items = list(flat) if isinstance(flat, list) else []
    return list(zip(items[::2], items[1::2], strict=True))


def read_speed_snapshot(
    client: redis.Redis, keys: SpeedKeys, watermark_key: str | None = None
) -> SpeedSnapshot:
    """Offsets, meta, epoch (and the published watermark) in one round trip."""
    names = [keys.offsets, keys.meta, epoch_key(keys.prefix)]
    if watermark_key:
        names.append(watermark_key)
    try:
        replies = _STATE(keys=names, client=client)
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc
    offsets = {int(k): int(v) for k, v in _pairs_of(replies[0])}
    meta: dict[str, int] = {}
    for k, v in _pairs_of(replies[1]):
        n = _int(v)
        if n is not None:
            meta[k.decode()] = n
    shed = {k.removeprefix("shed:"): v for k, v in meta.items() if k.startswith("shed:") and v}
    wm = replies[3] if watermark_key and len(replies) > 3 else None
    return SpeedSnapshot(
        offsets=offsets,
        last_applied_ms=meta.get(META_LAST_APPLIED_MS),
        max_event_ts_ms=meta.get(META_MAX_EVENT_TS) or None,
        shed=shed,
        watermark_ms=_int(wm),
        epoch_ms=_int(replies[2]),
        rebuilding=meta.get(META_REBUILDING, 0) == 1,
    )


def key_buckets(piece: Piece) -> tuple[str, range]:
    """Redis granularity (``m``/``h``) and bucket starts (epoch s) a piece reads."""
    gran = "m" if piece.granularity == "minute" else "h"
    width = bucket_width_s(gran)
    return gran, range(piece.start_ms // 1000, piece.end_ms // 1000, width)


def empty_columns(by: tuple[str, ...]) -> Columns:
    """No rows, every column present."""
    return {c: np.empty(0, dtype=np.int64) for c in ("bucket_ms", *by, "value")}


def read_speed_pieces(
    client: redis.Redis, keys: SpeedKeys, pieces: list[Piece], metric: str, by: tuple[str, ...]
) -> list[Columns]:
    """Rows of the speed pieces: ``bucket_ms`` (the key bucket, or the *target* bucket
    for distinct counts), the ``by`` dims, ``value``.

    Additive rows are per key bucket (the caller sums them into target
    buckets); distinct counts are already per target bucket.
    """
    if not pieces:
        return []
    try:
        if metric == "unique_customers":
            return [_read_unique(client, keys, p, by) for p in pieces]
        return [_read_additive(client, keys, pieces, metric, by)]
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc


def _read_additive(
    client: redis.Redis, keys: SpeedKeys, pieces: list[Piece], metric: str, by: tuple[str, ...]
) -> Columns:
    pipe = client.pipeline(transaction=False)
    bucket_ms: list[int] = []
    for piece in pieces:
        gran, buckets = key_buckets(piece)
        for b in buckets:
            pipe.hgetall(keys.agg(gran, b, metric))
            bucket_ms.append(b * 1000)
    replies: list[dict[bytes, bytes]] = pipe.execute()
    fields: list[bytes] = []
    values: list[bytes] = []
    lengths = np.fromiter((len(r) for r in replies), dtype=np.int64, count=len(replies))
    for reply in replies:
        fields.extend(reply)
        values.extend(reply.values())
    if not fields:
        return empty_columns(by)
    n = len(fields)
    data: Columns = {"bucket_ms": np.repeat(np.asarray(bucket_ms, dtype=np.int64), lengths)}
    value = _ints(values, n)
    if metric == "events":  # "{store_id}:{event_type}"
        pairs = _pairs(fields, n, types=True)
        store, second = pairs[:, 0], pairs[:, 1]
    elif metric == "inventory_delta":  # "{store_id}:{product_id}"
        pairs = _pairs(fields, n, types=False)
        store, second = pairs[:, 0], pairs[:, 1]
    else:  # "{store_id}"
        store, second = _ints(fields, n), np.empty(0, dtype=np.int64)
    if "store_id" in by:
        data["store_id"] = store
    if "event_type" in by:
        fixed = METRIC_EVENT_TYPE.get(metric)
        data["event_type"] = np.full(n, EVENT_TYPE_CODES[fixed], dtype=np.int64) if fixed else second
    if "product_id" in by:
        data["product_id"] = second
    data["value"] = value
    return data


def _ints(items: list[bytes], n: int) -> np.ndarray:
    """``n`` decimal integers, parsed in one numpy call (Python fallback if malformed)."""
    out = np.fromstring(b" ".join(items), dtype=np.int64, sep=" ")
    if out.shape[0] == n:
        return out
    return np.asarray([int(x) for x in items], dtype=np.int64)


def _pairs(fields: list[bytes], n: int, *, types: bool) -> np.ndarray:
    """``"{int}:{int}"`` (or ``"{int}:{event_type}"``, as codes) fields as an ``(n, 2)`` array."""
    text = b" ".join(fields) + b" "
    if types:
        for name in sorted(EVENT_TYPE_NAMES, key=len, reverse=True):
            text = text.replace(f":{name} ".encode(), f" {EVENT_TYPE_CODES[name]} ".encode())
    else:
        text = text.replace(b":", b" ")
    out = np.fromstring(text, dtype=np.int64, sep=" ")
    if out.shape[0] == 2 * n:
        return out.reshape(n, 2)
    return np.asarray([_pair(f, types) for f in fields], dtype=np.int64).reshape(n, 2)


def _pair(f: bytes, types: bool) -> tuple[int, int]:
    a, _, b = f.decode().partition(":")
    return int(a), (EVENT_TYPE_CODES.get(b, -1) if types else int(b))


def read_shed(
    client: redis.Redis, keys: SpeedKeys, pieces: list[Piece], event_types: frozenset[str]
) -> list[tuple[int, int, dict[str, int]]]:
    """Key buckets of the speed pieces that shed events of ``event_types``, in time order.

    Each is ``(start_ms, end_ms, {event_type: events shed})``, read from the
    ``SHED`` hashes (fields ``"{store_id}:{event_type}"``) in one pipeline.
    """
    pipe = client.pipeline(transaction=False)
    spans: list[tuple[int, int]] = []
    for piece in pieces:
        gran, buckets = key_buckets(piece)
        width_ms = 60_000 if gran == "m" else 3_600_000
        for b in buckets:
            pipe.hgetall(keys.agg(gran, b, SHED))
            spans.append((b * 1000, b * 1000 + width_ms))
    try:
        replies: list[dict[bytes, bytes]] = pipe.execute() if spans else []
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc
    out: list[tuple[int, int, dict[str, int]]] = []
    for (start, end), reply in zip(spans, replies, strict=True):
        counts: dict[str, int] = {}
        for f, v in reply.items():
            event_type = f.decode().partition(":")[2]
            if event_type in event_types:
                counts[event_type] = counts.get(event_type, 0) + int(v)
        if counts:
            out.append((start, end, counts))
    return out


def _target_groups(piece: Piece) -> list[tuple[int, list[int]]]:
    """Each target bucket of a distinct-count piece and the key buckets it unions."""
    _gran, buckets = key_buckets(piece)
    width_s = GRANULARITY_MS[piece.granularity] // 1000
    groups: dict[int, list[int]] = {}
    for b in buckets:
        groups.setdefault(b // width_s * width_s, []).append(b)
    return sorted(groups.items())


def _read_unique(client: redis.Redis, keys: SpeedKeys, piece: Piece, by: tuple[str, ...]) -> Columns:
    gran, _ = key_buckets(piece)
    groups = _target_groups(piece)
    labels: list[tuple[int, int]] = []
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
            for t in EVENT_TYPE_NAMES:
                pipe.pfcount(*[keys.hll_event_type(gran, b, t) for b in sub])
                labels.append((target, EVENT_TYPE_CODES[t]))
    else:
        for target, sub in groups:
            names = [keys.hll(gran, b) for b in sub]
            names += [keys.hll_event_type(gran, b, t) for b in sub for t in EVENT_TYPES]
            pipe.pfcount(*names)
            labels.append((target, 0))
    counts = pipe.execute() if labels else []
    rows = [(t * 1000, lab, int(c)) for (t, lab), c in zip(labels, counts, strict=True) if c]
    if not rows:
        return empty_columns(by)
    out: Columns = {"bucket_ms": np.asarray([r[0] for r in rows], dtype=np.int64)}
    if by:
        out[by[0]] = np.asarray([r[1] for r in rows], dtype=np.int64)
    out["value"] = np.asarray([r[2] for r in rows], dtype=np.int64)
    return out
