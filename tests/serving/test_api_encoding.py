"""Both APIs carry every coverage field: protobuf and GraphQL against ``Coverage.to_dict``.

No service: a hand-built result with every part of the coverage set (holes,
approximate and shed ranges, speed offsets), encoded and decoded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.graphql_api.types import metric_result_of
from serving.grpc_api.convert import from_response, to_response
from serving.result import Coverage, Hole, LayerRange, QueryResult, ShedRange, SpeedFreshness
from serving.spec import make_spec

H = 3_600_000


def _result() -> QueryResult:
    spec = make_spec("events", "store_id,event_type", "2026-11-26T00:00:00Z", "2026-11-26T04:00:00Z")
    frame = pd.DataFrame(
        {
            "bucket": pd.to_datetime(np.array([0, 0, H, 3 * H]) + spec.start_ms, unit="ms", utc=True).as_unit(
                "ns"
            ),
            "store_id": np.array([1, 2, 1, 7], dtype=np.int64),
            "event_type": np.array(["page_view", "payment", "refund", "page_view"], dtype=object),
            "value": np.array([5, 3_000_000_000_000, 1, 9], dtype=np.int64),
        }
    )
    s = spec.start_ms
    cov = Coverage(
        batch_through_ms=s + H,
        exact=False,
        ranges=(LayerRange("batch", s, s + H), LayerRange("speed", s + H, s + 4 * H)),
        holes=(Hole(s + 2 * H, s + 3 * H, "speed view state lost"),),
        speed=SpeedFreshness({0: 10, 3: 7}, s + 4 * H - 1000, s + 4 * H - 2000, {"page_view": 12}),
        approximate_ranges=(LayerRange("speed", s + H, s + 2 * H),),
        cached=True,
        shed_ranges=(ShedRange(s + 3 * H, s + 4 * H, (("page_view", 12),)),),
    )
    return QueryResult("events", "hour", spec.by, frame, cov)


def test_protobuf_round_trip_keeps_rows_and_every_coverage_field() -> None:
    result = _result()
    back = from_response(
        type(to_response(result)).FromString(to_response(result).SerializeToString()), result.by
    )
    pd.testing.assert_frame_equal(back.frame, result.frame)
    assert back.coverage.to_dict() == result.coverage.to_dict()


def test_graphql_coverage_is_the_http_document_and_typed_fields_agree() -> None:
    result = _result()
    got = metric_result_of(result)
    doc = result.coverage.to_dict()
    assert got.coverage.document == doc
    assert [
        (r.start, r.end, [(c.event_type, c.count) for c in r.counts]) for r in got.coverage.shed_ranges
    ] == [(r["start"], r["end"], list(r["counts"].items())) for r in doc["shed_ranges"]]
    assert [(o.partition, o.offset) for o in got.coverage.speed.offsets] == [(0, 10), (3, 7)]
    rows = [r._asdict() for r in got.rows]  # type: ignore[attr-defined]
    assert [{k: v for k, v in r.items() if v is not None} for r in rows] == result.rows()
