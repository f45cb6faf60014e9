"""Which rows of the master dataset are visible, tier by tier, at any instant.

A tier move (:mod:`batch_layer.tiering`) copies a day before deleting it, so for
a while a row can exist in two places. Readers see every row exactly once by
following the manifest (``tier_moves``):

- ``events_hot``: always visible (a move first claims rows out of it);
- ``events_hot_outbox``: visible unless the day's hot->warm move is ``recorded``
  (then the verified copy in warm is the visible one, until the outbox is dropped);
- ``events_warm`` and ``events_warm_outbox``: rows whose ``move_id`` is
  ``recorded``/``done`` (a partial, unverified copy is invisible); the warm
  outbox also hides a day whose warm->cold move is ``recorded``;
- cold Parquet files: only the files of ``recorded``/``done`` moves.

This module only reads; it does not move anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa

from batch_layer.aggregate import AGG_COLUMNS
from batch_layer.tables import (
    EVENTS_HOT,
    EVENTS_HOT_OUTBOX,
    EVENTS_WARM,
    EVENTS_WARM_OUTBOX,
    TIER_MOVES,
)
from lambda_rt.clients.clickhouse import Client
from lambda_rt.config import S3Settings
from lambda_rt.vocabulary import DAY_MS

__all__ = [
    "COMMITTED",
    "TierSnapshot",
    "cold_http_url",
    "day_start_ms",
    "day_window",
    "engine_days",
    "engine_sql",
    "export_engine_rows",
    "snapshot",
    "tier_count_sql",
]

COMMITTED = ("recorded", "done")


@dataclass(frozen=True)
class TierSnapshot:
    """The manifest at one instant: committed moves and hidden outbox days."""

    committed_ids: tuple[str, ...]
    hot_outbox_hidden: frozenset[date]
    warm_outbox_hidden: frozenset[date]
    cold_files: dict[date, list[str]]  # s3://bucket/key of committed cold files per day
    cold_rows: dict[date, int]  # rows of those files (from the manifest)

    def cold_days(self) -> list[date]:
        return sorted(self.cold_files)


def snapshot(client: Client) -> TierSnapshot:
    """Read the manifest once; pass the result to every reader of one job run."""
    sql = f"SELECT move_id, day, src, dst, state, location, rows FROM {TIER_MOVES} FINAL"
    rows = client.query(sql).result_rows
    committed: list[str] = []
    hot_hidden: set[date] = set()
    warm_hidden: set[date] = set()
    cold: dict[date, list[str]] = {}
    cold_rows: dict[date, int] = {}
    for move_id, day, src, dst, state, location, n in rows:
        if state in COMMITTED:
            committed.append(move_id)
            if dst == "cold":
                cold.setdefault(day, []).append(location)
                cold_rows[day] = cold_rows.get(day, 0) + int(n)
        if state == "recorded":
            (hot_hidden if src == "hot" else warm_hidden).add(day)
    for files in cold.values():
        files.sort()
    return TierSnapshot(
        tuple(sorted(committed)), frozenset(hot_hidden), frozenset(warm_hidden), cold, cold_rows
    )


def _ids(snap: TierSnapshot) -> str:
    return "(" + ", ".join(f"'{m}'" for m in snap.committed_ids) + ")" if snap.committed_ids else "('')"


def _days(days: frozenset[date]) -> str:
    return (
        "(" + ", ".join(f"toDate('{d.isoformat()}')" for d in sorted(days)) + ")" if days else "(toDate(0))"
    )


def engine_sql(snap: TierSnapshot, start_ms: int, end_ms: int, columns: tuple[str, ...] = AGG_COLUMNS) -> str:
    """SQL returning every visible hot/warm row with ``start_ms <= ts < end_ms``."""
    cols = ", ".join(f"`{c}`" for c in columns)
    rng = (
        f"ts >= fromUnixTimestamp64Milli(toInt64({int(start_ms)}), 'UTC') "
        f"AND ts < fromUnixTimestamp64Milli(toInt64({int(end_ms)}), 'UTC')"
    )
    parts = [
        f"SELECT {cols} FROM {EVENTS_HOT} WHERE {rng}",
        f"SELECT {cols} FROM {EVENTS_HOT_OUTBOX} WHERE {rng} "
        f"AND toDate(ts) NOT IN {_days(snap.hot_outbox_hidden)}",
        f"SELECT {cols} FROM {EVENTS_WARM} WHERE {rng} AND move_id IN {_ids(snap)}",
        f"SELECT {cols} FROM {EVENTS_WARM_OUTBOX} WHERE {rng} AND move_id IN {_ids(snap)} "
        f"AND toDate(ts) NOT IN {_days(snap.warm_outbox_hidden)}",
    ]
    return " UNION ALL ".join(parts)


def cold_http_url(settings: S3Settings, s3_url: str) -> str:
    """``s3://bucket/key`` -> the endpoint URL ClickHouse's ``s3()`` function wants."""
    return f"{settings.endpoint.rstrip('/')}/{s3_url.removeprefix('s3://')}"


def engine_days(client: Client, snap: TierSnapshot, start_ms: int, end_ms: int) -> list[date]:
    """Days with at least one visible hot/warm row in the range."""
    rows = client.query(
        f"SELECT DISTINCT toDate(ts) AS d FROM ({engine_sql(snap, start_ms, end_ms, ('ts',))}) ORDER BY d"
    ).result_rows
    return [r[0] for r in rows]


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def day_window(day: date, close_ms: int) -> tuple[int, int]:
    """``[start, end)`` of ``day`` in epoch ms, its end cut at ``close_ms`` (the open part is left out)."""
    start = day_start_ms(day)
    return start, min(start + DAY_MS, close_ms)


def export_engine_rows(client: Client, snap: TierSnapshot, start_ms: int, end_ms: int) -> pa.Table:
    """The visible hot/warm rows of a range as Arrow (the owner's share of a partition)."""
    return client.query_arrow(engine_sql(snap, start_ms, end_ms), use_strings=True)


def tier_count_sql(snap: TierSnapshot, start_ms: int, end_ms: int) -> str:
    """SQL counting visible hot/warm rows per tier in a range (cold counted from files)."""
    hot_warm = engine_sql(snap, start_ms, end_ms, ("ts",)).split(" UNION ALL ")
    tagged = [
        p.replace("SELECT `ts`", f"SELECT '{tier}' AS tier", 1)
        for p, tier in zip(hot_warm, ("hot", "hot", "warm", "warm"), strict=True)
    ]
    return f"SELECT tier, count() FROM ({' UNION ALL '.join(tagged)}) GROUP BY tier"
