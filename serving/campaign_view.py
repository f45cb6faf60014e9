"""The ``campaign_id`` dimension (schema v2): its rows from both views, as integer codes.

The merge (:mod:`serving.engine`) groups int64 columns only, and campaign ids
are strings, so this module turns them into codes of one
:class:`CampaignCodes` table per engine (code 0 is ``""``, no campaign) and
the merge turns codes back into names at the end. Campaigns are few (dozens
active at once), so the table stays small; it only grows.

- Batch pieces: one aggregating query over ``batch_campaigns``
  (:mod:`batch_layer.views`), like :func:`serving.batch_view.read_batch_pieces`.
- Speed pieces: the ``campaign_*`` hashes and the hourly campaign HyperLogLogs
  of :mod:`speed_layer.keys`, all buckets in one pipelined round trip. Hash
  fields repeat from bucket to bucket, so each distinct field is parsed once
  per read.

Only reads; imports the read side of the layers (key layout, view tables).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager

import numpy as np
import pyarrow.compute as pc
import redis

from batch_layer import views
from lambda_rt.clients.clickhouse import Client
from lambda_rt.errors import ServiceUnavailableError
from serving.batch_view import dim_columns_sql
from serving.plan import Piece
from serving.spec import METRIC_EVENT_TYPE, QuerySpec
from serving.speed_view import EVENT_TYPE_CODES, Columns, empty_columns, key_buckets
from speed_layer.keys import CAMPAIGN_EVENTS, CAMPAIGN_METRICS, SpeedKeys

__all__ = [
    "CampaignCodes",
    "campaign_pieces_sql",
    "read_campaign_batch",
    "read_campaign_pieces",
    "read_campaign_speed",
]


class CampaignCodes:
    """Campaign id <-> int64 code, shared by every read of one engine (thread-safe)."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {"": 0}
        self._names: list[str] = [""]
        self._lock = threading.Lock()

    def code(self, name: str) -> int:
        """The code of ``name`` (a new one the first time it is seen)."""
        found = self._codes.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._codes.get(name)
            if found is None:
                found = len(self._names)
                self._names.append(name)
                self._codes[name] = found
            return found

    def codes(self, names: Sequence[str]) -> np.ndarray:
        """Codes of ``names`` as int64."""
        return np.fromiter((self.code(n) for n in names), dtype=np.int64, count=len(names))

    def names(self, codes: np.ndarray) -> np.ndarray:
        """Names of ``codes`` (object array)."""
        with self._lock:
            table = np.asarray(self._names, dtype=object)
        return table[codes]


def _dims_key(by: tuple[str, ...]) -> str:
    return "campaign_id,event_type" if "event_type" in by else "campaign_id"


def campaign_pieces_sql(pieces: list[Piece], metric: str, by: tuple[str, ...], width_ms: int) -> str:
    """One query for every batch piece by campaign: rows summed per target bucket.

    Columns ``bucket_ms``, ``campaign_id`` (string), ``event_type`` (its code,
    when asked) and ``value``. Every number in the text is computed here and
    names come from fixed tables: nothing a caller typed reaches the SQL.
    """
    width_s = width_ms // 1000
    ranges = " OR ".join(
        f"(granularity = '{p.granularity}' AND bucket >= toDateTime({p.start_ms // 1000}, 'UTC') "
        f"AND bucket < toDateTime({-(-p.end_ms // 1000)}, 'UTC'))"
        for p in pieces
    )
    cols = [f"toInt64(intDiv(toUInt32(bucket), {width_s}) * {width_s}) * 1000 AS bucket_ms", "campaign_id"]
    if "event_type" in by:
        cols += dim_columns_sql(("event_type",))
    nonzero = "" if metric == "unique_customers" else f" AND {metric} != 0"
    group = ", ".join(("bucket_ms", "campaign_id", *(("event_type",) if "event_type" in by else ())))
    return (
        f"SELECT {', '.join(cols)}, toInt64(sum({metric})) AS value FROM {views.BATCH_CAMPAIGNS} "
        f"WHERE dims = '{_dims_key(by)}'{nonzero} AND ({ranges}) GROUP BY {group} "
        "SETTINGS max_threads = 1"
    )


def read_campaign_batch(
    client: Client, pieces: list[Piece], metric: str, by: tuple[str, ...], width_ms: int, codes: CampaignCodes
) -> Columns:
    """Every batch piece of a by-campaign query in one ClickHouse query (exact)."""
    if not pieces:
        return empty_columns(by)
    table = client.query_arrow(campaign_pieces_sql(pieces, metric, by, width_ms), use_strings=True)
    if table.num_rows == 0:
        return empty_columns(by)
    encoded = pc.dictionary_encode(table.column("campaign_id")).combine_chunks()
    lookup = codes.codes([str(x) for x in encoded.dictionary.to_pylist()])
    out: Columns = {"bucket_ms": table.column("bucket_ms").to_numpy().astype(np.int64, copy=False)}
    out["campaign_id"] = lookup[encoded.indices.to_numpy(zero_copy_only=False)]
    if "event_type" in by:
        out["event_type"] = table.column("event_type").to_numpy().astype(np.int64, copy=False)
    out["value"] = table.column("value").to_numpy().astype(np.int64, copy=False)
    return out


def read_campaign_pieces(
    clickhouse: tuple[Client, AbstractContextManager[object]],
    client: redis.Redis,
    keys: SpeedKeys,
    spec: QuerySpec,
    batch: list[Piece],
    speed: list[Piece],
    codes: CampaignCodes,
) -> list[Columns]:
    """Rows of a by-campaign query: batch pieces (under the client's lock), then speed pieces."""
    parts: list[Columns] = []
    if batch:
        ch, lock = clickhouse
        with lock:
            parts.append(read_campaign_batch(ch, batch, spec.metric, spec.by, spec.width_ms, codes))
    return parts + read_campaign_speed(client, keys, speed, spec.metric, spec.by, codes)


def read_campaign_speed(
    client: redis.Redis,
    keys: SpeedKeys,
    pieces: list[Piece],
    metric: str,
    by: tuple[str, ...],
    codes: CampaignCodes,
) -> list[Columns]:
    """Rows of the speed pieces by campaign (distinct counts per target bucket, hour keys)."""
    if not pieces:
        return []
    try:
        if metric == "unique_customers":
            return [_read_unique(client, keys, p, codes) for p in pieces]
        return [_read_additive(client, keys, pieces, metric, by, codes)]
    except redis.RedisError as exc:
        raise ServiceUnavailableError(f"Redis (speed view) did not answer: {exc}") from exc


def _read_additive(
    client: redis.Redis,
    keys: SpeedKeys,
    pieces: list[Piece],
    metric: str,
    by: tuple[str, ...],
    codes: CampaignCodes,
) -> Columns:
    hash_metric = CAMPAIGN_METRICS[metric]
    pipe = client.pipeline(transaction=False)
    bucket_ms: list[int] = []
    for piece in pieces:
        gran, buckets = key_buckets(piece)
        for b in buckets:
            pipe.hgetall(keys.agg(gran, b, hash_metric))
            bucket_ms.append(b * 1000)
    replies: list[dict[bytes, bytes]] = pipe.execute()
    lengths = np.fromiter((len(r) for r in replies), dtype=np.int64, count=len(replies))
    fields: list[bytes] = [f for r in replies for f in r]
    if not fields:
        return empty_columns(by)
    values = np.asarray([int(v) for r in replies for v in r.values()], dtype=np.int64)
    parsed: dict[bytes, tuple[int, int]] = {}
    fixed = EVENT_TYPE_CODES.get(METRIC_EVENT_TYPE.get(metric, ""), -1)
    for f in set(fields):
        if hash_metric == CAMPAIGN_EVENTS:  # "{event_type}:{campaign_id}"
            event_type, _, campaign = f.decode().partition(":")
            parsed[f] = (EVENT_TYPE_CODES.get(event_type, -1), codes.code(campaign))
        else:  # "{campaign_id}"
            parsed[f] = (fixed, codes.code(f.decode()))
    pairs = np.asarray([parsed[f] for f in fields], dtype=np.int64).reshape(len(fields), 2)
    out: Columns = {"bucket_ms": np.repeat(np.asarray(bucket_ms, dtype=np.int64), lengths)}
    out["campaign_id"] = pairs[:, 1]
    if "event_type" in by:
        out["event_type"] = pairs[:, 0]
    out["value"] = values
    return out


def _read_unique(client: redis.Redis, keys: SpeedKeys, piece: Piece, codes: CampaignCodes) -> Columns:
    """PFCOUNT of the union of a target bucket's hour keys, per campaign seen in those hours."""
    _gran, buckets = key_buckets(piece)
    width_s = {"hour": 3600, "day": 86_400}[piece.granularity]
    groups: dict[int, list[int]] = {}
    for b in buckets:
        groups.setdefault(b // width_s * width_s, []).append(b)
    probe = client.pipeline(transaction=False)
    for hours in groups.values():
        for h in hours:
            probe.hkeys(keys.agg("h", h, CAMPAIGN_EVENTS))
    seen = iter(probe.execute())
    pipe = client.pipeline(transaction=False)
    labels: list[tuple[int, str]] = []
    for target, hours in sorted(groups.items()):
        campaigns: set[str] = set()
        for _ in hours:
            campaigns.update(f.decode().partition(":")[2] for f in next(seen))
        for c in sorted(campaigns):
            pipe.pfcount(*[keys.hll_campaign(h, c) for h in hours])
            labels.append((target, c))
    counts = pipe.execute() if labels else []
    rows = [(t * 1000, c, int(n)) for (t, c), n in zip(labels, counts, strict=True) if n]
    if not rows:
        return empty_columns(("campaign_id",))
    return {
        "bucket_ms": np.asarray([r[0] for r in rows], dtype=np.int64),
        "campaign_id": codes.codes([r[1] for r in rows]),
        "value": np.asarray([r[2] for r in rows], dtype=np.int64),
    }
