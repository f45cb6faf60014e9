"""Deterministic synthetic e-commerce events, good and deliberately bad.

:class:`EventGenerator` produces Kafka ``(key, value)`` pairs (key = store id,
value = compact JSON) with a realistic mix: about 70% ``page_view``, 12%
``add_to_cart``, 6% ``order_placed``, 6% ``payment`` (5% failed), 1%
``refund``, 5% ``inventory_update``; Zipf-skewed store popularity; sessions
(runs of consecutive events of one customer in one store share a
``session_id``); ``inventory_update`` events are system events (customer 0, no
session). Event times are uniform over ``[end_ms - span_ms, end_ms)`` and not
sorted (late events are normal for the speed layer).

With ``schema_version`` 2 (or ``"mixed"``: each session is v1 or v2 at
random, half and half) events carry the v2 fields: a few dozen campaigns
(:data:`CAMPAIGN_THEMES` names) each with its own traffic share and conversion
funnel bring about two thirds of the sessions, whose ``page_view``,
``add_to_cart`` and ``order_placed`` events name the campaign (a campaign
changes the mix of those three types: its funnel); orders and payments carry a
card fingerprint, IP and device derived from the customer; and
``inventory_update`` events follow stock levels per (store, product) that
deplete with sales and jump at restocks, ``stock_on_hand`` being the level
after the update. Version 1 output is byte for byte what it was before v2.

With ``bad_fraction > 0`` that fraction of messages is malformed, cycling
through every kind in :data:`BAD_KINDS`. Bad values never contain ``b"\\n"``,
so :func:`write_jsonl` can store one raw value per line.

Determinism: events are made in fixed chunks of 8192, each from its own
``numpy`` generator seeded by ``(seed, chunk)``, so the byte stream depends only
on the config, not on how it is sliced into batches. With ``end_ms=None`` the
end is "now" at construction, so pass ``end_ms`` for reproducible bytes.

It does not send anything anywhere (the CLI and benchmarks do).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from lambda_rt.events._v2traffic import CAMPAIGN_THEMES, V2Traffic
from lambda_rt.events.schema import EVENT_TYPES, REGISTRY, Reason

__all__ = [
    "BAD_KINDS",
    "CAMPAIGN_THEMES",
    "SCHEMA_CHOICES",
    "EventGenerator",
    "GeneratorConfig",
    "write_jsonl",
]

SCHEMA_CHOICES: tuple[str, ...] = ("1", "2", "mixed")
"""Values of ``GeneratorConfig.schema_version`` (and ``--schema-version``)."""

_CHUNK = 8192
_TYPE_WEIGHTS = (0.70, 0.12, 0.06, 0.06, 0.01, 0.05)  # in EVENT_TYPES order
_METHODS = (b"card", b"paypal", b"apple_pay", b"gift_card")
_METHOD_WEIGHTS = (0.60, 0.20, 0.15, 0.05)
_FAILED_SHARE = 0.05
_STORE_ZIPF = 1.1
_DAY_MS = 24 * 3600 * 1000

# bad kind -> the reason validation must give it
BAD_KINDS: dict[str, Reason] = {
    "garbage": Reason.NOT_JSON,
    "truncated": Reason.NOT_JSON,
    "array": Reason.NOT_OBJECT,
    "missing_field": Reason.MISSING_FIELD,
    "wrong_type": Reason.WRONG_TYPE,
    "unknown_event_type": Reason.UNKNOWN_EVENT_TYPE,
    "negative_amount": Reason.INVALID_VALUE,
    "store_zero": Reason.INVALID_VALUE,
    "empty_event_id": Reason.INVALID_VALUE,
    "long_event_id": Reason.INVALID_VALUE,
    "bad_status": Reason.INVALID_VALUE,
    "ts_too_old": Reason.TS_TOO_OLD,
    "ts_in_future": Reason.TS_IN_FUTURE,
}
_KIND_NAMES = tuple(BAD_KINDS)
# the schema's required fields (common first): a "missing_field" message drops one of them
_REQUIRED = {t: tuple(f.name for f in REGISTRY.latest.required_fields(t)) for t in EVENT_TYPES}
_COMMON = tuple(f.name for f in REGISTRY.latest.common)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; equal configs (with ``end_ms`` set) give equal bytes."""

    seed: int = 42
    stores: int = 1000
    customers: int = 200_000
    products: int = 5_000
    end_ms: int | None = None  # None = now, at generator construction
    span_ms: int = 10 * 60 * 1000
    bad_fraction: float = 0.0
    schema_version: str = "1"  # "1", "2" or "mixed" (see the module docstring)
    campaigns: int = 36

    def __post_init__(self) -> None:
        if str(self.schema_version) not in SCHEMA_CHOICES:
            raise ValueError(
                f"schema_version must be one of {', '.join(SCHEMA_CHOICES)}, got {self.schema_version!r}"
            )
        object.__setattr__(self, "schema_version", str(self.schema_version))
        if self.campaigns < 1:
            raise ValueError(f"campaigns must be >= 1, got {self.campaigns}")
        if self.seed < 0 or min(self.stores, self.customers, self.products, self.span_ms) < 1:
            raise ValueError(f"seed must be >= 0 and sizes/span >= 1, got {self}")
        if not 0.0 <= self.bad_fraction <= 1.0:
            raise ValueError(f"bad_fraction must be within [0, 1], got {self.bad_fraction}")


class EventGenerator:
    """A deterministic, endless stream of events; see the module docstring."""

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        self.config = config = config or GeneratorConfig()
        self.end_ms = config.end_ms if config.end_ms is not None else int(time.time() * 1000)
        ranks = np.arange(1, config.stores + 1, dtype=np.float64)
        cdf = np.cumsum(ranks**-_STORE_ZIPF)
        self._store_cdf = cdf / cdf[-1]
        # popularity rank -> store id, so the busiest store is not always store 1
        self._store_ids = np.random.default_rng(config.seed).permutation(config.stores) + 1
        self._keys = [b"%d" % s for s in range(config.stores + 1)]
        self._type_cdf = _cdf(_TYPE_WEIGHTS)
        self._method_cdf = _cdf(_METHOD_WEIGHTS)
        self._formats = _formats(config.seed)
        self._v2 = V2Traffic(config.seed, config.campaigns, config.schema_version == "mixed")
        self._pending: list[tuple[bytes, bytes]] = []
        self._pos = 0
        self._next_chunk = 0
        self.emitted = 0

    def batch(self, n: int) -> list[tuple[bytes, bytes]]:
        """The next ``n`` ``(key, value)`` pairs of the stream."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        out: list[tuple[bytes, bytes]] = []
        while len(out) < n:
            if self._pos == len(self._pending):
                self._pending, self._pos = self._chunk(self._next_chunk), 0
                self._next_chunk += 1
            take = min(n - len(out), len(self._pending) - self._pos)
            out.extend(self._pending[self._pos : self._pos + take])
            self._pos += take
        self.emitted += n
        return out

    def iter_batches(self, total: int, batch_size: int = 10_000) -> Iterator[list[tuple[bytes, bytes]]]:
        """``total`` events in batches of ``batch_size`` (the last may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        left = total
        while left > 0:
            size = min(batch_size, left)
            left -= size
            yield self.batch(size)

    def _chunk(self, k: int) -> list[tuple[bytes, bytes]]:
        cfg, n = self.config, _CHUNK
        rng = np.random.default_rng([cfg.seed, k])
        idx = np.arange(k * n, (k + 1) * n, dtype=np.int64)
        lengths = rng.geometric(1 / 6, n)  # session lengths; n draws always cover n events
        ends = np.cumsum(lengths)
        m = int(np.searchsorted(ends, n)) + 1
        session = np.repeat(np.arange(m), np.diff(np.minimum(ends[:m], n), prepend=0))
        first = idx[0] + np.concatenate(([0], np.minimum(ends[: m - 1], n)))
        store_rank = np.searchsorted(self._store_cdf, rng.random(m), side="right")
        cols: dict[str, np.ndarray] = {
            "type": np.searchsorted(self._type_cdf, rng.random(n), side="right"),
            "ts": self.end_ms - cfg.span_ms + (rng.random(n) * cfg.span_ms).astype(np.int64),
            "store": self._store_ids[store_rank][session],
            "customer": rng.integers(0, cfg.customers, m)[session],
            "session": first[session],
            "product": 1 + (rng.random(n) ** 2 * cfg.products).astype(np.int64),
            "quantity": rng.integers(1, 6, n),
            "amount": rng.lognormal(8.0, 1.0, n).astype(np.int64),
            "items": rng.integers(1, 6, n),
            "status": (rng.random(n) < _FAILED_SHARE).astype(np.int64),
            "method": np.searchsorted(self._method_cdf, rng.random(n), side="right"),
            "delta": rng.integers(-20, 101, n),
            "order_ref": np.maximum(idx - rng.integers(0, 200, n), 0),
            "idx": idx,
        }
        bad = np.flatnonzero(rng.random(n) < cfg.bad_fraction)
        bad_kind = rng.integers(0, len(_KIND_NAMES), n)
        bad_aux = rng.integers(0, 2**31, n)
        suffix = self._v2.tails(k, cols, session, m) if cfg.schema_version != "1" else None

        values = np.empty(n, dtype=object)
        for t, (fmt, fields) in enumerate(self._formats):
            rows = np.flatnonzero(cols["type"] == t)
            args = [_column(cols, f, rows) for f in ("idx", *fields)]
            values[rows] = [fmt % row for row in zip(*args, strict=True)]
        if suffix is not None:
            v2 = np.flatnonzero(suffix != b"")
            values[v2] = [v[:-1] + x for v, x in zip(values[v2].tolist(), suffix[v2].tolist(), strict=True)]
        for i in bad.tolist():
            values[i] = self._corrupt(values[i], _KIND_NAMES[bad_kind[i]], int(bad_aux[i]))
        keys = self._keys
        return list(zip([keys[s] for s in cols["store"].tolist()], values.tolist(), strict=True))

    def _corrupt(self, value: bytes, kind: str, aux: int) -> bytes:
        """Turn a good event into one bad message of ``kind`` (deterministic in ``aux``)."""
        event: dict[str, Any] = orjson.loads(value)
        if kind == "garbage":
            return (b"\xff\xfe garbage %d" if aux % 2 else b"not json at all %d") % aux
        if kind == "truncated":
            return value[: 1 + aux % (len(value) - 2)]
        if kind == "array":
            return orjson.dumps([event])
        if kind == "missing_field":
            names = _REQUIRED[event["event_type"]]
            del event[names[aux % len(names)]]
        elif kind == "wrong_type":
            field, bad_value = [
                ("store_id", str(event["store_id"])),
                ("ts", event["ts"] + 0.5),
                ("customer_id", True),
                ("event_id", aux),
            ][aux % 4]
            event[field] = bad_value
        elif kind == "unknown_event_type":
            event["event_type"] = "click"
        elif kind in ("negative_amount", "bad_status"):
            keep = {k: event[k] for k in (*_COMMON, "session_id") if k in event}
            order = f"o-{self.config.seed}-{aux}"
            event = {**keep, "event_type": "refund", "order_id": order, "amount_cents": -1 - aux % 999}
            if kind == "bad_status":
                event.update(event_type="payment", amount_cents=aux % 999, status="pending")
                event["method"] = "card"
        elif kind == "store_zero":
            event["store_id"] = 0
        elif kind == "empty_event_id":
            event["event_id"] = ""
        elif kind == "long_event_id":
            event["event_id"] = "e" * 65
        elif kind == "ts_too_old":
            event["ts"] = self.end_ms - 30 * _DAY_MS
        else:  # ts_in_future
            event["ts"] = self.end_ms + 3600 * 1000
        return orjson.dumps(event)


def write_jsonl(path: str | Path, values: Iterable[bytes]) -> int:
    """Write raw values one per line, byte for byte; returns how many.

    Raises:
        ValueError: a value contains a newline and cannot be stored as one line
            (the generator never makes such values).
    """
    count = 0
    with open(path, "wb") as out:
        for value in values:
            if b"\n" in value:
                raise ValueError(f"value {count} contains a newline; JSONL cannot hold it")
            out.write(value)
            out.write(b"\n")
            count += 1
    return count


def _cdf(weights: tuple[float, ...]) -> np.ndarray:
    cdf = np.cumsum(weights) / sum(weights)
    cdf[-1] = 1.0
    return cdf


def _column(cols: dict[str, np.ndarray], field: str, rows: np.ndarray) -> list[Any]:
    if field == "status":
        return [(b"succeeded", b"failed")[s] for s in cols["status"][rows].tolist()]
    if field == "method":
        return [_METHODS[m] for m in cols["method"][rows].tolist()]
    return cols[field][rows].tolist()


def _formats(seed: int) -> list[tuple[bytes, tuple[str, ...]]]:
    """Per event type (EVENT_TYPES order): a bytes %-format and its argument columns.

    The first argument is always the event index (for ``event_id``).
    """
    person = '"customer_id":%d,"session_id":"s-' + str(seed) + '-%d",'
    order = '"order_id":"o-' + str(seed) + '-%d","amount_cents":%d'
    common = ("ts", "store", "customer", "session")
    tails: dict[str, tuple[str, tuple[str, ...]]] = {
        "page_view": (person + '"product_id":%d}', (*common, "product")),
        "add_to_cart": (person + '"product_id":%d,"quantity":%d}', (*common, "product", "quantity")),
        "order_placed": (person + order + ',"items":%d}', (*common, "idx", "amount", "items")),
        "payment": (
            person + order + ',"status":"%s","method":"%s"}',
            (*common, "order_ref", "amount", "status", "method"),
        ),
        "refund": (person + order + "}", (*common, "order_ref", "amount")),
        "inventory_update": (
            '"customer_id":0,"product_id":%d,"delta":%d}',
            ("ts", "store", "product", "delta"),
        ),
    }
    out = []
    for name in EVENT_TYPES:
        tail, fields = tails[name]
        head = '{"event_id":"e-' + str(seed) + '-%d","event_type":"' + name + '","ts":%d,"store_id":%d,'
        out.append(((head + tail).encode(), fields))
    return out
