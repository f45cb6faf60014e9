"""Exact aggregation of one time partition of raw events, runnable in any process.

A Dask task gets one partition (a UTC day): the hot/warm rows the engine owner
exported as Arrow, plus the cold Parquet files of that day in S3, and returns
every metric of ARCHITECTURE.md at minute/hour/day for every dimension
combination (one ``GROUP BY GROUPING SETS`` pass), distinct counts exact
(``uniqExact``). The same SQL also runs inside the owner's engine
(:mod:`batch_layer.pushdown`) when the workers are threads of that process. The SQL runs
on chDB over the Arrow table (``Python()`` table function), so no worker opens
the owner's data directory: a worker process uses a stateless in-memory
session; a worker thread inside the owner process (``processes=False``) reuses
the owner's engine, the only one chDB allows there.

Only buckets that end at or before ``close_ms`` are returned: a batch view holds
complete buckets only. This module does not read ClickHouse tables or write
anything.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lambda_rt.clients.s3_worker import S3Location, worker_storage_options
from lambda_rt.vocabulary import GRANULARITIES, METRICS

__all__ = [
    "AGG_COLUMNS",
    "COLD_STRUCTURE",
    "PartitionResult",
    "aggregate_partition",
    "campaign_sql",
    "metrics_sql",
]

AGG_COLUMNS: tuple[str, ...] = (
    "ts",
    "store_id",
    "event_type",
    "customer_id",
    "amount_cents",
    "status",
    "delta",
    "product_id",
    "campaign_id",
)
"""Raw columns the aggregation reads (exports and Parquet reads project to these)."""

COLD_STRUCTURE = (
    "ts DateTime64(3, 'UTC'), store_id UInt64, event_type String, customer_id UInt64, "
    "amount_cents Int64, status String, delta Int64, product_id Int64, campaign_id Nullable(String)"
)
"""The :data:`AGG_COLUMNS` of a cold Parquet file, for ClickHouse's ``s3()``.

Given explicitly so that files written before a column existed (before the
schema v2 migration) read it as NULL in the same query as newer files,
instead of failing on a missing column."""

_METRICS_SQL = """
count() AS events,
countIf(type_ = 'order_placed') AS orders,
sumIf(amount_cents, type_ = 'order_placed') AS revenue,
sumIf(amount_cents, type_ = 'refund') AS refunds,
uniqExact(customer_id) AS unique_customers,
countIf(type_ = 'payment' AND status = 'failed') AS payment_failures,
sumIf(delta, type_ = 'inventory_update') AS inventory_delta"""


def metrics_sql(source: str, start_ms: int, end_ms: int, close_ms: int) -> str:
    """SQL computing every metric x granularity x dimension set over ``source``.

    ``source`` is any table expression with :data:`AGG_COLUMNS` (``ts`` as a
    DateTime64/timestamp). Rows with ``start_ms <= ts < end_ms`` are counted;
    only buckets ending at or before ``close_ms`` are returned. One
    ``GROUP BY GROUPING SETS`` over the 12 (granularity, dims) sets, so the
    source is read once (cold Parquet in S3 included), where one ``GROUP BY``
    per set under ``UNION ALL`` would read it 12 times (docs/benchmarks.md,
    Batch layer, has the measurement). A key
    outside a row's set comes out as its type's default (bucket
    1970-01-01, ``store_id`` 0, ``event_type`` ''), never a real value (store ids
    start at 1, event types are non-empty), which gives the view's convention
    and the set's codes. ``granularity`` and ``dims`` come out as the Enum8
    codes of the view table.
    """
    sets = ", ".join("(" + ", ".join((b, *keys)) + ")" for b in ("m", "h", "d") for keys in _DIMS)
    return (
        "SELECT toInt8(if(m != 0, 1, if(h != 0, 2, 3))) AS granularity, "
        "toInt8((store_id != 0) + 2 * (event_type != '')) AS dims, "
        "toDateTime(greatest(m, h, d), 'UTC') AS bucket, store_id, toString(event_type) AS event_type, "
        f"{_METRICS_SQL} FROM ("
        "SELECT toStartOfMinute(t) AS m, toStartOfHour(t) AS h, toStartOfDay(t) AS d, "
        "toUInt64(assumeNotNull(store_id)) AS store_id, assumeNotNull(event_type) AS event_type, "
        "event_type AS type_, customer_id, amount_cents, "
        f"status, delta FROM {_range(source, start_ms, end_ms)}) "
        f"GROUP BY GROUPING SETS ({sets}) "
        f"HAVING toUnixTimestamp(bucket) * 1000 + {_width('granularity')} <= {int(close_ms)}"
    )


def _range(source: str, start_ms: int, end_ms: int) -> str:
    """``source`` rows with ``start_ms <= ts < end_ms``, ``ts`` also as ``t`` (DateTime64 UTC)."""
    # assumeNotNull: the ``Python()`` table function reads Arrow columns as Nullable,
    # and a Nullable key outside a grouping set would come out NULL, not its default
    return (
        f"(SELECT *, toDateTime64(assumeNotNull(ts), 3, 'UTC') AS t FROM {source} "
        f"WHERE toUnixTimestamp64Milli(t) BETWEEN {int(start_ms)} AND {int(end_ms) - 1})"
    )


def _width(code: str) -> str:
    return f"multiIf({code} = 1, 60000, {code} = 2, 3600000, 86400000)"


_DIMS: tuple[tuple[str, ...], ...] = ((), ("store_id",), ("event_type",), ("store_id", "event_type"))


def inventory_sql(source: str, start_ms: int, end_ms: int, close_ms: int) -> str:
    """SQL for ``inventory_delta`` per (store_id, product_id) at every granularity (one pass)."""
    return (
        "SELECT toInt8(if(m != 0, 1, if(h != 0, 2, 3))) AS granularity, "
        "toDateTime(greatest(m, h, d), 'UTC') AS bucket, store_id, product_id, "
        "toInt64(sum(delta)) AS inventory_delta FROM ("
        "SELECT toStartOfMinute(t) AS m, toStartOfHour(t) AS h, toStartOfDay(t) AS d, "
        "toUInt64(assumeNotNull(store_id)) AS store_id, "
        "toInt64(assumeNotNull(product_id)) AS product_id, delta "
        f"FROM {_range(source, start_ms, end_ms)} WHERE event_type = 'inventory_update') "
        "GROUP BY GROUPING SETS ((m, store_id, product_id), (h, store_id, product_id), "
        "(d, store_id, product_id)) "
        f"HAVING toUnixTimestamp(bucket) * 1000 + {_width('granularity')} <= {int(close_ms)}"
    )


def campaign_sql(source: str, start_ms: int, end_ms: int, close_ms: int) -> str:
    """SQL for ``events``, ``orders``, ``revenue``, ``unique_customers`` by campaign (one pass).

    Grouping sets (campaign) and (campaign, event_type) at every granularity;
    an event without a campaign (NULL in old cold files, ``''`` in the tables)
    is campaign ``''``. ``dims`` is 1 for (campaign) and 2 for (campaign,
    event_type): a row outside the event-type set gets ``event_type = ''``,
    never a real type.
    """
    sets = ", ".join(f"({b}, campaign_id)" + f", ({b}, campaign_id, event_type)" for b in ("m", "h", "d"))
    return (
        "SELECT toInt8(if(m != 0, 1, if(h != 0, 2, 3))) AS granularity, "
        "toInt8(1 + (event_type != '')) AS dims, "
        "toDateTime(greatest(m, h, d), 'UTC') AS bucket, campaign_id, toString(event_type) AS event_type, "
        "count() AS events, countIf(type_ = 'order_placed') AS orders, "
        "sumIf(amount_cents, type_ = 'order_placed') AS revenue, "
        "uniqExact(customer_id) AS unique_customers FROM ("
        "SELECT toStartOfMinute(t) AS m, toStartOfHour(t) AS h, toStartOfDay(t) AS d, "
        "toString(ifNull(campaign_id, '')) AS campaign_id, assumeNotNull(event_type) AS event_type, "
        f"event_type AS type_, customer_id, amount_cents FROM {_range(source, start_ms, end_ms)}) "
        f"GROUP BY GROUPING SETS ({sets}) "
        f"HAVING toUnixTimestamp(bucket) * 1000 + {_width('granularity')} <= {int(close_ms)}"
    )


@dataclass(frozen=True)
class PartitionResult:
    """What one partition task returns to the owner."""

    start_ms: int
    metrics: pa.Table
    inventory: pa.Table
    rows_engine: int
    rows_cold: int
    campaigns: pa.Table | None = None  # by campaign (schema v2); None from an older task


_LOCK = threading.Lock()
_SESSION: list[Any] = []


def _session() -> Any:
    """A chDB connection usable in this process (see the module docstring)."""
    import chdb

    if _SESSION:
        return _SESSION[0]
    try:
        conn = chdb.connect(":memory:")
    except Exception as exc:  # the owner process: reuse its path-bound engine
        found = re.search(r"initialized with path '([^']+)'", str(exc))
        if not found:
            raise
        conn = chdb.connect(found.group(1))
    _SESSION.append(conn)
    return conn


def _read_cold(urls: list[str], location: S3Location) -> pa.Table | None:
    if not urls:
        return None
    import s3fs

    # credentials come from this worker's own configuration, never from the task
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **worker_storage_options(location))
    tables = []
    for u in urls:
        path = u.removeprefix("s3://")
        present = set(pq.read_schema(path, filesystem=fs).names)
        table = pq.read_table(path, filesystem=fs, columns=[c for c in AGG_COLUMNS if c in present])
        for name in AGG_COLUMNS:  # a file written before a column existed reads it as NULL
            if name not in present:
                table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
        tables.append(table.select(list(AGG_COLUMNS)))
    return pa.concat_tables(tables)


def _normalise(table: pa.Table) -> pa.Table:
    """Same column types whatever the source (ClickHouse export or Parquet)."""
    types = {
        "ts": pa.timestamp("ms", tz="UTC"),
        "store_id": pa.uint64(),
        "event_type": pa.string(),
        "customer_id": pa.uint64(),
        "amount_cents": pa.int64(),
        "status": pa.string(),
        "delta": pa.int64(),
        "product_id": pa.int64(),
        "campaign_id": pa.string(),
    }
    cols = []
    for name in AGG_COLUMNS:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        cols.append(col.cast(types[name]))
    return pa.table(dict(zip(AGG_COLUMNS, cols, strict=True)))


def aggregate_partition(
    engine_rows: pa.Table | None,
    cold_urls: list[str],
    location: S3Location,
    start_ms: int,
    end_ms: int,
    close_ms: int,
) -> PartitionResult:
    """Aggregate one partition: ``engine_rows`` (hot/warm export) plus cold files.

    ``location`` names the S3 endpoint only: the task graph holds no secret
    (see :mod:`lambda_rt.clients.s3_worker`).
    """
    cold = _read_cold(cold_urls, location)
    pieces = [_normalise(t) for t in (engine_rows, cold) if t is not None and t.num_rows]
    rows_engine = engine_rows.num_rows if engine_rows is not None else 0
    rows_cold = cold.num_rows if cold is not None else 0
    if not pieces:
        return PartitionResult(
            start_ms, _empty_metrics(), _empty_inventory(), rows_engine, rows_cold, _empty_campaigns()
        )
    data = pa.concat_tables(pieces)  # noqa: F841 - read by chDB's Python() table function
    with _LOCK:
        conn = _session()
        metrics = conn.query(metrics_sql("Python(data)", start_ms, end_ms, close_ms), "ArrowTable")
        inventory = conn.query(inventory_sql("Python(data)", start_ms, end_ms, close_ms), "ArrowTable")
        campaigns = conn.query(campaign_sql("Python(data)", start_ms, end_ms, close_ms), "ArrowTable")
    return PartitionResult(
        start_ms, _compact(metrics), _compact(inventory), rows_engine, rows_cold, _compact(campaigns)
    )


def _compact(table: pa.Table) -> pa.Table:
    """Cheaper to insert: Enum columns as Int8 codes, event_type dictionary-encoded.

    ClickHouse then stores the codes as they are instead of parsing a string per
    row (docs/benchmarks.md, Batch layer, has the measurement).
    """
    import pyarrow.compute as pc

    if "granularity" in table.column_names and pa.types.is_string(table.schema.field("granularity").type):
        # the views' Enum8 codes (batch_layer.views.GRANULARITY_CODES) are 1-based positions
        codes = pc.index_in(table["granularity"], pa.array(GRANULARITIES))
        table = table.set_column(0, "granularity", pc.add(codes, 1).cast(pa.int8()))
    if "event_type" in table.column_names:
        i = table.column_names.index("event_type")
        table = table.set_column(i, "event_type", table["event_type"].dictionary_encode())
    return table


def _empty_metrics() -> pa.Table:
    return pa.table(
        {
            "granularity": pa.array([], pa.int8()),
            "dims": pa.array([], pa.int8()),
            "bucket": pa.array([], pa.timestamp("s", tz="UTC")),
            "store_id": pa.array([], pa.uint64()),
            "event_type": pa.array([], pa.string()),
            **{m: pa.array([], pa.int64()) for m in METRICS},
        }
    )


def _empty_campaigns() -> pa.Table:
    return pa.table(
        {
            "granularity": pa.array([], pa.int8()),
            "dims": pa.array([], pa.int8()),
            "bucket": pa.array([], pa.timestamp("s", tz="UTC")),
            "campaign_id": pa.array([], pa.string()),
            "event_type": pa.array([], pa.string()),
            **{m: pa.array([], pa.int64()) for m in ("events", "orders", "revenue", "unique_customers")},
        }
    )


def _empty_inventory() -> pa.Table:
    return pa.table(
        {
            "granularity": pa.array([], pa.int8()),
            "bucket": pa.array([], pa.timestamp("s", tz="UTC")),
            "store_id": pa.array([], pa.uint64()),
            "product_id": pa.array([], pa.int64()),
            "inventory_delta": pa.array([], pa.int64()),
        }
    )
