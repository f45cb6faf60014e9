"""The pandas oracle, checked against a tiny example worked out by hand."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from lambda_rt.testing import METRICS, oracle_frame, oracle_metrics, oracle_rejects

T0 = 1_795_687_200_000  # 2026-11-26T10:00:00Z
MIN = 60_000
NOW = T0 + 60 * MIN


def ev(n: int, event_type: str, ts: int, store: int, customer: int, **fields: Any) -> bytes:
    body = {
        "event_id": f"e-{n}",
        "event_type": event_type,
        "ts": ts,
        "store_id": store,
        "customer_id": customer,
    }
    return json.dumps({**body, **fields}).encode()


# By hand: minute 10:00 holds events 0-5, minute 10:01 events 6-9, 11:30 event 10.
VALUES = [
    ev(0, "page_view", T0 + 1_000, 1, 100, product_id=7),
    ev(1, "order_placed", T0 + 2_000, 1, 100, order_id="o1", amount_cents=500, items=1),
    ev(2, "order_placed", T0 + 59_999, 2, 200, order_id="o2", amount_cents=250, items=3),
    ev(3, "payment", T0 + 3_000, 1, 100, order_id="o1", amount_cents=500, status="failed", method="card"),
    ev(4, "inventory_update", T0 + 4_000, 2, 0, product_id=7, delta=5),
    ev(5, "inventory_update", T0 + 5_000, 2, 0, product_id=7, delta=-5),
    ev(6, "refund", T0 + MIN, 1, 300, order_id="o1", amount_cents=120),
    ev(7, "page_view", T0 + MIN + 1, 1, 100, product_id=8),
    ev(
        8, "payment", T0 + MIN + 2, 2, 200, order_id="o2", amount_cents=250, status="succeeded", method="card"
    ),
    ev(9, "inventory_update", T0 + MIN + 3, 1, 0, product_id=9, delta=4),
    ev(10, "order_placed", T0 + 90 * MIN - 1, 1, 100, order_id="o3", amount_cents=1000, items=2),  # future
    b"not json",
    ev(12, "page_view", T0, 0, 1, product_id=1),  # store 0
]
M0, M1 = pd.Timestamp("2026-11-26T10:00:00Z"), pd.Timestamp("2026-11-26T10:01:00Z")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return oracle_frame(VALUES, now_ms=NOW, max_future_ms=60 * MIN)


def rows(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in df.itertuples(index=False)]


def test_frame_keeps_valid_events_in_input_order(frame: pd.DataFrame) -> None:
    assert frame.index.tolist() == list(range(11))  # event 10 is within the 60-minute lead here
    assert frame.loc[0, "schema_version"] == 1 and pd.isna(frame.loc[0, "amount_cents"])
    assert oracle_rejects(VALUES, now_ms=NOW) == [
        (10, "ts_in_future"),
        (11, "not_json"),
        (12, "invalid_value"),
    ]


def test_events_and_unique_customers_per_minute(frame: pd.DataFrame) -> None:
    hour = frame[frame.index < 10]
    assert rows(oracle_metrics(hour, "events")) == [(M0, 6), (M1, 4)]
    assert rows(oracle_metrics(hour, "events", by=["store_id"])) == [
        (M0, 1, 3),
        (M0, 2, 3),
        (M1, 1, 3),
        (M1, 2, 1),
    ]
    # 10:00 customers {100, 200, 0}; 10:01 {300, 100, 200, 0}
    assert rows(oracle_metrics(hour, "unique_customers")) == [(M0, 3), (M1, 4)]


def test_orders_revenue_refunds_failures(frame: pd.DataFrame) -> None:
    assert rows(oracle_metrics(frame, "orders", granularity="hour")) == [
        (pd.Timestamp("2026-11-26T10:00Z"), 2),
        (pd.Timestamp("2026-11-26T11:00Z"), 1),
    ]
    assert rows(oracle_metrics(frame, "revenue", by=["store_id"])) == [
        (M0, 1, 500),
        (M0, 2, 250),
        (pd.Timestamp("2026-11-26T11:29Z"), 1, 1000),
    ]
    assert rows(oracle_metrics(frame, "revenue", granularity="day")) == [
        (pd.Timestamp("2026-11-26T00:00Z"), 1750)
    ]
    assert rows(oracle_metrics(frame, "refunds")) == [(M1, 120)]
    assert rows(oracle_metrics(frame, "payment_failures", by=["store_id", "event_type"])) == [
        (M0, 1, "payment", 1)
    ]


def test_inventory_delta_omits_buckets_that_cancel_out(frame: pd.DataFrame) -> None:
    # store 2 product 7: +5 then -5 in the same minute -> 0, omitted
    assert rows(oracle_metrics(frame, "inventory_delta", by=["store_id", "product_id"])) == [(M1, 1, 9, 4)]


def test_buckets_are_utc_and_columns_are_fixed(frame: pd.DataFrame) -> None:
    out = oracle_metrics(frame, "events", by=["event_type", "store_id"])
    assert list(out.columns) == ["bucket", "event_type", "store_id", "value"]
    assert str(out["bucket"].dt.tz) == "UTC" and out["value"].dtype == "int64"
    empty = oracle_metrics(frame.iloc[:0], "revenue", by=["store_id"])
    assert list(empty.columns) == ["bucket", "store_id", "value"] and empty.empty


@pytest.mark.parametrize(
    ("metric", "by", "granularity"),
    [
        ("clicks", (), "minute"),
        ("events", ("product_id",), "minute"),
        ("events", (), "week"),
        ("events", ("store_id", "store_id"), "minute"),
    ],
)
def test_bad_arguments(frame: pd.DataFrame, metric: str, by: tuple[str, ...], granularity: str) -> None:
    with pytest.raises(ValueError):
        oracle_metrics(frame, metric, by=by, granularity=granularity)


def test_every_metric_runs_on_every_dimension(frame: pd.DataFrame) -> None:
    for metric in METRICS:
        for by in ((), ("store_id",), ("event_type",), ("store_id", "event_type")):
            out = oracle_metrics(frame, metric, by=by)
            assert (out["value"] > 0).all()
