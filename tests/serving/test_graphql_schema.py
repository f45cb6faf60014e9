"""The GraphQL schema without a daemon: limits, and the flat-row shortcut's equivalence.

The backend here answers from a hand-built :class:`QueryResult` (no service is
involved in what these check: validation rules and the executor).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest
import strawberry

from lambda_rt.vocabulary import HOUR_MS
from serving.apis import ApiBackend
from serving.graphql_api.schema import GraphQLLimits, Query, Subscription, build_schema
from serving.result import Coverage, LayerRange, QueryResult, SpeedFreshness
from serving.spec import make_spec


def _answer(
    metric: str, by: Any = None, start: Any = None, end: Any = None, granularity: str = "hour", **_: Any
) -> QueryResult:
    spec = make_spec(metric, by, "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z", granularity)
    buckets = np.repeat(spec.start_ms + np.arange(24) * HOUR_MS, 25)
    frame = pd.DataFrame({"bucket": pd.to_datetime(buckets, unit="ms", utc=True).as_unit("ns")})
    for d in spec.by:
        frame[d] = np.tile(np.arange(1, 26), 24) if d != "event_type" else "order_placed"
    frame["value"] = np.arange(len(frame), dtype=np.int64) * 3_000_000_007  # beyond 32 bits
    cov = Coverage(
        spec.start_ms, True, (LayerRange("batch", spec.start_ms, spec.end_ms),), (), SpeedFreshness()
    )
    return QueryResult(metric, granularity, spec.by, frame, cov)


BACKEND = ApiBackend(query=_answer, status=lambda: {})


def _run(schema: strawberry.Schema, query: str) -> Any:
    return asyncio.run(schema.execute(query, context_value={"backend": BACKEND}))


def test_flat_rows_equal_graphql_cores_own_completion() -> None:
    query = (
        '{ metric(name: "revenue", by: ["store_id", "event_type"]) '
        "{ rows { __typename bucket v: value storeId eventType productId } coverage { exact } } }"
    )
    fast = _run(build_schema(), query)
    plain = strawberry.Schema(query=Query, subscription=Subscription, config=build_schema().config)
    slow = _run(plain, query)
    assert fast.errors is None and slow.errors is None
    assert fast.data == slow.data
    rows = fast.data["metric"]["rows"]
    assert len(rows) == 600 and rows[1]["v"] == 3_000_000_007 and rows[0]["__typename"] == "Row"


@pytest.mark.parametrize(
    ("limits", "query", "message"),
    [
        (
            GraphQLLimits(max_depth=2),
            '{ metric(name: "events") { coverage { speed { lastApplied } } } }',
            "exceeds maximum operation depth",
        ),
        (
            GraphQLLimits(max_tokens=10),
            '{ metric(name: "events", by: ["store_id"]) { rows { bucket value } } }',
            "more than 10 tokens",
        ),
        (
            GraphQLLimits(max_aliases=1),
            "{ a: status { watermark } b: status { watermark } }",
            "aliases found",
        ),
        (
            GraphQLLimits(max_root_fields=1),
            "{ status { watermark } alerts { note } }",
            "too many top-level fields",
        ),
    ],
)
def test_each_limit_refuses_with_one_message(limits: GraphQLLimits, query: str, message: str) -> None:
    result = _run(build_schema(limits), query)
    assert result.data is None and result.errors
    assert message in result.errors[0].message, result.errors


def test_unexpected_errors_are_masked() -> None:
    def broken(*_: Any, **__: Any) -> QueryResult:
        raise KeyError("secret internals")

    schema = build_schema()
    result = asyncio.run(
        schema.execute(
            '{ metric(name: "events") { metric } }', context_value={"backend": ApiBackend(broken, dict)}
        )
    )
    assert result.errors and result.errors[0].message == "internal error: see the daemon's log"


def test_checked_in_sdl_is_current() -> None:
    from pathlib import Path

    import serving.graphql_api

    sdl = Path(serving.graphql_api.__file__).parent / "schema.graphql"
    assert sdl.read_text() == build_schema().as_str() + "\n", (
        "run: python -m serving.graphql_api > serving/graphql_api/schema.graphql"
    )
