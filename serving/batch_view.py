"""Read the batch view (ClickHouse) for the batch pieces of a plan, and its state.

Goes through the batch layer's read side only (:mod:`batch_layer.views`).

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
from datetime import UTC, datetime

import pandas as pd

from batch_layer import views
from lambda_rt.clients.clickhouse import Client
from serving.plan import Piece

__all__ = ["BatchState", "BatchStateReader", "read_batch_piece"]

_TABLES = (views.BATCH_STATE, views.BATCH_METRICS, views.BATCH_INVENTORY)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


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


def read_batch_piece(client: Client, piece: Piece, metric: str, by: tuple[str, ...]) -> pd.DataFrame:
    """Rows ``bucket_ms``, dims, ``value`` of one batch piece (exact)."""
    start, end = _dt(piece.start_ms), _dt(piece.end_ms)
    if metric == "inventory_delta" and "product_id" in by:
        df = views.read_inventory_by_product(client, start, end, piece.granularity)
        if by != ("store_id", "product_id"):
            df = df.groupby(["bucket", *by], as_index=False, sort=False)[["value"]].sum()
    else:
        df = views.read_batch_view(client, metric, by, start, end, piece.granularity)
    out = pd.DataFrame({"bucket_ms": _bucket_ms(df["bucket"])})
    for d in by:
        out[d] = df[d].astype(object if d == "event_type" else "int64").to_numpy()
    out["value"] = df["value"].astype("int64").to_numpy()
    return out


def _bucket_ms(col: pd.Series) -> pd.Series:
    if col.empty:
        return pd.Series(dtype="int64")
    return pd.Series(col.dt.tz_convert(UTC).dt.as_unit("ms").astype("int64").to_numpy())
