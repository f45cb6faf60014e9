"""Vectorised validation of raw event messages: the speed layer's hot path.

:func:`validate_batch` turns a batch of raw Kafka values into an Arrow table of
the valid events (:data:`EVENT_SCHEMA`, input order) plus one :class:`Reject`
per bad message. It does not talk to Kafka, write the DLQ or aggregate.

How it stays fast: all values are joined with newlines and parsed by one
``pyarrow.json`` read (the fast path, :mod:`lambda_rt.events._fastread`); the
rules then run as array operations here. Lines that read would get wrong or
choke on (not one ``{...}`` object, bad UTF-8, NaN/Infinity, deep nesting, a
wrong JSON type in a known field) are found by vectorised byte checks, or from
pyarrow's error after a failed read, and decoded one by one with orjson (the
slow path, :mod:`lambda_rt.events._slowread`); their places in the read hold
``{}``. Both paths feed the same rule checks, so they agree on every input (a
property test holds them to it).

Rules, checked in this order (the first failure is the reason):

1. ``not_json``: not UTF-8 JSON (NaN/Infinity, lone surrogates, nesting deeper
   than orjson's 1024 levels are not JSON). ``not_object``: not a JSON object.
2. ``wrong_type``: a known field (any :data:`EVENT_SCHEMA` column, whatever the
   event type) holds the wrong JSON type. ``true`` and ``17.0`` are not ints;
   an int outside int64 is a ``wrong_type`` too (it cannot be stored).
3. ``missing_field``: a required common field is absent or ``null``.
4. ``unknown_event_type``; then ``missing_field`` for the type's fields.
5. ``invalid_value``: constraints, in column order (``event_id`` 1..64 chars,
   ``store_id >= 1``, ``customer_id >= 0``, ``schema_version >= 1``, ...).
6. ``ts_too_old`` if ``ts < now_ms - max_age_ms``; ``ts_in_future`` if
   ``ts > now_ms + max_future_ms`` (both edges are accepted).

``null`` counts as absent. Unknown fields are ignored; known fields that do not
belong to the event's type are type-checked but not constraint-checked, and
are null in the output table. Every row is checked against
``registry.latest``: versions only add optional fields, so it accepts every
event an older version accepts, and newer versions than known pass too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lambda_rt.events._columns import COLUMNS as _COLUMNS
from lambda_rt.events._columns import POS as _POS
from lambda_rt.events._fastread import fast_parse
from lambda_rt.events._slowread import slow_parse
from lambda_rt.events.schema import (
    EVENT_SCHEMA,
    REGISTRY,
    FieldSpec,
    Reason,
    SchemaRegistry,
    SchemaVersion,
)

__all__ = [
    "Reject",
    "TimeWindow",
    "ValidatedBatch",
    "validate_batch",
    "validate_batch_slow",
]

_CODES = (None, *Reason)  # int8 reason code k <-> _CODES[k]; 0 = valid, -1 = slow-path reject


@dataclass(frozen=True)
class Reject:
    """One rejected message: its position in the input, why, and a readable detail."""

    index: int
    reason: Reason
    detail: str


@dataclass(frozen=True, eq=False)
class ValidatedBatch:
    """The outcome of a batch (no ``==``: it holds arrays; compare fields).

    Attributes:
        table: valid events only, :data:`EVENT_SCHEMA`, in input order.
        indices: int64 input position of each table row.
        rejects: one per bad message, by input position.
    """

    table: pa.Table
    indices: np.ndarray
    rejects: list[Reject]

    @property
    def n_valid(self) -> int:
        return int(self.table.num_rows)

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


@dataclass(frozen=True)
class TimeWindow:
    """How far event time may lag or lead the validator's clock (ARCHITECTURE.md)."""

    max_age_ms: int = 7 * 24 * 3600 * 1000
    max_future_ms: int = 5 * 60 * 1000

    def __post_init__(self) -> None:
        if self.max_age_ms < 0 or self.max_future_ms < 0:
            raise ValueError(f"TimeWindow bounds must be >= 0, got {self}")


def validate_batch(
    values: Sequence[bytes],
    *,
    now_ms: int,
    window: TimeWindow = TimeWindow(),
    registry: SchemaRegistry = REGISTRY,
) -> ValidatedBatch:
    """Validate raw message values in one vectorised pass (see the module rules).

    Args:
        values: raw Kafka values (``None`` counts as an empty, non-JSON value).
        now_ms: the clock the ``ts`` window is relative to (epoch ms UTC);
            passed in so that replays and tests are deterministic.
        window: accepted event-time lag/lead.
        registry: schema versions; every row is checked against the latest.
    """
    vals = _as_bytes(values)
    table, slow = fast_parse(vals) if vals else (None, np.arange(0))
    return _finish(vals, table, slow, now_ms, window, registry)


def validate_batch_slow(
    values: Sequence[bytes],
    *,
    now_ms: int,
    window: TimeWindow = TimeWindow(),
    registry: SchemaRegistry = REGISTRY,
) -> ValidatedBatch:
    """Same contract as :func:`validate_batch`, decoding every value with orjson.

    The reference the fast path is tested against, and its fallback.
    """
    vals = _as_bytes(values)
    return _finish(vals, None, np.arange(len(vals)), now_ms, window, registry)


def _as_bytes(values: Sequence[bytes]) -> list[bytes]:
    vals = list(values)
    if set(map(type, vals)) - {bytes}:
        vals = [b"" if v is None else bytes(v) for v in vals]
    return vals


def _finish(
    vals: list[bytes],
    table: pa.Table | None,
    slow: np.ndarray,
    now_ms: int,
    window: TimeWindow,
    registry: SchemaRegistry,
) -> ValidatedBatch:
    parsed: dict[int, tuple[Reason, str]] = {}
    if table is None:  # then every line is slow
        table = slow_parse(vals, slow, parsed)
    elif len(slow):
        slow_table = slow_parse(vals, slow, parsed)
        if len(parsed) < len(slow):  # else every slow row is all-null, like its placeholder
            order = np.arange(len(vals))
            order[slow] = len(vals) + np.arange(len(slow))
            table = pa.concat_tables([table, slow_table]).take(order)
    pre = {i: Reject(i, reason, detail) for i, (reason, detail) in parsed.items()}
    return _check(table, pre, now_ms, window, registry.latest)


# --- the rules, vectorised --------------------------------------------------------------


def _check(
    table: pa.Table, pre: dict[int, Reject], now_ms: int, window: TimeWindow, version: SchemaVersion
) -> ValidatedBatch:
    """Apply the rules to an aligned parse-schema table; build the batch result."""
    n = table.num_rows
    code = np.zeros(n, np.int8)
    where = np.zeros(n, np.int16)
    if pre:
        code[list(pre)] = -1
    col = dict(zip(_COLUMNS, table.columns, strict=True))
    none = np.zeros(n, bool)
    null = {name: c.is_null().to_numpy() if c.null_count else none for name, c in col.items()}

    def flag(mask: np.ndarray, reason: Reason, name: str) -> None:
        hit = mask & (code == 0)
        code[hit] = _CODES.index(reason)
        where[hit] = _POS[name]

    for spec in version.common:
        flag(null[spec.name], Reason.MISSING_FIELD, spec.name)
    types = version.event_types
    et = pc.fill_null(pc.index_in(col["event_type"], value_set=pa.array(types)), -1).to_numpy()
    flag(et < 0, Reason.UNKNOWN_EVENT_TYPE, "event_type")
    required = _types_with(version, lambda t: version.required[t])
    belongs = _types_with(version, version.type_fields)
    for name in _COLUMNS:
        if name in required:
            flag(required[name][et] & null[name], Reason.MISSING_FIELD, name)
    fields = version.fields()
    common = {s.name for s in version.common + version.common_optional}
    for name in _COLUMNS:
        rule = fields.get(name)
        if rule is not None and rule.constrained:
            applies = ~null[name] if name in common else ~null[name] & belongs[name][et]
            flag(applies & _violates(col[name], rule), Reason.INVALID_VALUE, name)
    ts = pc.fill_null(col["ts"], 0).to_numpy()
    flag(ts < now_ms - window.max_age_ms, Reason.TS_TOO_OLD, "ts")
    flag(ts > now_ms + window.max_future_ms, Reason.TS_IN_FUTURE, "ts")

    ok = code == 0
    valid = np.flatnonzero(ok)
    out = table if len(valid) == n else table.filter(pa.array(ok))  # faster than take
    arrays = []
    for name, column in zip(_COLUMNS, out.columns, strict=True):
        if name in belongs and name not in common:
            keep = belongs[name][et[valid]]
            if not keep.all() and column.null_count < len(keep) - np.count_nonzero(keep):
                column = pc.if_else(pa.array(keep), column, pa.scalar(None, column.type))
        elif name == "schema_version":
            column = pc.fill_null(column, 1)
        arrays.append(column)
    result = pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
    bad = np.flatnonzero(code != 0)
    rejects = _rejects(table, bad, code, where, pre, now_ms, window, version)
    return ValidatedBatch(result, valid.astype(np.int64), rejects)


def _types_with(version: SchemaVersion, fields_of: Any) -> dict[str, np.ndarray]:
    """Column name -> lookup by event-type code: does ``fields_of(type)`` have it?

    The extra last slot (False) is what code -1 (unknown type) reads.
    """
    out: dict[str, np.ndarray] = {}
    types = version.event_types
    for k, event_type in enumerate(types):
        for spec in fields_of(event_type):
            out.setdefault(spec.name, np.zeros(len(types) + 1, bool))[k] = True
    return out


def _violates(column: pa.ChunkedArray, spec: FieldSpec) -> np.ndarray:
    if spec.type is int:
        assert spec.min_value is not None
        values: np.ndarray = pc.fill_null(column, spec.min_value).to_numpy()
        return values < spec.min_value
    if spec.choices is not None:
        return ~pc.is_in(column, value_set=pa.array(sorted(spec.choices))).to_numpy()
    length = pc.fill_null(pc.utf8_length(column), 0).to_numpy()
    bad = np.zeros(len(length), bool)
    if spec.min_length is not None:
        bad |= length < spec.min_length
    if spec.max_length is not None:
        bad |= length > spec.max_length
    return bad


def _rejects(
    table: pa.Table,
    bad: np.ndarray,
    code: np.ndarray,
    where: np.ndarray,
    pre: dict[int, Reject],
    now_ms: int,
    window: TimeWindow,
    version: SchemaVersion,
) -> list[Reject]:
    """Readable rejects, built per bad row (bad rows are rare)."""
    if not len(bad):
        return []
    todo = bad[code[bad] > 0]  # slow-path rejects are made already
    event_types = dict(zip(todo.tolist(), table.column("event_type").take(todo).to_pylist(), strict=True))
    ts = dict(zip(todo.tolist(), table.column("ts").take(todo).to_pylist(), strict=True))
    fields = version.fields()
    common = {s.name for s in version.common}
    out = []
    for i, k, w in zip(bad.tolist(), code[bad].tolist(), where[bad].tolist(), strict=True):
        if k < 0:
            out.append(pre[i])
            continue
        reason = _CODES[k]
        assert reason is not None
        name = _COLUMNS[w]
        if reason is Reason.MISSING_FIELD:
            detail = f"missing required field {name}"
            if name not in common:
                detail += f" for event_type {event_types[i]}"
        elif reason is Reason.UNKNOWN_EVENT_TYPE:
            detail = f"unknown event_type {event_types[i][:64]!r}"
        elif reason is Reason.INVALID_VALUE:
            detail = f"field {name} must be {fields[name].describe()}"
        elif reason is Reason.TS_TOO_OLD:
            detail = f"ts {ts[i]} is more than {window.max_age_ms} ms before now {now_ms}"
        else:
            detail = f"ts {ts[i]} is more than {window.max_future_ms} ms after now {now_ms}"
        out.append(Reject(i, reason, detail))
    return out
