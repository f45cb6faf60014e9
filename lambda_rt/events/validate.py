"""Vectorised validation of raw event messages: the speed layer's hot path.

:func:`validate_batch` turns a batch of raw Kafka values into an Arrow table of
the valid events (:data:`EVENT_SCHEMA`, input order) plus one :class:`Reject`
per bad message. It does not talk to Kafka, write the DLQ or aggregate.

How it stays fast: all values are joined with newlines and parsed by one
``pyarrow.json`` read (the fast path); the rules then run as array operations.
Lines where pyarrow's JSON dialect differs from strict JSON (NaN/Infinity
tokens, bad UTF-8, deep nesting, not exactly one ``{...}`` object) are screened
out before the read and decoded one by one with orjson (the slow path); their
places in the read hold ``{}``. A wrong JSON type in a known field makes the
whole read fail, so after a failure (or up front, when the screen already found
bad lines) a vectorised scan takes out likely culprits, and pyarrow's error
message names more (the text it could not convert, the row it stopped at);
after at most ``_MAX_READS`` reads the whole batch takes the slow path. Both
paths feed the same vectorised rule checks, so they agree on every input (a
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
_BLOCK_SIZE = 1 << 20  # measured: 1 MiB blocks beat one big block by ~25%
_USE_THREADS = False  # threads: +15-35% on a quiet 2-core box, slower under contention
_PLACEHOLDER = b"{}"  # stands in for slow-path lines so fast rows stay aligned
_MAX_BRACKETS = 512  # lines with more go slow: orjson stops at depth 1024
_NAN_INF = re.compile(rb"NaN|Inf")  # RapidJSON accepts NaN/Inf/Infinity, JSON does not
# one literal first byte each, so that re scans them fast (an alternation is 20x slower)
_SUSPECT_PATTERNS = (re.compile(rb"\.[0-9]"), re.compile(rb"\}[{ \t\r]"))
_CONVERT_ERROR = re.compile(r"couldn't parse:(\S+)")
_ROW_ERROR = re.compile(r" in row (\d+)")
_MAX_READS = 4
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
    table, slow = _fast_parse(vals) if vals else (None, np.arange(0))
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
    pre: dict[int, Reject] = {}
    if table is None:  # then every line is slow
        table = _slow_parse(vals, slow, pre)
    elif len(slow):
        slow_table = _slow_parse(vals, slow, pre)
        if len(pre) < len(slow):  # else every slow row is all-null, like its placeholder
            order = np.arange(len(vals))
            order[slow] = len(vals) + np.arange(len(slow))
            table = pa.concat_tables([table, slow_table]).take(order)
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
    # bad messages come together: if some were screened out, look for the rest up front
    scanned = bool(slow.any())
    if scanned:
        slow[_lines_of(starts, _failure_suspects(data, buf))] = True
    block = max(_BLOCK_SIZE, 2 * int(lens.max()) + 2)
    for _ in range(_MAX_READS):
        if slow.all():
            break
        table, error = _read(vals, data, slow, block)
        if table is not None:
            return table, np.flatnonzero(slow)
        one_block = block >= len(data)
        lines = _culprits(error, data, buf, starts, slow, not scanned, one_block)
        scanned = True
        if not len(lines) or slow[lines].all():
            break  # no progress: give the whole batch to the slow path
        slow[lines] = True
    return None, np.arange(n)


def _culprits(
    error: str,
    data: bytes,
    buf: np.ndarray,
    starts: np.ndarray,
    slow: np.ndarray,
    scan: bool,
    one_block: bool,
) -> np.ndarray:
    """Lines not yet slow to take out after a failed read (empty: no idea left).

    First the suspect scan (once), then the error message: the text pyarrow could
    not convert to int64, or the row of a parse error (exact with one block as
    long as each line is one row; a wrong guess only costs a retry).
    """
    if scan:
        lines = _lines_of(starts, _failure_suspects(data, buf))
        if (~slow[lines]).any():
            return lines
    if (token := _CONVERT_ERROR.search(error)) is not None:
        hits = [m.start() for m in re.finditer(re.escape(token[1].encode()), data)]
        return _lines_of(starts, np.array(hits, np.int64))
    row = _ROW_ERROR.search(error) if one_block else None
    if row is not None and int(row[1]) < len(slow):
        return np.array([int(row[1])], np.int64)
    return np.zeros(0, np.int64)


def _prescreen(
    vals: list[bytes], data: bytes, buf: np.ndarray, lens: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Lines pyarrow would read differently from strict JSON, or not as one row."""
    slow = lens < 2
    ok = np.flatnonzero(~slow)
    slow[ok] = (buf[starts[ok]] != ord("{")) | (buf[starts[ok] + lens[ok] - 1] != ord("}"))
    if not data.isascii():
        for i in np.unique(_lines_of(starts, np.flatnonzero(buf >= 0x80))).tolist():
            try:
                vals[i].decode("utf-8")
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


def _read(vals: list[bytes], data: bytes, slow: np.ndarray, block: int) -> tuple[pa.Table | None, str]:
    """One pyarrow.json read, slow lines replaced by ``{}``: (aligned table, "") or (None, error)."""
    if slow.any():
        vals = list(vals)
        for i in np.flatnonzero(slow).tolist():
            vals[i] = _PLACEHOLDER
        data = b"\n".join(vals)
    options = pj.ReadOptions(block_size=block, use_threads=_USE_THREADS)
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowException, ValueError) as exc:
        return None, str(exc)
    if table.num_rows != len(vals):
        return None, f"{table.num_rows} rows for {len(vals)} values"
    return table, ""


def _failure_suspects(data: bytes, buf: np.ndarray) -> np.ndarray:
    """Byte positions that likely make the read fail (compact JSON assumed).

    A known key whose value starts with the wrong JSON type (keys told apart by
    length and first letter), a decimal point (a float where an int belongs),
    and ``}`` followed by ``{`` or blank (two objects on one line).
    Over-inclusive is fine: suspects only take the slow path.
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
    others = [m.start() for pattern in _SUSPECT_PATTERNS for m in pattern.finditer(data)]
    return np.concatenate([close[wrong], np.array(others, np.int64)])


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


def _slow_parse(vals: list[bytes], lines: np.ndarray, pre: dict[int, Reject]) -> pa.Table:
    """Decode ``lines`` one by one into parse-schema rows (one per line).

    Rejected lines (not JSON, not an object, a wrong type) become all-null rows
    and their :class:`Reject` goes to ``pre``.
    """
    objs: list[dict[str, Any]] = []
    for i in lines.tolist():
        obj = _decode(vals[i])
        if type(obj) is dict:
            objs.append(obj)
            continue
        if obj is _NOT_JSON:
            pre[i] = Reject(i, Reason.NOT_JSON, "value is not UTF-8 JSON")
        else:
            pre[i] = Reject(i, Reason.NOT_OBJECT, f"JSON value is {_kind(obj)}, not an object")
        objs.append({})
    cols = [[obj.get(name) for obj in objs] for name in _COLUMNS]
    arrays: list[pa.Array | None] = []
    wrong: dict[int, str] = {}  # row -> first mistyped column, in column order
    for name, is_int, col in zip(_COLUMNS, _IS_INT, cols, strict=True):
        array = _typed_array(col, is_int)  # None: some value has the wrong type
        arrays.append(array)
        if array is None:
            for row, value in enumerate(col):
                if value is not None and not _has_type(value, is_int):
                    wrong.setdefault(row, name)
    if wrong:
        rows = lines.tolist()
        for row, name in wrong.items():
            need = "a 64-bit int" if _IS_INT[_POS[name]] else "a string"
            pre[rows[row]] = Reject(rows[row], Reason.WRONG_TYPE, f"field {name} must be {need}")
            for col in cols:
                col[row] = None
        arrays = [None] * len(cols)
    built = [
        pa.array(c, type=f.type) if a is None else a
        for a, c, f in zip(arrays, cols, _PARSE_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(built, schema=_PARSE_SCHEMA)


_INT_TYPES = frozenset({int, type(None)})
_STR_TYPES = frozenset({str, type(None)})


def _typed_array(col: list[Any], is_int: bool) -> pa.Array | None:
    """The Arrow column if every value has the right type, else None.

    The type set is checked first because ``pa.array`` would cast ``1.5`` to 1.
    """
    if not set(map(type, col)) <= (_INT_TYPES if is_int else _STR_TYPES):
        return None
    try:
        return pa.array(col, type=pa.int64() if is_int else pa.string())
    except OverflowError:  # outside int64
        return None


def _has_type(value: Any, is_int: bool) -> bool:
    """``bool`` is not an int here, and an int must fit int64 (the column type)."""
    if is_int:
        return type(value) is int and INT64_MIN <= value <= INT64_MAX
    return type(value) is str


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

    valid = np.flatnonzero(code == 0)
    out = table if len(valid) == n else table.take(valid)
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
