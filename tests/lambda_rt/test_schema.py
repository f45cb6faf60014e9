"""The schema registry: the v1 contract of ARCHITECTURE.md and the evolution rules."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from lambda_rt import vocabulary
from lambda_rt.events import schema
from lambda_rt.events.schema import (
    EVENT_SCHEMA,
    EVENT_TYPES,
    REGISTRY,
    FieldSpec,
    Reason,
    SchemaRegistry,
    SchemaVersion,
)


def test_event_schema_columns_types_and_nullability() -> None:
    expected = [
        ("event_id", pa.string(), False),
        ("event_type", pa.string(), False),
        ("ts", pa.int64(), False),
        ("store_id", pa.int64(), False),
        ("customer_id", pa.int64(), False),
        ("session_id", pa.string(), True),
        ("schema_version", pa.int64(), False),
        ("product_id", pa.int64(), True),
        ("quantity", pa.int64(), True),
        ("order_id", pa.string(), True),
        ("amount_cents", pa.int64(), True),
        ("items", pa.int64(), True),
        ("status", pa.string(), True),
        ("method", pa.string(), True),
        ("delta", pa.int64(), True),
        ("campaign_id", pa.string(), True),
        ("card_fingerprint", pa.string(), True),
        ("ip", pa.string(), True),
        ("device_id", pa.string(), True),
        ("stock_on_hand", pa.int64(), True),
    ]
    assert [(f.name, f.type, f.nullable) for f in EVENT_SCHEMA] == expected


def test_reason_values_are_the_dlq_header_strings() -> None:
    assert {r.name: str(r) for r in Reason} == {
        "NOT_JSON": "not_json",
        "NOT_OBJECT": "not_object",
        "MISSING_FIELD": "missing_field",
        "WRONG_TYPE": "wrong_type",
        "UNKNOWN_EVENT_TYPE": "unknown_event_type",
        "INVALID_VALUE": "invalid_value",
        "TS_TOO_OLD": "ts_too_old",
        "TS_IN_FUTURE": "ts_in_future",
    }


def test_metric_vocabulary() -> None:
    assert vocabulary.METRICS == (
        "events",
        "orders",
        "revenue",
        "refunds",
        "unique_customers",
        "payment_failures",
        "inventory_delta",
    )
    assert vocabulary.DIMENSIONS == ("store_id", "event_type", "campaign_id")
    assert vocabulary.GRANULARITIES == ("minute", "hour", "day")


def test_v1_matches_the_architecture_table() -> None:
    v1 = REGISTRY.get(1)
    assert v1.version == 1 and REGISTRY.versions == (1, 2) and REGISTRY.latest is REGISTRY.get(2)
    assert v1.event_types == EVENT_TYPES
    assert [s.name for s in v1.common] == ["event_id", "event_type", "ts", "store_id", "customer_id"]
    assert [s.name for s in v1.common_optional] == ["session_id", "schema_version"]
    required = {t: [(s.name, s.type) for s in v1.required[t]] for t in EVENT_TYPES}
    assert required == {
        "page_view": [("product_id", int)],
        "add_to_cart": [("product_id", int), ("quantity", int)],
        "order_placed": [("order_id", str), ("amount_cents", int), ("items", int)],
        "payment": [("order_id", str), ("amount_cents", int), ("status", str), ("method", str)],
        "refund": [("order_id", str), ("amount_cents", int)],
        "inventory_update": [("product_id", int), ("delta", int)],
    }
    described = {name: spec.describe() for name, spec in v1.fields().items() if spec.constrained}
    assert described == {
        "event_id": "a non-empty string of at most 64 chars",
        "event_type": "one of " + ", ".join(sorted(EVENT_TYPES)),
        "store_id": "an int >= 1",
        "customer_id": "an int >= 0",
        "schema_version": "an int >= 1",
        "quantity": "an int >= 1",
        "amount_cents": "an int >= 0",
        "items": "an int >= 1",
        "status": "one of failed, succeeded",
    }


def _v2(**changes: object) -> SchemaVersion:
    v1 = REGISTRY.get(1)
    base = {
        "version": 2,
        "common": v1.common,
        "common_optional": v1.common_optional,
        "required": dict(v1.required),
        "optional": {"page_view": (FieldSpec("quantity", int, min_value=1),)},
    }
    base.update(changes)
    return SchemaVersion(**base)  # type: ignore[arg-type]


def test_a_version_may_add_optional_fields_and_newer_events_use_the_latest() -> None:
    registry = SchemaRegistry([REGISTRY.get(1), _v2()])
    assert registry.versions == (1, 2)
    assert registry.get(1).version == 1
    assert registry.get(2).version == 2
    assert registry.get(99).version == 2  # forward compatible
    assert [s.name for s in registry.latest.type_fields("page_view")] == ["product_id", "quantity"]
    with pytest.raises(ValueError, match="older than any known"):
        registry.get(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"common": REGISTRY.get(1).common[:-1]}, "required fields and event types"),
        ({"required": {**REGISTRY.get(1).required, "click": ()}}, "required fields and event types"),
        ({"common_optional": ()}, "removed or changed"),
        ({"optional": {"page_view": (FieldSpec("quantity", str),)}}, "defined twice|not an EVENT_SCHEMA"),
        ({"optional": {"page_view": (FieldSpec("coupon", str),)}}, "not an EVENT_SCHEMA column"),
        ({"version": 1}, "increasing"),
    ],
)
def test_the_registry_refuses_incompatible_versions(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SchemaRegistry([REGISTRY.get(1), _v2(**changes)])


def test_field_specs_are_checked() -> None:
    with pytest.raises(ValueError):
        FieldSpec("x", float)
    with pytest.raises(ValueError):
        FieldSpec("x", int, max_length=3)
    with pytest.raises(ValueError):
        FieldSpec("x", str, min_value=0)
    with pytest.raises(ValueError):
        SchemaRegistry([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY.latest.version = 3  # type: ignore[misc]


def test_v2_adds_the_documented_optional_fields_only() -> None:
    v1, v2 = REGISTRY.get(1), REGISTRY.get(2)
    assert v2.required_fields("payment") == v1.required_fields("payment")
    optional = {
        t: [(s.name, s.type, s.max_length, s.min_value) for s in v2.optional.get(t, ())] for t in EVENT_TYPES
    }
    signals = [("card_fingerprint", str, 64, None), ("ip", str, 64, None), ("device_id", str, 64, None)]
    assert optional == {
        "page_view": [("campaign_id", str, 64, None)],
        "add_to_cart": [("campaign_id", str, 64, None)],
        "order_placed": [("campaign_id", str, 64, None), *signals],
        "payment": signals,
        "refund": [],
        "inventory_update": [("stock_on_hand", int, None, 0)],
    }
    assert schema.V2_FIELDS == ("campaign_id", "card_fingerprint", "ip", "device_id", "stock_on_hand")
