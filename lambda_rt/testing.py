"""Test harness: an independent oracle for validation and metrics, JSONL reading.

The oracle re-implements the event rules and metric definitions of
ARCHITECTURE.md the plain way (stdlib ``json``, one dict per event, pandas
group-bys), without importing the validator, so that tests compare two
independent implementations rather than a program with itself. It is slow on
purpose: correctness by inspection, not speed.

The rule order (which reason wins when several apply) is the one documented in
:mod:`lambda_rt.events.validate`: not JSON, not an object, a wrong type (any
known field, in column order), a missing common field, unknown event type, a
missing type field, an invalid value (column order), then the time window.

It does not talk to any service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lambda_rt.vocabulary import DIMENSIONS, GRANULARITIES, METRICS

__all__ = [
    "DIMENSIONS",
    "GRANULARITIES",
    "METRICS",
    "oracle_frame",
    "oracle_metrics",
    "oracle_rejects",
    "read_jsonl",
]

_WEEK_MS = 7 * 24 * 3600 * 1000
_FIVE_MIN_MS = 5 * 60 * 1000

# every known field and its type, in the canonical column order
_FIELDS: dict[str, type] = {
    "event_id": str,
    "event_type": str,
    "ts": int,
    "store_id": int,
    "customer_id": int,
    "session_id": str,
    "schema_version": int,
    "product_id": int,
    "quantity": int,
    "order_id": str,
    "amount_cents": int,
    "items": int,
    "status": str,
    "method": str,
    "delta": int,
    # schema v2: optional fields
    "campaign_id": str,
    "card_fingerprint": str,
    "ip": str,
    "device_id": str,
    "stock_on_hand": int,
}
_COMMON_REQUIRED = ("event_id", "event_type", "ts", "store_id", "customer_id")
_TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "page_view": ("product_id",),
    "add_to_cart": ("product_id", "quantity"),
    "order_placed": ("order_id", "amount_cents", "items"),
    "payment": ("order_id", "amount_cents", "status", "method"),
    "refund": ("order_id", "amount_cents"),
    "inventory_update": ("product_id", "delta"),
}
_OPTIONAL_V2: dict[str, tuple[str, ...]] = {
    "page_view": ("campaign_id",),
    "add_to_cart": ("campaign_id",),
    "order_placed": ("campaign_id", "card_fingerprint", "ip", "device_id"),
    "payment": ("card_fingerprint", "ip", "device_id"),
    "inventory_update": ("stock_on_hand",),
}
_INT_COLUMNS = [name for name, kind in _FIELDS.items() if kind is int]


def _is_valid_value(name: str, value: Any) -> bool:
    """The value constraints of ARCHITECTURE.md, one field at a time."""
    if name == "event_id":
        return 1 <= len(value) <= 64
    if name == "store_id":
        return bool(value >= 1)
    if name in ("customer_id", "amount_cents"):
        return bool(value >= 0)
    if name in ("schema_version", "quantity", "items"):
        return bool(value >= 1)
    if name == "status":
        return value in ("succeeded", "failed")
    if name in ("campaign_id", "card_fingerprint", "ip", "device_id"):
        return len(value) <= 64
    if name == "stock_on_hand":
        return bool(value >= 0)
    return True


def _judge(raw: bytes, now_ms: int, max_age_ms: int, max_future_ms: int) -> tuple[str | None, Any]:
    """(reason, None) for a bad message, (None, event dict) for a good one."""
    try:

        def no_constants(token: str) -> Any:
            raise ValueError(token)

        obj = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates are not UTF-8
    except (ValueError, RecursionError, UnicodeError):
        return "not_json", None
    if not isinstance(obj, dict):
        return "not_object", None
    for name, kind in _FIELDS.items():
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            return "wrong_type", None
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return "wrong_type", None
    for name in _COMMON_REQUIRED:
        if obj.get(name) is None:
            return "missing_field", None
    event_type = obj["event_type"]
    if event_type not in _TYPE_FIELDS:
        return "unknown_event_type", None
    own = _TYPE_FIELDS[event_type]
    for name in _FIELDS:
        if name in own and obj.get(name) is None:
            return "missing_field", None
    checked = (*_COMMON_REQUIRED, "session_id", "schema_version", *own, *_OPTIONAL_V2.get(event_type, ()))
    for name in _FIELDS:
        if name in checked and obj.get(name) is not None and not _is_valid_value(name, obj[name]):
            return "invalid_value", None
    if obj["ts"] < now_ms - max_age_ms:
        return "ts_too_old", None
    if obj["ts"] > now_ms + max_future_ms:
        return "ts_in_future", None
    event = {name: (obj.get(name) if name in checked else None) for name in _FIELDS}
    if event["schema_version"] is None:
        event["schema_version"] = 1
    return None, event


def oracle_rejects(
    values: Iterable[bytes],
    *,
    now_ms: int,
    max_age_ms: int = _WEEK_MS,
    max_future_ms: int = _FIVE_MIN_MS,
) -> list[tuple[int, str]]:
    """``(input index, reason)`` of every bad message, computed independently."""
    out = []
    for i, raw in enumerate(values):
        reason, _ = _judge(raw, now_ms, max_age_ms, max_future_ms)
        if reason is not None:
            out.append((i, reason))
    return out


def oracle_frame(
    values: Iterable[bytes],
    *,
    now_ms: int,
    max_age_ms: int = _WEEK_MS,
    max_future_ms: int = _FIVE_MIN_MS,
) -> pd.DataFrame:
    """The valid events as a DataFrame (index = input position), computed independently.

    Columns follow the canonical schema; fields that do not belong to an
    event's type are null; ``schema_version`` defaults to 1. Integer columns
    use the nullable ``Int64`` dtype, string columns ``object``.
    """
    rows, index = [], []
    for i, raw in enumerate(values):
        reason, event = _judge(raw, now_ms, max_age_ms, max_future_ms)
        if reason is None:
            rows.append(event)
            index.append(i)
    frame = pd.DataFrame(rows, columns=list(_FIELDS), index=pd.Index(index, name="index"))
    dtypes = {name: ("Int64" if kind is int else "object") for name, kind in _FIELDS.items()}
    return frame.astype(dtypes)


_FLOOR = {"minute": "min", "hour": "h", "day": "D"}


def oracle_metrics(
    df: pd.DataFrame,
    metric: str,
    by: Sequence[str] = (),
    granularity: str = "minute",
) -> pd.DataFrame:
    """One metric per UTC event-time bucket (and ``by`` dimensions), with pandas.

    Args:
        df: valid events, e.g. :func:`oracle_frame` or ``ValidatedBatch.table.to_pandas()``.
        metric: one of :data:`METRICS`.
        by: dimensions from :data:`DIMENSIONS` (``inventory_delta`` also takes
            ``product_id``). ``campaign_id`` groups events without one under ``""``.
        granularity: ``minute``, ``hour`` or ``day``.

    Returns:
        Columns ``bucket`` (tz-aware UTC bucket start), ``*by``, ``value``
        (int64), sorted by bucket then ``by``. Additive metrics omit rows whose
        value is 0 (no such events, or e.g. inventory deltas that cancel out);
        ``unique_customers`` is exact (``nunique``).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; expected one of {GRANULARITIES}")
    allowed = (*DIMENSIONS, "product_id") if metric == "inventory_delta" else DIMENSIONS
    if len(set(by)) != len(by) or not set(by) <= set(allowed):
        raise ValueError(f"bad dimensions {list(by)!r} for {metric}; allowed: {allowed}")

    event_type = df["event_type"].astype(object)
    if metric in ("events", "unique_customers"):
        rows = df
    elif metric in ("orders", "revenue"):
        rows = df[event_type == "order_placed"]
    elif metric == "refunds":
        rows = df[event_type == "refund"]
    elif metric == "payment_failures":
        rows = df[(event_type == "payment") & (df["status"].astype(object) == "failed")]
    else:
        rows = df[event_type == "inventory_update"]

    keys = pd.DataFrame(
        {"bucket": pd.to_datetime(rows["ts"].astype("int64"), unit="ms", utc=True)}, index=rows.index
    )
    keys["bucket"] = keys["bucket"].dt.floor(_FLOOR[granularity])
    for name in by:
        if name == "campaign_id":
            keys[name] = rows[name].astype(object).where(rows[name].notna(), "")
        elif name == "event_type":
            keys[name] = rows[name].astype(object)
        else:
            keys[name] = rows[name].astype("int64")
    if metric in ("events", "orders", "payment_failures"):
        keys["value"] = 1
    elif metric in ("revenue", "refunds"):
        keys["value"] = rows["amount_cents"].astype("int64")
    elif metric == "inventory_delta":
        keys["value"] = rows["delta"].astype("int64")
    else:
        keys["value"] = rows["customer_id"].astype("int64")

    group = ["bucket", *by]
    grouped = keys.groupby(group, sort=True)["value"]
    out = (grouped.nunique() if metric == "unique_customers" else grouped.sum()).reset_index()
    out["value"] = out["value"].astype("int64")
    if metric != "unique_customers":
        out = out[out["value"] != 0]
    return out.reset_index(drop=True)[[*group, "value"]]


def read_jsonl(path: str | Path) -> list[bytes]:
    """The raw values of a file written by ``write_jsonl`` (split on ``\\n`` only)."""
    data = Path(path).read_bytes()
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines
