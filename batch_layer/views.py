"""The read side of the batch layer: what serving imports, and nothing else.

Tables (in ``settings.clickhouse.database``):

- ``batch_metrics``: one row per (granularity, dims, bucket, store_id, event_type)
  with every metric, computed exactly for each dimension combination (distinct
  counts cannot be summed, so all four combinations are precomputed).
  ``dims`` is ``none``, ``store_id``, ``event_type`` or ``store_id,event_type``;
  a dimension not in ``dims`` is stored as ``store_id = 0`` / ``event_type = ''``.
  Only buckets with at least one valid event exist (a missing row means 0).
- ``batch_inventory``: ``inventory_delta`` per (granularity, bucket, store_id,
  product_id).
- ``batch_campaigns``: ``events``, ``orders``, ``revenue`` and exact
  ``unique_customers`` per (granularity, dims, bucket, campaign_id,
  event_type), ``dims`` being ``campaign_id`` (``event_type = ''``) or
  ``campaign_id,event_type``. Events without a campaign are campaign ``''``,
  so each bucket's campaigns sum to its total.
- ``batch_state``: ``key = 'watermark'``, ``value`` = epoch ms.

Both view tables are partitioned by the bucket's UTC day; a recompute replaces
whole days atomically (``REPLACE PARTITION``). The **watermark** W is the source
of truth for completeness: every bucket that *ends* at or before W is in the
views, exactly, and a view only holds complete buckets. So for granularity g,
serving reads buckets ``< complete_through(W, g)`` from here and the rest from
the speed layer. ClickHouse (``batch_state``) is the source of truth; the Redis
key ``{key_prefix}:batch:watermark`` (epoch ms) is a copy published after it,
for cheap reads - it can lag ClickHouse, never lead it.

This module does not compute or write views (see :mod:`batch_layer.recompute`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from lambda_rt.clients.clickhouse import Client
from lambda_rt.vocabulary import GRANULARITIES, GRANULARITY_MS, METRICS

__all__ = [
    "BATCH_CAMPAIGNS",
    "BATCH_INVENTORY",
    "BATCH_METRICS",
    "BATCH_STATE",
    "DIMS_VALUES",
    "GRANULARITY_CODES",
    "METRIC_COLUMNS",
    "WATERMARK_KEY",
    "complete_through",
    "read_batch_view",
    "read_inventory_by_product",
    "read_watermark",
    "redis_watermark_key",
]

BATCH_METRICS = "batch_metrics"
BATCH_INVENTORY = "batch_inventory"
BATCH_CAMPAIGNS = "batch_campaigns"
BATCH_STATE = "batch_state"
WATERMARK_KEY = "watermark"
METRIC_COLUMNS: tuple[str, ...] = METRICS
"""``batch_metrics`` has one column per metric, named after it."""
GRANULARITY_CODES: dict[str, int] = {g: i for i, g in enumerate(GRANULARITIES, 1)}
"""The Enum8 value of each granularity in the views' ``granularity`` column."""
DIMS_VALUES = ("none", "store_id", "event_type", "store_id,event_type")


def redis_watermark_key(key_prefix: str) -> str:
    """The Redis key holding the published watermark (epoch ms)."""
    return f"{key_prefix}:batch:watermark"


def _dims(by: tuple[str, ...] | list[str] | str | None) -> tuple[str, ...]:
    if by is None or by == "":
        return ()
    items = tuple(b.strip() for b in by.split(",")) if isinstance(by, str) else tuple(by)
    unknown = set(items) - {"store_id", "event_type"}
    if unknown:
        raise ValueError(f"unknown dimension(s) {sorted(unknown)}: use store_id and/or event_type")
    return tuple(d for d in ("store_id", "event_type") if d in items)


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("timezone-aware datetimes only")
    return int(value.timestamp() * 1000)


def complete_through(watermark: datetime | None, granularity: str) -> datetime | None:
    """Start of the first bucket of ``granularity`` that is *not* complete at ``watermark``."""
    if watermark is None:
        return None
    width = GRANULARITY_MS[granularity]
    ms = _ms(watermark) // width * width
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def read_watermark(client: Client) -> datetime | None:
    """The batch watermark (source of truth), or None before the first recompute."""
    rows = client.query(
        f"SELECT argMax(value, version) FROM {BATCH_STATE} WHERE key = %(k)s HAVING count() > 0",
        parameters={"k": WATERMARK_KEY},
    ).result_rows
    if not rows:
        return None
    return datetime.fromtimestamp(int(rows[0][0]) / 1000, tz=UTC)


def read_batch_view(
    client: Client,
    metric: str,
    by: tuple[str, ...] | list[str] | str | None,
    start: datetime,
    end: datetime,
    granularity: str,
) -> pd.DataFrame:
    """One metric of the batch view: columns ``bucket`` (UTC), the ``by`` dims, ``value``.

    Buckets with ``start <= bucket < end`` are returned, sorted; a bucket or
    group without events has no row, and additive metrics omit rows whose value
    is 0 (the contract of ``lambda_rt.testing.oracle_metrics``). Values are
    exact (``unique_customers`` too). Only complete buckets exist (see the
    module docstring).
    """
    if metric not in METRIC_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}: one of {', '.join(METRIC_COLUMNS)}")
    if granularity not in GRANULARITY_MS:
        raise ValueError(f"unknown granularity {granularity!r}: minute, hour or day")
    dims = _dims(by)
    key = ",".join(dims) or "none"
    cols = ", ".join(("bucket", *dims, f"{metric} AS value"))
    nonzero = "" if metric == "unique_customers" else f"AND {metric} != 0 "
    df = client.query_df(
        f"SELECT {cols} FROM {BATCH_METRICS} WHERE granularity = %(g)s AND dims = %(d)s {nonzero}"
        f"AND bucket >= toDateTime(%(s)s, 'UTC') AND bucket < toDateTime(%(e)s, 'UTC') "
        f"ORDER BY {', '.join(('bucket', *dims))}",
        parameters={"g": granularity, "d": key, "s": _ms(start) // 1000, "e": -(-_ms(end) // 1000)},
    )
    return _utc(df, ["bucket", *dims, "value"])


def read_inventory_by_product(
    client: Client, start: datetime, end: datetime, granularity: str
) -> pd.DataFrame:
    """``inventory_delta`` per bucket, store_id and product_id (exact; zero rows omitted)."""
    df = client.query_df(
        f"SELECT bucket, store_id, product_id, inventory_delta AS value FROM {BATCH_INVENTORY} "
        f"WHERE granularity = %(g)s AND inventory_delta != 0 AND bucket >= toDateTime(%(s)s, 'UTC') "
        f"AND bucket < toDateTime(%(e)s, 'UTC') ORDER BY bucket, store_id, product_id",
        parameters={"g": granularity, "s": _ms(start) // 1000, "e": -(-_ms(end) // 1000)},
    )
    return _utc(df, ["bucket", "store_id", "product_id", "value"])


def _utc(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="datetime64[ns, UTC]" if c == "bucket" else "int64") for c in columns}
        )
    bucket = pd.to_datetime(df["bucket"])
    df["bucket"] = bucket.dt.tz_localize(UTC) if bucket.dt.tz is None else bucket.dt.tz_convert(UTC)
    return df.reset_index(drop=True)
