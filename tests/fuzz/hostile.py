"""Hostile message values for the fuzz run: every family the issue lists, seeded.

Families: random bytes, truncated JSON, huge fields, deep nesting, wrong types,
NaN/Infinity, unicode edge cases, extreme timestamps, duplicate keys, plus
valid generated events (so the run also proves every valid one is counted).
Pure data, no I/O.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

from lambda_rt.events.generator import EventGenerator, GeneratorConfig

__all__ = ["FAMILIES", "hostile_values"]


def _valid(rng: random.Random, base: list[bytes]) -> bytes:
    return base[rng.randrange(len(base))]


def _random_bytes(rng: random.Random, _base: list[bytes]) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))


def _truncated(rng: random.Random, base: list[bytes]) -> bytes:
    v = _valid(rng, base)
    return v[: rng.randrange(0, len(v))]


def _obj(rng: random.Random, base: list[bytes]) -> dict[str, object]:
    obj: dict[str, object] = json.loads(_valid(rng, base))
    return obj


def _huge(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    field = rng.choice(["event_id", "session_id", "order_id", "method", "junk", "event_type"])
    obj[field] = "x" * rng.choice([65, 10_000, 200_000])
    return json.dumps(obj).encode()


def _deep(rng: random.Random, base: list[bytes]) -> bytes:
    depth = rng.choice([50, 600, 1100, 3000])
    obj = _obj(rng, base)
    inner = "[" * depth + "1" + "]" * depth
    text = json.dumps(obj)
    if rng.random() < 0.5:
        return (text[:-1] + f', "nest": {inner}}}').encode()
    return inner.encode()


_WRONG: list[object] = ["7", 7.5, True, None, [], {}, -1, 0, 2**70, "", "2026-01-01"]


def _wrong_type(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    field = rng.choice(list(obj))
    obj[field] = rng.choice(_WRONG)
    return json.dumps(obj).encode()


def _nan(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    field = rng.choice(["ts", "store_id", "amount_cents", "delta", "customer_id", "extra"])
    text = json.dumps(obj)
    token = rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-0.0", "1.0"])
    return (text[:-1] + f', "{field}": {token}}}').encode()


_UNICODE = [
    "\u0000",
    "\ufeff",
    "\u200b",
    "\U0001f600",
    "e\u0301",
    "\uffff",
    "\u202e",
    "\\ud800",
    "\\udfff\\ud800",
]


def _unicode(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    field = rng.choice(["event_id", "session_id", "event_type", "status", "method", "order_id"])
    piece = rng.choice(_UNICODE)
    if piece.startswith("\\u"):  # a lone surrogate, escaped in the JSON text
        text = json.dumps(obj)
        return (text[:-1] + f', "{field}": "a{piece}"}}').encode()
    obj[field] = f"{obj.get(field, '')}{piece}"
    raw = json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode()
    if rng.random() < 0.2:  # invalid UTF-8 bytes in the raw value
        raw = raw.replace(b'"', b'"\xc0\xaf', 1)
    return raw


def _extreme_ts(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    now = int(time.time() * 1000)
    # too far ahead by 5 more minutes, not by 1 ms: a future ts turns valid as the clock moves,
    # and the oracle and the layer under test read the clock at different moments
    too_far_ahead = now + 10 * 60_000
    obj["ts"] = rng.choice(
        [0, -1, 2**63 - 1, -(2**63), 2**63, 2**64, too_far_ahead, now - 7 * 86_400_000 - 1, now * 1000]
    )
    return json.dumps(obj).encode()


def _duplicate_keys(rng: random.Random, base: list[bytes]) -> bytes:
    obj = _obj(rng, base)
    field = rng.choice(["ts", "event_type", "store_id", "amount_cents", "event_id"])
    dup = rng.choice(['"dup"', "-5", "null", "1", '"page_view"'])
    text = json.dumps(obj)
    return (text[:-1] + f', "{field}": {dup}}}').encode()


FAMILIES: dict[str, Callable[[random.Random, list[bytes]], bytes]] = {
    "valid": _valid,
    "random_bytes": _random_bytes,
    "truncated_json": _truncated,
    "huge_fields": _huge,
    "deep_nesting": _deep,
    "wrong_types": _wrong_type,
    "nan_infinity": _nan,
    "unicode": _unicode,
    "extreme_ts": _extreme_ts,
    "duplicate_keys": _duplicate_keys,
}
_WEIGHTS = {"valid": 8, "huge_fields": 0.05, "deep_nesting": 0.1}


def hostile_values(n: int, *, seed: int, max_huge: int = 200_000) -> tuple[list[bytes], dict[str, int]]:
    """``n`` values drawn from :data:`FAMILIES` (about half valid); also the count per family."""
    rng = random.Random(seed)
    gen = EventGenerator(GeneratorConfig(seed=seed, stores=30, customers=2000, products=40))
    base = [v for _, v in gen.batch(2000)]
    names = list(FAMILIES)
    weights = [_WEIGHTS.get(f, 1.0) for f in names]
    out: list[bytes] = []
    counts = dict.fromkeys(names, 0)
    for name in rng.choices(names, weights=weights, k=n):
        v = FAMILIES[name](rng, base)
        if len(v) > max_huge:
            v = v[:max_huge]
        out.append(v)
        counts[name] += 1
    return out, counts
