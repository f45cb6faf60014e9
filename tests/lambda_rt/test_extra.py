"""extra_json: every field no column holds is kept, vectorised screen agrees with a plain scan."""

from __future__ import annotations

import json
import random

import orjson

from lambda_rt.events.extra import extra_json
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.events.schema import EVENT_SCHEMA
from lambda_rt.events.validate import validate_batch

NOW = 1_795_687_200_000


def _plain(raw: bytes, row: dict[str, object]) -> str:
    obj = json.loads(raw)
    extra = {
        k: v for k, v in obj.items() if k not in EVENT_SCHEMA.names or (v is not None and row[k] is None)
    }
    return json.dumps(extra, sort_keys=True, separators=(",", ":")) if extra else ""


def test_unknown_and_misplaced_fields_are_kept() -> None:
    base = {
        "event_id": "e",
        "event_type": "page_view",
        "ts": NOW,
        "store_id": 1,
        "customer_id": 2,
        "product_id": 3,
    }
    values = [
        json.dumps(base).encode(),
        json.dumps({**base, "coupon": {"code": "X:1", "pct": 10}}).encode(),
        json.dumps({**base, "amount_cents": 5}).encode(),  # known, but not a page_view field
        json.dumps({**base, "session_id": "a:b:c"}).encode(),  # colons in a value only
        json.dumps({**base, "schema_version": 3, "loyalty": None}).encode(),
        json.dumps({**base, "session_id": None}).encode(),
    ]
    vb = validate_batch(values, now_ms=NOW)
    got = extra_json(values, vb.table, vb.indices).to_pylist()
    assert got == [
        "",
        '{"coupon":{"code":"X:1","pct":10}}',
        '{"amount_cents":5}',
        "",
        '{"loyalty":null}',
        "",
    ]


def test_agrees_with_a_plain_scan_on_a_generated_stream() -> None:
    gen = EventGenerator(GeneratorConfig(seed=3, end_ms=NOW, schema_version="mixed"))
    rng = random.Random(5)
    values = []
    for _, raw in gen.batch(2_000):
        if rng.random() < 0.1:
            obj = orjson.loads(raw)
            obj[rng.choice(["coupon", "ab_test", "ref"])] = rng.choice([1, "x:y", None, [1, 2]])
            raw = orjson.dumps(obj)
        values.append(raw)
    vb = validate_batch(values, now_ms=NOW)
    got = extra_json(values, vb.table, vb.indices).to_pylist()
    rows = vb.table.to_pylist()
    expected = [_plain(values[i], row) for i, row in zip(vb.indices.tolist(), rows, strict=True)]
    assert got == expected
    assert sum(1 for g in got if g) > 100
