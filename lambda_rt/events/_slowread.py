"""The slow path of validation: strict JSON decoding, one message at a time (private).

:func:`slow_parse` decodes chosen messages with orjson (stdlib ``json`` for
numbers orjson cannot hold) into rows of the parse schema, and reports the
messages that fail before any rule can look at them: not JSON, not an object,
a known field of the wrong JSON type. It is the reference the fast path is
held to, and where the fast path sends the lines it cannot read like strict
JSON. It applies no other rule (see :mod:`lambda_rt.events.validate`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from lambda_rt.events._columns import COLUMNS, IS_INT, PARSE_SCHEMA, POS
from lambda_rt.events.schema import INT64_MAX, INT64_MIN, Reason

__all__ = ["slow_parse"]

_NOT_JSON = object()
_INT_TYPES = frozenset({int, type(None)})
_STR_TYPES = frozenset({str, type(None)})


def slow_parse(vals: list[bytes], lines: np.ndarray, pre: dict[int, tuple[Reason, str]]) -> pa.Table:
    """Decode ``lines`` one by one into parse-schema rows (one per line).

    Rejected lines (not JSON, not an object, a wrong type) become all-null rows
    and their ``(reason, detail)`` goes to ``pre``, keyed by input position.
    """
    objs: list[dict[str, Any]] = []
    for i in lines.tolist():
        obj = _decode(vals[i])
        if type(obj) is dict:
            objs.append(obj)
            continue
        if obj is _NOT_JSON:
            pre[i] = (Reason.NOT_JSON, "value is not UTF-8 JSON")
        else:
            pre[i] = (Reason.NOT_OBJECT, f"JSON value is {_kind(obj)}, not an object")
        objs.append({})
    cols = [[obj.get(name) for obj in objs] for name in COLUMNS]
    arrays: list[pa.Array | None] = []
    wrong: dict[int, str] = {}  # row -> first mistyped column, in column order
    for name, is_int, col in zip(COLUMNS, IS_INT, cols, strict=True):
        array = _typed_array(col, is_int)  # None: some value has the wrong type
        arrays.append(array)
        if array is None:
            for row, value in enumerate(col):
                if value is not None and not _has_type(value, is_int):
                    wrong.setdefault(row, name)
    if wrong:
        rows = lines.tolist()
        for row, name in wrong.items():
            need = "a 64-bit int" if IS_INT[POS[name]] else "a string"
            pre[rows[row]] = (Reason.WRONG_TYPE, f"field {name} must be {need}")
            for col in cols:
                col[row] = None
        arrays = [None] * len(cols)
    built = [
        pa.array(c, type=f.type) if a is None else a
        for a, c, f in zip(arrays, cols, PARSE_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(built, schema=PARSE_SCHEMA)


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
