"""ClickHouse DDL of every table the batch layer owns, and ``ensure_tables``.

Raw events (the master dataset):

- ``events_hot``: what ingest writes. MergeTree partitioned by event-time day
  (tier moves and recompute work day by day), ordered by ``(event_type, ts)``
  (long ``ts`` runs that DoubleDelta packs; nothing scans hot rows per store);
  ZSTD(1) with DoubleDelta/T64: as cheap to insert as LZ4 and about twice as
  small as LZ4 under ``(store_id, event_type, ts)`` (bench/batch.py; the
  figures are in docs/benchmarks.md).
  ``(kafka_partition, kafka_offset)`` identifies each row's source message.
  ``non_replicated_deduplication_window`` makes ``insert_deduplication_token``
  work (measured on chDB: a replayed insert with the same token inserts nothing).
- ``events_warm``: the same columns recompressed (ZSTD(3), DoubleDelta, T64),
  ordered by ``(store_id, event_type, ts)``, plus ``move_id``, the tier move
  that copied the row. Existing tables keep the codecs they were created with.
- ``events_hot_outbox`` / ``events_warm_outbox``: clones of the two tables that
  a tier move claims a day partition into (``MOVE PARTITION``, atomic), so late
  rows arriving while a day is being moved are never deleted uncopied.

Derived data: ``batch_metrics`` / ``batch_inventory`` (views, see
:mod:`batch_layer.views`) with ``*_staging`` twins used to replace a day
atomically, ``batch_state`` (watermark), ``late_events`` (late-event ledger),
``tier_moves`` (tier manifest), ``ingest_log`` (ingest block intents) and
``job_history``.

Absent optional fields are stored as the type's default (0 or ''), not NULL:
smaller, and no metric depends on the difference; ``stock_on_hand`` is the
exception (Nullable: a stock of 0 is the figure that matters most). The
schema v2 columns and ``extra`` (the JSON of the fields no column holds, see
:mod:`lambda_rt.events.extra`) are not in the ``CREATE`` statements: the
recorded migration of :mod:`batch_layer.migrations` adds them, to new and
existing tables alike, so every database reaches the same shape by one path.
This module holds no logic.
"""

from __future__ import annotations

from batch_layer.views import GRANULARITY_CODES
from lambda_rt.clients.clickhouse import Client

__all__ = [
    "BATCH_STATE",
    "EVENTS_HOT",
    "EVENTS_HOT_OUTBOX",
    "EVENTS_WARM",
    "EVENTS_WARM_OUTBOX",
    "EVENT_COLUMNS",
    "EVENT_COLUMN_TYPES",
    "EVENT_TABLES",
    "INGEST_LOG",
    "JOB_HISTORY",
    "LATE_EVENTS",
    "TIER_MOVES",
    "V2_EVENT_COLUMNS",
    "create_tables",
]

EVENTS_HOT = "events_hot"
EVENTS_HOT_OUTBOX = "events_hot_outbox"
EVENTS_WARM = "events_warm"
EVENTS_WARM_OUTBOX = "events_warm_outbox"
BATCH_STATE = "batch_state"
LATE_EVENTS = "late_events"
TIER_MOVES = "tier_moves"
INGEST_LOG = "ingest_log"
JOB_HISTORY = "job_history"

# name, type, hot codec, warm codec (chosen with bench/batch.py, see docs/benchmarks.md)
_EVENT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("event_id", "String", "ZSTD(1)", "ZSTD(3)"),
    ("event_type", "LowCardinality(String)", "ZSTD(1)", "ZSTD(3)"),
    ("ts", "DateTime64(3, 'UTC')", "DoubleDelta, ZSTD(1)", "DoubleDelta, ZSTD(3)"),
    ("store_id", "UInt64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("customer_id", "UInt64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("session_id", "String", "ZSTD(1)", "ZSTD(3)"),
    ("schema_version", "UInt16", "ZSTD(1)", "ZSTD(3)"),
    ("product_id", "Int64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("quantity", "Int64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("order_id", "String", "ZSTD(1)", "ZSTD(3)"),
    ("amount_cents", "Int64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("items", "Int64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("status", "LowCardinality(String)", "ZSTD(1)", "ZSTD(3)"),
    ("method", "LowCardinality(String)", "ZSTD(1)", "ZSTD(3)"),
    ("delta", "Int64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("kafka_partition", "UInt16", "ZSTD(1)", "ZSTD(3)"),
    # offsets are not sorted within (event_type, ts) or (store_id, ...) runs: T64 beats Delta
    ("kafka_offset", "UInt64", "T64, ZSTD(1)", "T64, ZSTD(3)"),
)
V2_EVENT_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("campaign_id", "LowCardinality(String)", "ZSTD(1)", "ZSTD(3)"),
    ("card_fingerprint", "String", "ZSTD(1)", "ZSTD(3)"),
    ("ip", "String", "ZSTD(1)", "ZSTD(3)"),
    ("device_id", "String", "ZSTD(1)", "ZSTD(3)"),
    ("stock_on_hand", "Nullable(Int64)", "T64, ZSTD(1)", "T64, ZSTD(3)"),
    ("extra", "String", "ZSTD(1)", "ZSTD(3)"),
)
"""Columns the schema v2 migration adds (name, type, hot codec, warm codec)."""
EVENT_COLUMNS: tuple[str, ...] = tuple(c[0] for c in (*_EVENT_COLUMNS, *V2_EVENT_COLUMNS))
"""Raw event columns once migrated, in table order (``events_warm`` has ``move_id``
before the v2 columns)."""

EVENT_TABLES: tuple[tuple[str, bool], ...] = (
    (EVENTS_HOT, False),
    (EVENTS_HOT_OUTBOX, False),
    (EVENTS_WARM, True),
    (EVENTS_WARM_OUTBOX, True),
)
"""The raw event tables and whether each is warm (its codecs)."""
EVENT_COLUMN_TYPES: dict[str, str] = {c[0]: c[1] for c in (*_EVENT_COLUMNS, *V2_EVENT_COLUMNS)}
"""Raw event column -> its ClickHouse type in the hot and warm tables (once migrated)."""

_HOT_ORDER = "ORDER BY (event_type, ts)"
_WARM_ORDER = "ORDER BY (store_id, event_type, ts)"
_PART = "PARTITION BY toDate(ts)"


def _columns(warm: bool) -> str:
    cols = [f"`{n}` {t} CODEC({w if warm else h})" for n, t, h, w in _EVENT_COLUMNS]
    if warm:
        cols.append("`move_id` LowCardinality(String) CODEC(ZSTD(3))")
    return ",\n  ".join(cols)


_GRANULARITY_ENUM = "Enum8(" + ", ".join(f"'{g}' = {code}" for g, code in GRANULARITY_CODES.items()) + ")"


def _metric_columns() -> str:
    return f"""granularity {_GRANULARITY_ENUM},
  dims Enum8('none' = 0, 'store_id' = 1, 'event_type' = 2, 'store_id,event_type' = 3),
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  store_id UInt64 CODEC(T64, ZSTD(1)),
  event_type LowCardinality(String),
  events UInt64 CODEC(T64, ZSTD(1)),
  orders UInt64 CODEC(T64, ZSTD(1)),
  revenue Int64 CODEC(T64, ZSTD(1)),
  refunds Int64 CODEC(T64, ZSTD(1)),
  unique_customers UInt64 CODEC(T64, ZSTD(1)),
  payment_failures UInt64 CODEC(T64, ZSTD(1)),
  inventory_delta Int64 CODEC(T64, ZSTD(1))"""


def _campaign_columns() -> str:
    return f"""granularity {_GRANULARITY_ENUM},
  dims Enum8('campaign_id' = 1, 'campaign_id,event_type' = 2),
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  campaign_id String CODEC(ZSTD(1)),
  event_type LowCardinality(String),
  events UInt64 CODEC(T64, ZSTD(1)),
  orders UInt64 CODEC(T64, ZSTD(1)),
  revenue Int64 CODEC(T64, ZSTD(1)),
  unique_customers UInt64 CODEC(T64, ZSTD(1))"""


def _inventory_columns() -> str:
    return f"""granularity {_GRANULARITY_ENUM},
  bucket DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
  store_id UInt64 CODEC(T64, ZSTD(1)),
  product_id Int64 CODEC(T64, ZSTD(1)),
  inventory_delta Int64 CODEC(T64, ZSTD(1))"""


def _ddl() -> list[str]:
    from batch_layer.views import BATCH_CAMPAIGNS, BATCH_INVENTORY, BATCH_METRICS

    dedup = "SETTINGS non_replicated_deduplication_window = 10000"
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {EVENTS_HOT} (\n  {_columns(False)}\n) "
        f"ENGINE = MergeTree {_PART} {_HOT_ORDER} {dedup}",
        f"CREATE TABLE IF NOT EXISTS {EVENTS_HOT_OUTBOX} AS {EVENTS_HOT}",
        f"CREATE TABLE IF NOT EXISTS {EVENTS_WARM} (\n  {_columns(True)}\n) "
        f"ENGINE = MergeTree {_PART} {_WARM_ORDER} {dedup}",
        f"CREATE TABLE IF NOT EXISTS {EVENTS_WARM_OUTBOX} AS {EVENTS_WARM}",
    ]
    for name, cols, order in (
        (BATCH_METRICS, _metric_columns(), "(granularity, dims, bucket, store_id, event_type)"),
        (BATCH_INVENTORY, _inventory_columns(), "(granularity, store_id, product_id, bucket)"),
        (BATCH_CAMPAIGNS, _campaign_columns(), "(granularity, dims, bucket, campaign_id, event_type)"),
    ):
        for table in (name, f"{name}_staging"):
            stmts.append(
                f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n) ENGINE = MergeTree "
                f"PARTITION BY toDate(bucket) ORDER BY {order}"
            )
    stmts += [
        f"""CREATE TABLE IF NOT EXISTS {BATCH_STATE} (
  key LowCardinality(String), value Int64, version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY key""",
        f"""CREATE TABLE IF NOT EXISTS {LATE_EVENTS} (
  day Date, events UInt64, min_ts DateTime64(3, 'UTC'), max_ts DateTime64(3, 'UTC'),
  recorded_ms Int64
) ENGINE = MergeTree ORDER BY (recorded_ms, day)""",
        f"""CREATE TABLE IF NOT EXISTS {TIER_MOVES} (
  move_id String, day Date, src LowCardinality(String), dst LowCardinality(String),
  state LowCardinality(String), rows UInt64, checksum UInt64, location String,
  created_at DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC'), version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY move_id""",
        f"""CREATE TABLE IF NOT EXISTS {INGEST_LOG} (
  topic String, partition UInt32, first UInt64, last UInt64, token String,
  recorded_at DateTime64(3, 'UTC')
) ENGINE = MergeTree ORDER BY (topic, partition, first)""",
        f"""CREATE TABLE IF NOT EXISTS {JOB_HISTORY} (
  run_id String, job LowCardinality(String), window_start Nullable(DateTime64(3, 'UTC')),
  window_end Nullable(DateTime64(3, 'UTC')), started_at DateTime64(3, 'UTC'),
  ended_at Nullable(DateTime64(3, 'UTC')), rows UInt64, status LowCardinality(String),
  error String, version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (job, run_id)""",
    ]
    return stmts


def create_tables(client: Client) -> None:
    """Create every batch-layer table in its first shape if missing (no migration)."""
    for stmt in _ddl():
        client.command(stmt)
