"""The ``extra`` column of the master dataset: the JSON of the fields no column holds.

:func:`extra_json` returns, for every valid event of a validated batch, the
JSON object of the message's fields that did not land in a column of
:data:`~lambda_rt.events.schema.EVENT_SCHEMA`: fields no registered version
knows, and known fields sent on an event type they do not belong to. A later
schema version can then promote such a field to a column by backfill instead
of losing it at ingest. ``""`` when there is nothing extra (the common case).

How it stays vectorised: every key of a JSON object is followed by exactly one
``:`` outside strings, so a line holding no more ``:`` bytes than the event has
stored (non-null) fields has no field beyond them. Only lines with more colons
(an extra field, a ``null``, or a colon inside a string value) are decoded one
by one with orjson. It is used by the batch ingest, never by the speed path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson
import pyarrow as pa

from lambda_rt.events.schema import EVENT_SCHEMA

__all__ = ["extra_json"]

_COLUMNS = frozenset(EVENT_SCHEMA.names)


def extra_json(values: Sequence[bytes], table: pa.Table, indices: np.ndarray) -> pa.Array:
    """One string per row of ``table`` (``ValidatedBatch.table``): its extra fields, or ``""``.

    Args:
        values: the raw messages the batch was validated from.
        table: the valid events (:data:`EVENT_SCHEMA`).
        indices: input position of each table row (``ValidatedBatch.indices``).
    """
    n = table.num_rows
    if n == 0:
        return pa.array([], pa.string())
    rows = [values[i] for i in indices.tolist()]
    data = b"\n".join(rows)
    buf = np.frombuffer(data, np.uint8)
    lens = np.fromiter(map(len, rows), np.int64, count=n)
    starts = np.zeros(n, np.int64)
    np.cumsum(lens[:-1] + 1, out=starts[1:])
    line_of = np.searchsorted(starts, np.flatnonzero(buf == ord(":")), side="right") - 1
    colons = np.bincount(line_of, minlength=n)
    stored = np.zeros(n, np.int64)
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name != "schema_version":
            stored += ~column.is_null().to_numpy(zero_copy_only=False)
    # schema_version is filled with 1 when absent: count it only where the key is there
    stored += _has_key(data, starts, n, b'"schema_version"')
    out = np.full(n, "", dtype=object)
    suspects = np.flatnonzero(colons > stored)
    if len(suspects):
        kept = table.take(pa.array(suspects)).to_pylist()
        for row, event in zip(suspects.tolist(), kept, strict=True):
            out[row] = _extra_of(rows[row], event)
    return pa.array(out.tolist(), pa.string())


def _has_key(data: bytes, starts: np.ndarray, n: int, key: bytes) -> np.ndarray:
    hits: list[int] = []
    at = data.find(key)
    while at >= 0:
        hits.append(at)
        at = data.find(key, at + 1)
    found = np.zeros(n, np.int64)
    if hits:
        found[np.unique(np.searchsorted(starts, np.array(hits), side="right") - 1)] = 1
    return found


def _extra_of(raw: bytes, event: dict[str, object]) -> str:
    """The fields of ``raw`` that ``event`` (its stored row) does not hold, as sorted JSON."""
    obj = orjson.loads(raw)
    extra = {k: v for k, v in obj.items() if k not in _COLUMNS or (v is not None and event.get(k) is None)}
    return orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode() if extra else ""
