"""Read the batch view (ClickHouse) for the batch pieces of a plan, and its state.

Goes through the batch layer's read side only (:mod:`batch_layer.views`: table
names and layout). All batch pieces of a query are read in **one** query that
maps every row to its target bucket and sums in SQL, returned as Arrow (no
pandas): a chDB query costs a fixed few ms however small, so one beats two.

:class:`BatchStateReader` answers "what is the watermark, and has anything in
the batch views changed?" cheaply enough to sit in front of a 1 ms cache hit:

- embedded chDB: the views and ``batch_state`` are MergeTree tables owned by
  this process; every insert, partition replace or merge creates or removes a
  part directory, which changes the table directory's mtime. The token is the
  ``st_mtime_ns`` of those directories (a few microseconds); the watermark is
  re-read from ClickHouse only when the token changed. The token is read
  *before* the data, so a write racing a read can only cause a spurious miss.
- a ClickHouse server: the token is an order-free hash of the active part
  names of the same tables (``system.parts``), one query.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from batch_layer import views
from lambda_rt.clients.clickhouse import Client
from serving.plan import Piece
from serving.speed_view import EVENT_TYPE_NAMES, Columns, empty_columns

__all__ = ["BatchState", "BatchStateReader", "batch_pieces_sql", "dim_columns_sql", "read_batch_pieces"]

_TABLES = (views.BATCH_STATE, views.BATCH_METRICS, views.BATCH_INVENTORY, views.BATCH_CAMPAIGNS)


class BatchState:
    """The watermark (epoch ms or None) and the version token it was read under."""

    __slots__ = ("token", "watermark_ms")

    def __init__(self, watermark_ms: int | None, token: tuple[object, ...]) -> None:
        self.watermark_ms = watermark_ms
        self.token = token


class BatchStateReader:
    """Cheap, exact change detection for the batch views (see the module docstring)."""

    def __init__(self, client: Client, *, embedded: bool) -> None:
        self._client = client
        self._embedded = embedded
        self._paths: list[str] | None = None
        self._last: BatchState | None = None
        self._lock = threading.Lock()

    def _resolve_paths(self) -> list[str] | None:
        rows = self._client.query(
            "SELECT name, data_paths FROM system.tables WHERE database = currentDatabase() AND name IN %(t)s",
            parameters={"t": list(_TABLES)},
        ).result_rows
        if len(rows) < len(_TABLES):
            return None
        return sorted(p for _, paths in rows for p in paths)

    def _token(self) -> tuple[object, ...] | None:
        if not self._embedded:
            rows = self._client.query(
                "SELECT groupBitXor(cityHash64(table, name)), count() FROM system.parts "
                "WHERE database = currentDatabase() AND active AND table IN %(t)s",
                parameters={"t": list(_TABLES)},
            ).result_rows
            return ("parts", int(rows[0][0]), int(rows[0][1]))
        for _ in range(2):
            if self._paths is None:
                self._paths = self._resolve_paths()
                if self._paths is None:
                    return None  # tables not created yet: nothing cached
            try:
                return tuple(os.stat(p).st_mtime_ns for p in self._paths)
            except FileNotFoundError:
                self._paths = None  # a table was dropped and re-created
        return None

    def forget(self) -> None:
        """Re-read the watermark on the next call even if the token did not move (benchmarks)."""
        with self._lock:
            self._last = None

    def state(self) -> BatchState:
        """The current watermark and token (ClickHouse read only when the token moved)."""
        with self._lock:
            token = self._token()
            if token is None:
                return BatchState(None, ("absent",))
            if self._last is not None and self._last.token == token:
                return self._last
            wm = views.read_watermark(self._client)
            state = BatchState(int(wm.timestamp() * 1000) if wm else None, token)
            self._last = state
            return state


def dim_columns_sql(dims: tuple[str, ...]) -> list[str]:
    """Select expressions of ``dims`` as Int64 (``event_type`` as its code in EVENT_TYPE_NAMES)."""
    cols = []
    for d in dims:
        if d == "event_type":
            names = ", ".join(f"'{t}'" for t in EVENT_TYPE_NAMES)
            cols.append(f"toInt64(indexOf([{names}], event_type)) - 1 AS event_type")
        else:
            cols.append(f"toInt64({d}) AS {d}")
    return cols


def batch_pieces_sql(pieces: list[Piece], metric: str, by: tuple[str, ...], width_ms: int) -> str:
    """One query for every batch piece: rows already mapped to and summed per target bucket.

    Columns: ``bucket_ms`` (target bucket start), the ``by`` dims (``event_type``
    as its code, see :data:`serving.speed_view.EVENT_TYPE_NAMES`) and ``value``,
    all Int64. Every number in the text is an int computed here, so nothing a
    caller typed reaches the SQL.
    """
    width_s = width_ms // 1000
    ranges = " OR ".join(
        f"(granularity = '{p.granularity}' AND bucket >= toDateTime({p.start_ms // 1000}, 'UTC') "
        f"AND bucket < toDateTime({-(-p.end_ms // 1000)}, 'UTC'))"
        for p in pieces
    )
    cols = [f"toInt64(intDiv(toUInt32(bucket), {width_s}) * {width_s}) * 1000 AS bucket_ms"]
    cols += dim_columns_sql(by)
    if metric == "inventory_delta" and "product_id" in by:
        table, where, column = views.BATCH_INVENTORY, "inventory_delta != 0", "inventory_delta"
    else:
        key = ",".join(by) or "none"
        table, column = views.BATCH_METRICS, metric
        where = f"dims = '{key}'" + ("" if metric == "unique_customers" else f" AND {metric} != 0")
    group = ", ".join(("bucket_ms", *by))
    return (
        f"SELECT {', '.join(cols)}, toInt64(sum({column})) AS value FROM {table} "
        f"WHERE {where} AND ({ranges}) GROUP BY {group} "
        # a few granules: one thread beats handing blocks between threads on busy
        # cores; cached decompressed blocks of immutable parts are exact
        "SETTINGS max_threads = 1, use_uncompressed_cache = 1"
    )


def read_batch_pieces(
    client: Client, pieces: list[Piece], metric: str, by: tuple[str, ...], width_ms: int
) -> Columns:
    """Every batch piece of a query in one ClickHouse query, as numpy columns (exact)."""
    if not pieces:
        return empty_columns(by)
    if metric not in views.METRIC_COLUMNS:
        raise ValueError(f"unknown metric {metric!r}")
    table = client.query_arrow(batch_pieces_sql(pieces, metric, by, width_ms))
    if table.num_rows == 0:
        return empty_columns(by)
    return {
        name: table.column(name).to_numpy().astype(np.int64, copy=False)
        for name in ("bucket_ms", *by, "value")
    }
