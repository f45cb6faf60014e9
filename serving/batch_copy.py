"""An in-memory columnar copy of the batch views, so an uncached query runs no ClickHouse query.

Why: a chDB query costs several ms of CPU however few rows it reads (parsing,
planning, part selection, the aggregation pipeline; ``SELECT 1`` alone is
~1 ms), more than the whole rest of an uncached answer. The batch views are
final data: they change only when the batch layer writes them, which moves the
batch token (:class:`serving.batch_view.BatchStateReader`). So rows read once
stay exact until the token moves.

Layout: *chunks*, one per (table, metric, dims, granularity, UTC day) - the
day is the views' partition unit. A chunk holds numpy int64 columns
``bucket_ms`` (sorted), the dimension columns (``event_type`` as its code) and
``value``, only rows whose value is not 0 (a missing row means 0, and the merge
drops zero sums anyway). ``unique_customers`` is the exact distinct count the
batch layer stored per bucket and dimension set; a batch piece of a distinct
count is always at the target granularity (see :mod:`serving.plan`), so the
merge never sums two of them: they stay exact, no customer sets needed.

A read slices each piece out of its day chunks with ``np.searchsorted``; the
chunks a query lacks are loaded in **one** ClickHouse query. Bounds:

- a load returns at most ``max_rows`` rows (``LIMIT max_rows + 1``); a query
  that would need more is answered by the aggregating ClickHouse query
  instead (:func:`serving.batch_view.read_batch_pieces`), so memory stays
  bounded whatever the range;
- chunks are evicted least-recently-used once they hold more than
  ``max_rows`` rows in all (a chunk counts :data:`CHUNK_OVERHEAD_ROWS` more
  than its rows, so empty days are bounded too), and a query spanning more
  than :data:`MAX_DAYS` days of chunks goes to ClickHouse directly;
- a new batch token drops every chunk (exact invalidation, like the result
  cache). The token is read before the data, so a write racing a load can only
  make the copy newer than its token, never older: the next query sees the new
  token and reloads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np

from batch_layer import views
from lambda_rt.clients.clickhouse import Client
from lambda_rt.vocabulary import DAY_MS
from serving.batch_view import dim_columns_sql
from serving.plan import Piece
from serving.speed_view import Columns, empty_columns

__all__ = ["CHUNK_OVERHEAD_ROWS", "MAX_DAYS", "BatchCopy", "chunk_load_sql"]

MAX_DAYS = 1_100
"""Day chunks one query may use (three years); longer ranges read ClickHouse."""
CHUNK_OVERHEAD_ROWS = 16
"""What a chunk's Python objects cost, in rows of the budget."""


def _source(metric: str, by: tuple[str, ...]) -> tuple[str, str, tuple[str, ...], str]:
    """(table, value column, stored dims, row filter) of a question in the batch views."""
    if metric == "inventory_delta" and "product_id" in by:
        return views.BATCH_INVENTORY, "inventory_delta", ("store_id", "product_id"), "inventory_delta != 0"
    key = ",".join(by) or "none"
    return views.BATCH_METRICS, metric, by, f"dims = '{key}' AND {metric} != 0"


def chunk_load_sql(metric: str, by: tuple[str, ...], chunks: list[tuple[str, int]], limit: int) -> str:
    """One query for the day chunks ``(granularity, day_ms)``: raw rows, ordered for splitting.

    Every number in the text is an int computed here; names come from fixed
    tables, so nothing a caller typed reaches the SQL.
    """
    table, column, dims, where = _source(metric, by)
    ranges = " OR ".join(
        f"(granularity = '{g}' AND bucket >= toDateTime({a // 1000}, 'UTC') "
        f"AND bucket < toDateTime({b // 1000}, 'UTC'))"
        for g, a, b in _runs(chunks)
    )
    cols = ["toInt8(granularity) AS g", "toInt64(toUInt32(bucket)) * 1000 AS bucket_ms"]
    cols += dim_columns_sql(dims)
    cols.append(f"toInt64({column}) AS value")
    return (
        f"SELECT {', '.join(cols)} FROM {table} WHERE {where} AND ({ranges}) "
        f"ORDER BY g, bucket_ms LIMIT {int(limit)}"
    )


def _runs(chunks: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """Consecutive days of one granularity as one ``(granularity, start, end)`` range."""
    out: list[tuple[str, int, int]] = []
    for g, day in sorted(chunks):
        if out and out[-1][0] == g and out[-1][2] == day:
            out[-1] = (g, out[-1][1], day + DAY_MS)
        else:
            out.append((g, day, day + DAY_MS))
    return out


def _days(piece: Piece) -> range:
    return range(piece.start_ms // DAY_MS * DAY_MS, piece.end_ms, DAY_MS)


class BatchCopy:
    """Day chunks of the batch views for one batch token (see the module docstring).

    Args:
        client: the ClickHouse client loads go through.
        lock: held around every ClickHouse call (the engine's one-query-at-a-time lock).
        max_rows: row budget of one load and of all chunks together; 0 disables the copy.
    """

    def __init__(self, client: Client, lock: threading.Lock, *, max_rows: int = 2_000_000) -> None:
        self._client = client
        self._ch_lock = lock
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._token: tuple[object, ...] | None = None
        self._chunks: OrderedDict[Hashable, Columns] = OrderedDict()
        self.used = 0
        self.loads = 0
        self.fallbacks = 0

    def clear(self) -> None:
        """Drop every chunk (the next read loads again)."""
        with self._lock:
            self._chunks.clear()
            self.used = 0
            self._token = None

    def read(
        self,
        token: tuple[object, ...],
        pieces: list[Piece],
        metric: str,
        by: tuple[str, ...],
        *,
        load: bool = True,
    ) -> Columns | None:
        """The rows of ``pieces`` (per view bucket, not summed), or None when over the budget
        (or, with ``load=False``, when a chunk is not in memory: no ClickHouse query then)."""
        if self.max_rows <= 0 or token == ("absent",):
            return None
        table, _, dims, _ = _source(metric, by)
        base = (table, metric, dims)
        if sum(len(_days(p)) for p in pieces) > MAX_DAYS:
            self.fallbacks += load  # counted once per query: the load=False probe comes first
            return None
        needed = sorted({(p.granularity, d) for p in pieces for d in _days(p)})
        with self._lock:
            if token != self._token:
                self._chunks.clear()
                self.used = 0
                self._token = token
            have: dict[tuple[str, int], Columns] = {}
            for g, d in needed:
                chunk = self._chunks.get((base, g, d))
                if chunk is not None:
                    self._chunks.move_to_end((base, g, d))
                    have[(g, d)] = chunk
        missing = [c for c in needed if c not in have]
        if missing and not load:
            return None
        if missing:
            loaded = self._load(metric, by, dims, missing)
            if loaded is None:
                self.fallbacks += 1
                return None
            have.update(loaded)
            self._store(token, base, loaded)
        return _slice(pieces, have, by)

    def _load(
        self, metric: str, by: tuple[str, ...], dims: tuple[str, ...], missing: list[tuple[str, int]]
    ) -> dict[tuple[str, int], Columns] | None:
        sql = chunk_load_sql(metric, by, missing, self.max_rows + 1)
        with self._ch_lock:
            table = self._client.query_arrow(sql)
        self.loads += 1
        if table.num_rows > self.max_rows:
            return None
        cols: dict[str, Any] = {
            name: table.column(name).to_numpy().astype(np.int64, copy=False)
            for name in ("g", "bucket_ms", *dims, "value")
        }
        out: dict[tuple[str, int], Columns] = {}
        g = cols.pop("g")
        for gran, code in views.GRANULARITY_CODES.items():
            days = [d for gg, d in missing if gg == gran]
            if not days:
                continue
            lo, hi = np.searchsorted(g, [code, code + 1])
            part = {k: v[lo:hi] for k, v in cols.items()}
            starts = np.searchsorted(part["bucket_ms"], days)
            ends = np.searchsorted(part["bucket_ms"], [d + DAY_MS for d in days])
            for d, a, b in zip(days, starts, ends, strict=True):
                chunk = {k: np.ascontiguousarray(v[a:b]) for k, v in part.items()}
                for arr in chunk.values():
                    arr.flags.writeable = False  # shared by every later read
                out[(gran, d)] = chunk
        return out

    def _store(
        self, token: tuple[object, ...], base: Hashable, loaded: dict[tuple[str, int], Columns]
    ) -> None:
        with self._lock:
            if token != self._token:
                return  # a newer token arrived meanwhile: these rows are not for it
            for (g, d), chunk in loaded.items():
                key = (base, g, d)
                old = self._chunks.pop(key, None)
                if old is not None:
                    self.used -= _cost(old)
                self._chunks[key] = chunk
                self.used += _cost(chunk)
            while self.used > self.max_rows and self._chunks:
                _, evicted = self._chunks.popitem(last=False)
                self.used -= _cost(evicted)

    def stats(self) -> dict[str, int]:
        """Figures for ``/status``."""
        return {
            "chunks": len(self._chunks),
            "budget_used": self.used,
            "max_rows": self.max_rows,
            "loads": self.loads,
            "fallbacks": self.fallbacks,
        }


def _cost(chunk: Columns) -> int:
    return len(chunk["value"]) + CHUNK_OVERHEAD_ROWS


def _slice(pieces: list[Piece], chunks: dict[tuple[str, int], Columns], by: tuple[str, ...]) -> Columns:
    """Each piece's rows out of its day chunks (binary search on the sorted buckets)."""
    names = ("bucket_ms", *by, "value")
    parts: list[Columns] = []
    for p in pieces:
        for d in _days(p):
            chunk = chunks[(p.granularity, d)]
            bm = chunk["bucket_ms"]
            if not len(bm):
                continue
            a, b = np.searchsorted(bm, [max(p.start_ms, d), min(p.end_ms, d + DAY_MS)])
            if b > a:
                parts.append({k: chunk[k][a:b] for k in names})
    if not parts:
        return empty_columns(by)
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([q[k] for q in parts]) for k in names}
