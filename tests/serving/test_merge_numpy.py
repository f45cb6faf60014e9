"""The numpy group-by of the merge equals a pandas group-by (no services needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from serving.engine import _merge
from serving.spec import make_spec
from serving.speed_view import EVENT_TYPE_NAMES, Columns


@pytest.mark.parametrize("sparse_ids", [False, True])
def test_numpy_merge_equals_pandas_groupby(sparse_ids: bool) -> None:
    rng = np.random.default_rng(7)
    spec = make_spec("events", "store_id,event_type", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "hour")
    parts: list[Columns] = []
    for _ in range(3):  # e.g. the batch half and two speed pieces, overlapping keys
        m = 2_000
        stores = rng.integers(1, 50, m) * (10**17 if sparse_ids else 1)  # sparse: the lexsort path
        parts.append(
            {
                # minute rows from an hour before to two hours after the range: some fall outside
                "bucket_ms": spec.start_ms - 3_600_000 + rng.integers(0, 26 * 60, m) * 60_000,
                "store_id": stores,
                "event_type": rng.integers(0, len(EVENT_TYPE_NAMES), m),
                "value": rng.integers(-3, 5, m),  # zero sums must be dropped
            }
        )
    got = _merge(parts, spec)
    df = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    df["bucket_ms"] = df["bucket_ms"] // 3_600_000 * 3_600_000
    df = df[(df["bucket_ms"] >= spec.start_ms) & (df["bucket_ms"] < spec.end_ms)]
    exp = df.groupby(["bucket_ms", "store_id", "event_type"], as_index=False)["value"].sum()
    exp = exp[exp["value"] != 0].reset_index(drop=True)
    assert list(got.columns) == ["bucket", "store_id", "event_type", "value"]
    assert str(got["bucket"].dtype) == "datetime64[ns, UTC]"
    assert got["bucket"].dt.as_unit("ms").astype("int64").tolist() == exp["bucket_ms"].tolist()
    assert got["store_id"].tolist() == exp["store_id"].tolist()
    assert got["event_type"].tolist() == [EVENT_TYPE_NAMES[i] for i in exp["event_type"]]
    assert got["value"].tolist() == exp["value"].tolist()


def test_empty_merge_keeps_columns_and_types() -> None:
    spec = make_spec("events", "event_type", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "hour")
    got = _merge([], spec)
    assert got.empty and list(got.columns) == ["bucket", "event_type", "value"]
    assert str(got["bucket"].dtype) == "datetime64[ns, UTC]" and got["value"].dtype == np.int64
