"""Hostile input: 100,000 generated messages through validation, the DLQ path and the
speed layer's aggregation, compared with the independent oracle; property tests.

No crash, every bad message rejected with the oracle's reason (and, end to end,
in the DLQ), every valid one counted. The 100K run is in-process (validator +
``speed_layer.aggregate``); a smaller slice goes end to end through the broker,
the speed layer subprocess and the DLQ topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_rt.events.validate import TimeWindow, validate_batch
from lambda_rt.producing import produce_all
from lambda_rt.testing import oracle_frame, oracle_rejects
from speed_layer.aggregate import aggregate
from speed_layer.keys import SpeedKeys
from tests.chaos.harness import check_dlq, record, size, speed_process
from tests.fuzz.hostile import hostile_values

N_FUZZ = 100_000  # the floor, in every form (about 20 s in-process)
NOW = int(time.time() * 1000)


def _events_total(delta: Any) -> int:
    return sum(
        sum(v)
        for k, v in zip(delta.hash_keys, delta.hash_values, strict=True)
        if k.endswith(":m:events") or (":agg:m:" in k and k.endswith(":events"))
    )


def test_100k_hostile_messages_validate_dlq_and_aggregate_like_the_oracle() -> None:
    values, families = hostile_values(N_FUZZ, seed=2026)
    keys = SpeedKeys("fuzz")
    got_rejects: list[tuple[int, str]] = []
    counted = 0
    frames: list[pd.DataFrame] = []
    for lo in range(0, len(values), 10_000):
        chunk = values[lo : lo + 10_000]
        vb = validate_batch(chunk, now_ms=NOW, window=TimeWindow())
        assert all(r.detail for r in vb.rejects), "a reject without a readable detail"
        got_rejects += [(lo + int(r.index), str(getattr(r.reason, "value", r.reason))) for r in vb.rejects]
        offsets = pd.RangeIndex(lo, lo + len(chunk)).to_numpy().astype("int64")
        delta = aggregate(vb.table, keys, partitions=offsets * 0, offsets=offsets)
        assert delta.events == vb.n_valid
        assert delta.offsets == [(0, lo, lo + len(chunk))]
        counted += _events_total(delta)
        frames.append(vb.table.select(["event_id", "ts", "store_id"]).to_pandas())
    want = oracle_rejects(values, now_ms=NOW)
    assert got_rejects == want, _first_diff(got_rejects, want)
    oracle = oracle_frame(values, now_ms=NOW)
    assert counted == len(oracle), (counted, len(oracle))
    table = pd.concat(frames, ignore_index=True)
    assert table["event_id"].tolist() == oracle["event_id"].tolist()
    assert table["ts"].astype("int64").tolist() == oracle["ts"].astype("int64").tolist()
    by_reason = pd.Series([r for _, r in want]).value_counts().to_dict()
    record(
        "fuzz_in_process",
        runs=1,
        inputs_tried=len(values),
        families=families,
        rejected=len(want),
        rejects_by_reason=by_reason,
        valid=len(oracle),
        counted=counted,
        lost=len(oracle) - counted,
        double_counted=max(0, counted - len(oracle)),
    )


def _first_diff(a: list[tuple[int, str]], b: list[tuple[int, str]]) -> str:
    sa, sb = set(a), set(b)
    return f"validator-only {sorted(sa - sb)[:5]}, oracle-only {sorted(sb - sa)[:5]}"


def test_hostile_slice_end_to_end_through_the_broker(isolated: Any) -> None:
    """A slice through Kafka, the speed layer and the DLQ topic: exact DLQ, exact counts."""
    from tests.speed_layer.fixtures import assert_metrics_equal, oracle_view, view_metrics

    values, _families = hostile_values(size(2_000, 20_000), seed=7, max_huge=150_000)
    now = int(time.time() * 1000)
    produce_all(isolated.settings.kafka, [[(b"k", v) for v in values]], **{"message.max.bytes": 1_000_000})
    proc = speed_process(isolated.env, idle_s=3)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err
    assert_metrics_equal(view_metrics(isolated.settings), oracle_view(values, now))
    expected, found = check_dlq(isolated.settings, values, now)
    record(
        "fuzz_end_to_end",
        runs=1,
        inputs_tried=len(values),
        dlq_expected=expected,
        dlq_found=found,
        lost=0,
        double_counted=0,
    )


# -- property-based ------------------------------------------------------------------
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_FIELDS = [
    "event_id",
    "event_type",
    "ts",
    "store_id",
    "customer_id",
    "session_id",
    "schema_version",
    "product_id",
    "quantity",
    "order_id",
    "amount_cents",
    "items",
    "status",
    "method",
    "delta",
    "extra",
]


@st.composite
def _event_like(draw: Any) -> bytes:
    """A valid-looking event with some fields replaced, dropped or added."""
    base: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": draw(
            st.sampled_from(
                ["page_view", "add_to_cart", "order_placed", "payment", "refund", "inventory_update", "nope"]
            )
        ),
        "ts": NOW - draw(st.integers(min_value=-400_000, max_value=8 * 86_400_000)),
        "store_id": draw(st.integers(min_value=-2, max_value=50)),
        "customer_id": 3,
        "product_id": 4,
        "quantity": 1,
        "order_id": "o",
        "amount_cents": 10,
        "items": 1,
        "status": "failed",
        "method": "card",
        "delta": -2,
    }
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=3)):
        base[name] = draw(_json_scalar)
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=2)):
        base.pop(name, None)
    return json.dumps(base).encode()


_PROPERTY = {"examples": 0, "inputs": 0}  # what hypothesis generated (shrinking included)


@pytest.fixture(scope="module", autouse=True)
def _property_summary() -> Iterator[None]:
    """The property test's CHAOS-SUMMARY line, once the module is done."""
    yield
    if _PROPERTY["examples"]:
        record(
            "fuzz_property",
            runs=1,
            examples=_PROPERTY["examples"],
            inputs_tried=_PROPERTY["inputs"],
            max_examples=size(100, 1500),
        )


@settings(max_examples=size(100, 1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=80), _event_like()), min_size=1, max_size=30))
def test_property_validator_agrees_with_the_oracle(values: list[bytes]) -> None:
    _PROPERTY["examples"] += 1
    _PROPERTY["inputs"] += len(values)
    vb = validate_batch(values, now_ms=NOW, window=TimeWindow())
    got = [(int(r.index), str(getattr(r.reason, "value", r.reason))) for r in vb.rejects]
    assert got == oracle_rejects(values, now_ms=NOW)
    assert vb.n_valid + vb.n_rejected == len(values)
    assert vb.indices.tolist() == oracle_frame(values, now_ms=NOW).index.tolist()
