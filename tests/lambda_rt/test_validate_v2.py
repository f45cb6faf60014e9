"""Schema v2 in validation: the optional fields are kept, mistyped ones go to the DLQ."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_rt.events.schema import REGISTRY, SCHEMA_V1, Reason, SchemaRegistry
from lambda_rt.events.validate import validate_batch, validate_batch_slow
from lambda_rt.testing import oracle_frame, oracle_rejects

NOW = 1_795_687_200_000
BASE: dict[str, dict[str, Any]] = {
    "page_view": {"product_id": 5, "campaign_id": "spring-sale"},
    "add_to_cart": {"product_id": 5, "quantity": 2, "campaign_id": "spring-sale"},
    "order_placed": {
        "order_id": "o-7",
        "amount_cents": 2599,
        "items": 2,
        "campaign_id": "spring-sale",
        "card_fingerprint": "fp-1",
        "ip": "10.0.0.7",
        "device_id": "d-3",
    },
    "payment": {
        "order_id": "o-7",
        "amount_cents": 2599,
        "status": "failed",
        "method": "card",
        "card_fingerprint": "fp-1",
        "ip": "10.0.0.7",
        "device_id": "d-3",
    },
    "inventory_update": {"product_id": 5, "delta": -3, "stock_on_hand": 12},
}


def v2(event_type: str = "order_placed", **fields: Any) -> bytes:
    out = {
        "event_id": "e-42",
        "event_type": event_type,
        "ts": NOW - 60_000,
        "store_id": 17,
        "customer_id": 981,
        "schema_version": 2,
        **BASE[event_type],
        **fields,
    }
    return json.dumps(out, separators=(",", ":")).encode()


def both(values: list[bytes]) -> list[tuple[int, str]]:
    fast = validate_batch(values, now_ms=NOW)
    slow = validate_batch_slow(values, now_ms=NOW)
    assert [(r.index, r.reason) for r in fast.rejects] == [(r.index, r.reason) for r in slow.rejects]
    assert fast.table.equals(slow.table)
    got = [(r.index, str(r.reason)) for r in fast.rejects]
    assert got == oracle_rejects(values, now_ms=NOW)
    return got


def test_v2_fields_are_kept_per_event_type() -> None:
    values = [v2(t) for t in BASE]
    assert both(values) == []
    rows = validate_batch(values, now_ms=NOW).table.to_pylist()
    for row, event_type in zip(rows, BASE, strict=True):
        for name, value in BASE[event_type].items():
            assert row[name] == value
        assert row["schema_version"] == 2
    expected = oracle_frame(values, now_ms=NOW)
    assert expected["campaign_id"].tolist()[:3] == ["spring-sale"] * 3


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("page_view", "campaign_id", 7),
        ("order_placed", "campaign_id", ["a"]),
        ("order_placed", "card_fingerprint", 1.5),
        ("payment", "ip", 10),
        ("payment", "device_id", True),
        ("inventory_update", "stock_on_hand", "12"),
        ("inventory_update", "stock_on_hand", 1.0),
        ("refund", "campaign_id", 3),  # a known field on another type is type-checked too
    ],
)
def test_a_mistyped_v2_field_is_a_wrong_type_reject(event_type: str, field: str, value: Any) -> None:
    base = BASE.get(event_type, {"order_id": "o-7", "amount_cents": 1})
    raw = json.dumps(
        {
            "event_id": "e-1",
            "event_type": event_type,
            "ts": NOW,
            "store_id": 1,
            "customer_id": 1,
            **base,
            field: value,
        }
    ).encode()
    values = [v2("page_view")] * 50 + [raw] + [v2("payment")] * 50  # the fast path's batch shape
    assert both(values) == [(50, "wrong_type")]
    detail = validate_batch(values, now_ms=NOW).rejects[0].detail
    assert field in detail


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("page_view", "campaign_id", "c" * 65),
        ("payment", "ip", "x" * 65),
        ("inventory_update", "stock_on_hand", -1),
    ],
)
def test_a_v2_constraint_is_an_invalid_value_reject(event_type: str, field: str, value: Any) -> None:
    values = [v2("page_view"), v2(event_type, **{field: value})]
    assert both(values) == [(1, "invalid_value")]
    assert validate_batch(values, now_ms=NOW).rejects[0].reason is Reason.INVALID_VALUE


def test_v1_rules_accept_v2_events_and_v2_rules_accept_v1_events() -> None:
    old = SchemaRegistry([SCHEMA_V1])
    values = [v2(t) for t in BASE]
    assert validate_batch(values, now_ms=NOW, registry=old).n_valid == len(values)
    v1_event = json.dumps(
        {
            "event_id": "e",
            "event_type": "page_view",
            "ts": NOW,
            "store_id": 1,
            "customer_id": 0,
            "product_id": 1,
        }
    ).encode()
    table = validate_batch([v1_event], now_ms=NOW, registry=REGISTRY).table
    assert table.column("campaign_id").to_pylist() == [None]
    assert table.column("schema_version").to_pylist() == [1]
