"""Vectorised validation of raw event messages: the speed layer's hot path.

:func:`validate_batch` turns a batch of raw Kafka values into an Arrow table of
the valid events (:data:`EVENT_SCHEMA`, input order) plus one :class:`Reject`
per bad message. It does not talk to Kafka, write the DLQ or aggregate.

How it stays fast: all values are joined with newlines and parsed in one
``pyarrow.json`` call (the fast path); the rules then run as array operations.
Values where pyarrow's JSON dialect differs from strict JSON (NaN/Infinity
tokens, bad UTF-8, deep nesting, not one ``{...}`` object) are screened out
before the read and decoded one by one with orjson (the slow path). If the
read still fails (a wrong JSON type), a second vectorised screen removes the
likely culprits and the read is retried once; after that the whole batch takes
the slow path. Both paths feed the same vectorised rule checks, so they agree
on every input (a property test holds them to it).

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

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from lambda_rt.events.schema import (
    EVENT_SCHEMA,
    INT64_MAX,
    INT64_MIN,
    REGISTRY,
    FieldSpec,
    Reason,
    SchemaRegistry,
    SchemaVersion,
)

__all__ = [
    "DEFAULT_WINDOW",
    "Reject",
    "TimeWindow",
    "ValidatedBatch",
    "validate_batch",
    "validate_batch_slow",
]

_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)
_POS = {name: i for i, name in enumerate(_COLUMNS)}
_IS_INT = tuple(pa.types.is_integer(f.type) for f in EVENT_SCHEMA)
_PARSE_SCHEMA = pa.schema([pa.field(f.name, f.type) for f in EVENT_SCHEMA])  # all nullable
_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=_PARSE_SCHEMA, unexpected_field_behavior="ignore")
_BLOCK_SIZE = 1 << 20  # measured best with use_threads on 2 cores (single block: 2x slower)
_USE_THREADS = True
_PLACEHOLDER = b"{}"  # stands in for slow-path lines so fast rows stay aligned
_MAX_BRACKETS = 512  # lines with more go slow: orjson stops at depth 1024
_NAN_INF = re.compile(rb"NaN|Inf")  # RapidJSON accepts NaN/Inf/Infinity, JSON does not
_NOT_JSON = object()
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


DEFAULT_WINDOW = TimeWindow()


def validate_batch(
    values: Sequence[bytes],
    *,
    now_ms: int,
    window: TimeWindow = DEFAULT_WINDOW,
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
    if not vals:
        return _check(_slow_parse(vals, np.arange(0)), {}, now_ms, window, registry.latest)
    table, slow = _fast_parse(vals)
    return _finish(vals, table, slow, now_ms, window, registry)


def validate_batch_slow(
    values: Sequence[bytes],
    *,
    now_ms: int,
    window: TimeWindow = DEFAULT_WINDOW,
    registry: SchemaRegistry = REGISTRY,
) -> ValidatedBatch:
    """Same contract as :func:`validate_batch`, decoding every value with orjson.

    The reference the fast path is tested against, and its fallback.
    """
    vals = _as_bytes(values)
    return _finish(vals, None, np.arange(len(vals)), now_ms, window, registry)


def _as_bytes(values: Sequence[bytes]) -> list[bytes]:
    vals = list(values)
    if not all(type(v) is bytes for v in vals):
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
    pre: dict[int, Reject] = {}
    if len(slow):
        slow_table = _slow_parse(vals, slow, pre)
        if table is None:
            table = slow_table
        else:
            order = np.arange(len(vals))
            order[slow] = len(vals) + np.arange(len(slow))
            table = pa.concat_tables([table, slow_table]).take(order)
    assert table is not None
    return _check(table, pre, now_ms, window, registry.latest)


# --- fast path: one pyarrow.json read -------------------------------------------------


def _fast_parse(vals: list[bytes]) -> tuple[pa.Table | None, np.ndarray]:
    """Parse with pyarrow; returns the aligned table (or None) and the slow lines."""
    n = len(vals)
    data = b"\n".join(vals)
    lens = np.fromiter(map(len, vals), np.int64, count=n)
    starts = np.zeros(n, np.int64)
    np.cumsum(lens[:-1] + 1, out=starts[1:])
    buf = np.frombuffer(data, np.uint8)
    slow = _prescreen(vals, data, buf, lens, starts)
    if slow.all():
        return None, np.arange(n)
    block = max(_BLOCK_SIZE, 2 * int(lens.max()) + 2)
    table = _read(vals, data, slow, block)
    if table is None:
        slow[_lines_of(starts, _failure_suspects(buf))] = True
        table = _read(vals, data, slow, block)
        if table is None:
            return None, np.arange(n)
    return table, np.flatnonzero(slow)


def _prescreen(
    vals: list[bytes], data: bytes, buf: np.ndarray, lens: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Lines pyarrow would read differently from strict JSON, or not as one row."""
    slow = lens < 2
    ok = np.flatnonzero(~slow)
    slow[ok] = (buf[starts[ok]] != ord("{")) | (buf[starts[ok] + lens[ok] - 1] != ord("}"))
    if not data.isascii():
        for i, v in enumerate(vals):
            if not v.isascii():
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError:
                    slow[i] = True
    if b"N" in data or b"I" in data:
        hits = np.fromiter((m.start() for m in _NAN_INF.finditer(data)), np.int64)
        slow[_lines_of(starts, hits)] = True
    brackets = np.count_nonzero(buf == ord("{"))
    if b"[" in data:
        brackets += np.count_nonzero(buf == ord("["))
    # each well-formed line holds at least one "{": only this surplus can pile up in one line
    if brackets - len(ok) + 1 > _MAX_BRACKETS:
        hits = np.flatnonzero((buf == ord("{")) | (buf == ord("[")))
        slow |= np.bincount(_lines_of(starts, hits), minlength=len(vals)) > _MAX_BRACKETS
    return slow


def _read(vals: list[bytes], data: bytes, slow: np.ndarray, block: int) -> pa.Table | None:
    """One pyarrow.json read with slow lines replaced by ``{}``; None if it fails."""
    if slow.all():
        return None
    if slow.any():
        vals = list(vals)
        for i in np.flatnonzero(slow).tolist():
            vals[i] = _PLACEHOLDER
        data = b"\n".join(vals)
    options = pj.ReadOptions(block_size=block, use_threads=_USE_THREADS)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowException, ValueError):
        return None
    return table if table.num_rows == len(vals) else None


def _failure_suspects(buf: np.ndarray) -> np.ndarray:
    """Byte positions that likely made the read fail (compact JSON assumed).

    A known key whose value starts with the wrong JSON type (keys told apart by
    length and first letter), a digit followed by ``.eE`` (a float), and ``}``
    followed by ``{`` or blank (two objects on one line). Over-inclusive is
    fine: suspects only take the slow path.
    """
    q = np.flatnonzero(buf == ord('"'))
    last = len(buf) - 1
    k = np.flatnonzero(buf[np.minimum(q[1:] + 1, last)] == ord(":")) + 1
    close, open_ = q[k], q[k - 1]
    kind = _KEY_KIND[np.clip(close - open_ - 1, 0, 15), buf[np.minimum(open_ + 1, last)]]
    v = buf[np.minimum(close + 2, last)]
    number = ((v >= ord("0")) & (v <= ord("9"))) | (v == ord("-")) | (v == ord("n"))
    string = (v == ord('"')) | (v == ord("n"))
    wrong = ((kind & 1) > 0) & ~number & ~(((kind & 2) > 0) & string)
    wrong |= (kind == 2) & ~string
    head, tail = buf[:-1], buf[1:]
    digit = (head >= ord("0")) & (head <= ord("9"))
    floats = np.flatnonzero(digit & ((tail == ord(".")) | (tail == ord("e")) | (tail == ord("E"))))
    blank = (tail == ord("{")) | (tail == ord(" ")) | (tail == ord("\t")) | (tail == ord("\r"))
    joined = np.flatnonzero((head == ord("}")) & blank)
    return np.concatenate([close[wrong], floats, joined])


def _key_kinds() -> np.ndarray:
    """(key length, first byte) -> 1 int column, 2 string column, 3 both."""
    table = np.zeros((16, 256), np.uint8)
    for name, is_int in zip(_COLUMNS, _IS_INT, strict=True):
        table[min(len(name), 15), name.encode()[0]] |= 1 if is_int else 2
    return table


_KEY_KIND = _key_kinds()


def _lines_of(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.searchsorted(starts, positions, side="right") - 1


# --- slow path: orjson per message ----------------------------------------------------


def _decode(raw: bytes) -> Any:
    """Strict JSON: orjson, or stdlib json for numbers orjson cannot hold in a double."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates
    except (ValueError, RecursionError, UnicodeError):
        return _NOT_JSON
    return obj


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _slow_parse(vals: list[bytes], lines: np.ndarray, pre: dict[int, Reject] | None = None) -> pa.Table:
    """Decode ``lines`` one by one into parse-schema rows; type rejects go to ``pre``."""
    cols: list[list[Any]] = [[] for _ in _COLUMNS]
    for i in lines.tolist():
        obj = _decode(vals[i])
        reject = None
        if obj is _NOT_JSON:
            reject = Reject(i, Reason.NOT_JSON, "value is not UTF-8 JSON")
        elif type(obj) is not dict:
            reject = Reject(i, Reason.NOT_OBJECT, f"JSON value is {_kind(obj)}, not an object")
        else:
            row = [obj.get(name) for name in _COLUMNS]
            for name, is_int, value in zip(_COLUMNS, _IS_INT, row, strict=True):
                if value is None or (
                    type(value) is int and INT64_MIN <= value <= INT64_MAX
                    if is_int
                    else type(value) is str
                ):
                    continue
                need = "a 64-bit int" if is_int else "a string"
                reject = Reject(i, Reason.WRONG_TYPE, f"field {name} must be {need}")
                break
        if reject is not None:
            assert pre is not None
            pre[i] = reject
            row = [None] * len(_COLUMNS)
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    arrays = [pa.array(c, type=f.type) for c, f in zip(cols, _PARSE_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=_PARSE_SCHEMA)


def _kind(obj: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(obj), "a number")


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
    null = {name: c.is_null().to_numpy() for name, c in col.items()}

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
            flag(np.isin(et, required[name]) & null[name], Reason.MISSING_FIELD, name)
    fields = version.fields()
    common = {s.name for s in version.common + version.common_optional}
    for name in _COLUMNS:
        spec = fields.get(name)
        if spec is not None and spec.constrained:
            applies = ~null[name] if name in common else ~null[name] & np.isin(et, belongs[name])
            flag(applies & _violates(col[name], spec), Reason.INVALID_VALUE, name)
    ts = pc.fill_null(col["ts"], 0).to_numpy()
    flag(ts < now_ms - window.max_age_ms, Reason.TS_TOO_OLD, "ts")
    flag(ts > now_ms + window.max_future_ms, Reason.TS_IN_FUTURE, "ts")

    valid = np.flatnonzero(code == 0)
    out = table if len(valid) == n else table.take(valid)
    arrays = []
    for name, column in zip(_COLUMNS, out.columns, strict=True):
        if name in belongs and name not in common:
            keep = np.isin(et[valid], belongs[name])
            if not keep.all() and column.null_count < len(keep) - np.count_nonzero(keep):
                column = pc.if_else(pa.array(keep), column, pa.scalar(None, column.type))
        elif name == "schema_version":
            column = pc.fill_null(column, 1)
        arrays.append(column)
    result = pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
    bad = np.flatnonzero(code != 0)
    rejects = _rejects(table, bad, code, where, pre, now_ms, window, version)
    return ValidatedBatch(result, valid.astype(np.int64), rejects)


def _types_with(version: SchemaVersion, fields_of: Any) -> dict[str, list[int]]:
    """Column name -> indices of the event types whose ``fields_of(type)`` has it."""
    out: dict[str, list[int]] = {}
    for k, event_type in enumerate(version.event_types):
        for spec in fields_of(event_type):
            out.setdefault(spec.name, []).append(k)
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
    rows = table.select(["event_type", "ts"]).take(bad).to_pylist()
    fields = version.fields()
    common = {s.name for s in version.common}
    out = []
    for i, row in zip(bad.tolist(), rows, strict=True):
        if code[i] < 0:
            out.append(pre[i])
            continue
        reason = _CODES[code[i]]
        assert reason is not None
        name = _COLUMNS[where[i]]
        if reason is Reason.MISSING_FIELD:
            detail = f"missing required field {name}"
            if name not in common:
                detail += f" for event_type {row['event_type']}"
        elif reason is Reason.UNKNOWN_EVENT_TYPE:
            detail = f"unknown event_type {row['event_type'][:64]!r}"
        elif reason is Reason.INVALID_VALUE:
            detail = f"field {name} must be {fields[name].describe()}"
        elif reason is Reason.TS_TOO_OLD:
            detail = f"ts {row['ts']} is more than {window.max_age_ms} ms before now {now_ms}"
        else:
            detail = f"ts {row['ts']} is more than {window.max_future_ms} ms after now {now_ms}"
        out.append(Reject(i, reason, detail))
    return out
