"""GraphQL object types of the lambda-rt schema, and their builders from engine objects.

The shapes follow the HTTP API's JSON (``GET /query``): a result has
``rows`` (bucket ISO-8601 UTC, the asked dimensions, value) and ``coverage``
(batch through, exact, complete, ranges by layer, approximate ranges, holes,
speed freshness, cached), with GraphQL's camelCase names. ``Coverage.document``
is the HTTP API's ``coverage`` object verbatim, for clients that compare or
store it. Counts are the ``Long`` scalar: revenue in cents does not fit
GraphQL's 32-bit ``Int``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, NewType, cast

import strawberry
from strawberry.scalars import JSON

from serving.apis import AlertRecord, result_columns
from serving.result import QueryResult

__all__ = [
    "LONG_SCALAR",
    "Alert",
    "AlertList",
    "Coverage",
    "Hole",
    "Job",
    "LayerRange",
    "Long",
    "MetricResult",
    "PartitionOffset",
    "Row",
    "RowColumns",
    "RowData",
    "ShedCount",
    "ShedRange",
    "SpeedFreshness",
    "Status",
    "Tier",
    "TimeRange",
    "alert_of",
    "metric_result_of",
    "status_of",
]

Long = NewType("Long", int)
LONG_SCALAR = strawberry.scalar(
    name="Long",
    serialize=int,
    parse_value=int,
    description="A 64-bit integer (sent as a JSON number).",
)
"""``Long``'s GraphQL definition (given to the schema's ``scalar_map``)."""


@strawberry.type(description="One bucket of one group; a dimension not asked for is null.")
class Row:
    bucket: str
    value: Long
    store_id: Long | None = None
    event_type: str | None = None
    product_id: Long | None = None


@strawberry.type(description="A range served by one layer (batch or speed).")
class LayerRange:
    layer: str
    start: str
    end: str


@strawberry.type
class TimeRange:
    start: str
    end: str


@strawberry.type(description="A range no layer covers, and why.")
class Hole:
    start: str
    end: str
    reason: str


@strawberry.type
class PartitionOffset:
    partition: int
    offset: Long


@strawberry.type
class ShedCount:
    event_type: str
    count: Long


@strawberry.type(description="A speed range not exact because events the metric counts were shed there.")
class ShedRange:
    start: str
    end: str
    counts: list[ShedCount]


@strawberry.type(description="How far the speed layer has got.")
class SpeedFreshness:
    offsets: list[PartitionOffset]
    last_applied: str | None
    max_event_time: str | None
    shed: list[ShedCount]


@strawberry.type(description="Where the answer came from and how exact it is (as the HTTP API's coverage).")
class Coverage:
    batch_through: str | None
    exact: bool
    complete: bool
    ranges: list[LayerRange]
    approximate: list[TimeRange]
    holes: list[Hole]
    shed_ranges: list[ShedRange]
    speed: SpeedFreshness
    cached: bool
    document: JSON = strawberry.field(description="The HTTP API's coverage object, verbatim.")


@strawberry.type(description="One merged metric: rows plus coverage.")
class MetricResult:
    metric: str
    granularity: str
    rows: list[Row]
    coverage: Coverage


@strawberry.type
class Tier:
    name: str
    rows: Long
    bytes: Long
    days: Long


@strawberry.type
class Job:
    run_id: str
    job: str
    status: str
    started_at: str | None
    ended_at: str | None
    rows: Long
    error: str | None


@strawberry.type(description="Watermark, tier sizes and recent batch jobs (as GET /status).")
class Status:
    watermark: str | None
    batch_lag_s: float | None
    tiers: list[Tier]
    jobs: list[Job]
    document: JSON = strawberry.field(description="The whole GET /status document.")


@strawberry.type
class Alert:
    alert_id: str
    rule: str
    key: str
    window_start: str
    window_end: str
    status: str
    raised_at: str
    details: JSON


@strawberry.type(description="Alerts, and whether the detection stage exists to raise any.")
class AlertList:
    alerts: list[Alert]
    available: bool
    note: str


class RowData(NamedTuple):
    """One row, as :class:`RowColumns` yields it: strawberry's ``Row`` reads these attributes.

    Building a strawberry object per row costs ~6 µs (600 rows: 3.5 ms); a
    named tuple costs a tenth of that, and GraphQL sees the same ``Row`` type.
    """

    bucket: str
    value: int
    store_id: int | None = None
    event_type: str | None = None
    product_id: int | None = None


class RowColumns:
    """A result's rows as columns; iterating yields :class:`RowData` (graphql-core's generic path).

    :class:`~serving.graphql_api.executor.FlatListExecutor` completes a list
    of these from the columns directly, without building a row object first.
    ``columns`` maps ``Row``'s attribute names to equal-length lists; a
    dimension the query did not ask for is absent (its field is null).
    """

    __slots__ = ("columns", "length", "shared")

    def __init__(self, columns: dict[str, list[Any]], length: int, shared: bool = False) -> None:
        self.columns = columns
        self.length = length
        self.shared = shared  # a cached result's rows: the same object answers many requests

    @classmethod
    def of(cls, result: QueryResult) -> RowColumns:
        return cls(result_columns(result), len(result.frame), result.coverage.cached)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[RowData]:
        names = list(self.columns)
        for values in zip(*self.columns.values(), strict=True):
            yield RowData(**dict(zip(names, values, strict=True)))


def coverage_of(doc: dict[str, Any]) -> Coverage:
    speed = doc["speed"]
    return Coverage(
        batch_through=doc["batch_through"],
        exact=doc["exact"],
        complete=doc["complete"],
        ranges=[LayerRange(**r) for r in doc["ranges"]],
        approximate=[TimeRange(**r) for r in doc["approximate"]],
        holes=[Hole(**h) for h in doc["holes"]],
        shed_ranges=[
            ShedRange(
                start=r["start"],
                end=r["end"],
                counts=[ShedCount(event_type=k, count=Long(v)) for k, v in r["counts"].items()],
            )
            for r in doc.get("shed_ranges", [])
        ],
        speed=SpeedFreshness(
            offsets=[PartitionOffset(partition=int(k), offset=Long(v)) for k, v in speed["offsets"].items()],
            last_applied=speed["last_applied"],
            max_event_time=speed["max_event_time"],
            shed=[ShedCount(event_type=k, count=Long(v)) for k, v in speed["shed"].items()],
        ),
        cached=doc["cached"],
        document=cast(JSON, doc),
    )


def metric_result_of(result: QueryResult) -> MetricResult:
    """The GraphQL object of an engine result (rows from the same JSON rows as HTTP's)."""
    return MetricResult(
        metric=result.metric,
        granularity=result.granularity,
        rows=cast(list[Row], RowColumns.of(result)),
        coverage=coverage_of(result.coverage.to_dict()),
    )


def status_of(doc: dict[str, Any]) -> Status:
    return Status(
        watermark=doc.get("watermark"),
        batch_lag_s=doc.get("batch_lag_s"),
        tiers=[
            Tier(
                name=n,
                rows=Long(t.get("rows", 0)),
                bytes=Long(t.get("bytes", 0)),
                days=Long(t.get("days", 0)),
            )
            for n, t in (doc.get("tiers") or {}).items()
        ],
        jobs=[
            Job(
                run_id=str(j.get("run_id", "")),
                job=str(j.get("job", "")),
                status=str(j.get("status", "")),
                started_at=j.get("started_at"),
                ended_at=j.get("ended_at"),
                rows=Long(int(j.get("rows") or 0)),
                error=j.get("error"),
            )
            for j in doc.get("jobs") or []
        ],
        document=cast(JSON, doc),
    )


def alert_of(a: AlertRecord) -> Alert:
    return Alert(
        alert_id=a.alert_id,
        rule=a.rule,
        key=a.key,
        window_start=a.window_start,
        window_end=a.window_end,
        status=a.status,
        raised_at=a.raised_at,
        details=cast(JSON, a.details),
    )
