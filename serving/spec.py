"""What a query asks for, validated once: metric, dimensions, range, granularity.

:func:`make_spec` turns user input (strings from the CLI or HTTP, or Python
values) into a frozen :class:`QuerySpec` or raises :class:`InvalidQueryError`
with a one-line message. It knows which dimensions each metric has in *both*
layers (the speed view keeps fewer combinations than the batch view), so a
query that one layer could not answer is refused up front instead of being
half answered. It does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lambda_rt.events.schema import EVENT_TYPES
from lambda_rt.vocabulary import GRANULARITY_MS, METRICS
from serving.errors import InvalidQueryError

__all__ = [
    "DEFAULT_SPAN",
    "METRIC_DIMENSIONS",
    "METRIC_EVENT_TYPE",
    "QuerySpec",
    "counted_event_types",
    "format_ts",
    "make_spec",
    "parse_time",
]

DEFAULT_SPAN = timedelta(hours=24)

METRIC_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "events": ("store_id", "campaign_id", "event_type"),
    "orders": ("store_id", "campaign_id", "event_type"),
    "revenue": ("store_id", "campaign_id", "event_type"),
    "refunds": ("store_id", "event_type"),
    "payment_failures": ("store_id", "event_type"),
    "unique_customers": ("store_id", "campaign_id", "event_type"),
    "inventory_delta": ("store_id", "product_id"),
}
"""Dimensions a metric may be grouped by (in canonical column order)."""

METRIC_EVENT_TYPE: dict[str, str] = {
    "orders": "order_placed",
    "revenue": "order_placed",
    "refunds": "refund",
    "payment_failures": "payment",
    "inventory_delta": "inventory_update",
}
"""The one event type a single-type metric counts (its only ``event_type`` group)."""


def counted_event_types(metric: str) -> frozenset[str]:
    """The event types whose events ``metric`` counts: its one type, else every type.

    ``events`` and ``unique_customers`` count every valid event; the others one
    type each (:data:`METRIC_EVENT_TYPE`). A speed bucket that shed events of one
    of these types is short for ``metric``.
    """
    fixed = METRIC_EVENT_TYPE.get(metric)
    return frozenset((fixed,)) if fixed else frozenset(EVENT_TYPES)


def parse_time(value: str | datetime, name: str) -> datetime:
    """An aware UTC datetime from ISO-8601 (``Z`` or an offset; naive means UTC)."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidQueryError(
                f"cannot parse {name} {value!r}: use ISO-8601 such as 2026-11-26T10:00:00Z"
            ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(ms: int) -> str:
    """Epoch ms -> ``2026-11-26T10:00:00Z`` (seconds precision, as the CLI prints it)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class QuerySpec:
    """A validated query; ``start_ms``/``end_ms`` are aligned to the granularity.

    The result has one bucket per ``granularity`` step in ``[start_ms, end_ms)``:
    the start is floored to its bucket and the end rounded up, so every bucket
    returned is whole (the last one may still be filling).
    """

    metric: str
    by: tuple[str, ...]
    granularity: str
    start_ms: int
    end_ms: int

    @property
    def width_ms(self) -> int:
        return GRANULARITY_MS[self.granularity]

    def key(self) -> tuple[object, ...]:
        """Hashable identity of the question (the cache key's first part)."""
        return (self.metric, self.by, self.granularity, self.start_ms, self.end_ms)


def _parse_by(by: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if by is None:
        return []
    items = by.split(",") if isinstance(by, str) else list(by)
    return [i.strip() for i in items if i and i.strip()]


def make_spec(
    metric: str,
    by: str | tuple[str, ...] | list[str] | None = None,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    granularity: str = "hour",
    *,
    now: datetime | None = None,
) -> QuerySpec:
    """Validate and normalise a query (defaults: the last 24 h ending now, hourly).

    Raises:
        InvalidQueryError: unknown metric, dimension or granularity, a dimension
            combination the speed view does not keep, an unparsable time, or
            ``end`` not after ``start``.
    """
    if metric not in METRICS:
        raise InvalidQueryError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if granularity not in GRANULARITY_MS:
        raise InvalidQueryError(f"unknown granularity {granularity!r}: use minute, hour or day")
    allowed = METRIC_DIMENSIONS[metric]
    dims = _parse_by(by)
    for d in dims:
        if d not in allowed:
            raise InvalidQueryError(f"unknown dimension {d!r} for {metric}: use {' and/or '.join(allowed)}")
    if len(set(dims)) != len(dims):
        raise InvalidQueryError(f"dimension listed twice in --by {','.join(dims)}")
    ordered = tuple(d for d in allowed if d in dims)
    if "campaign_id" in ordered and "store_id" in ordered:
        raise InvalidQueryError(
            "campaign_id combines with event_type only (the campaign funnel): drop store_id"
        )
    if metric == "unique_customers":
        if len(ordered) > 1:
            raise InvalidQueryError(
                f"unique_customers by {','.join(ordered)} is not kept by the speed layer: "
                "group by one of them"
            )
        if ordered in (("store_id",), ("campaign_id",)) and granularity == "minute":
            raise InvalidQueryError(
                f"unique_customers by {ordered[0]} needs --granularity hour or day "
                f"(the speed layer keeps per-{ordered[0].removesuffix('_id')} distinct counts per hour)"
            )
    now_dt = now or datetime.now(UTC)
    end_dt = parse_time(end, "--end") if end is not None else now_dt
    start_dt = parse_time(start, "--start") if start is not None else end_dt - DEFAULT_SPAN
    if end_dt <= start_dt:
        raise InvalidQueryError(
            f"--end {format_ts(_ms(end_dt))} is not after --start {format_ts(_ms(start_dt))}"
        )
    width = GRANULARITY_MS[granularity]
    s = _ms(start_dt) // width * width
    e = -(-_ms(end_dt) // width) * width
    return QuerySpec(metric=metric, by=ordered, granularity=granularity, start_ms=s, end_ms=e)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)
