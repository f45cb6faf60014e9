"""What the GraphQL and gRPC APIs share: one backend, one argument shape, one store filter.

Both APIs answer from the daemon's :class:`~serving.engine.QueryEngine` through
an :class:`ApiBackend` (the engine's ``query`` and the daemon's ``status``),
so they return exactly the rows and coverage of the HTTP API. They add one
argument the HTTP API lacks, ``store_id``: the query is grouped by
``store_id`` as well and only that store's rows are kept (a single store's
rows need no re-aggregation, so distinct counts stay correct).

:class:`QueryArgs` is hashable: it is also the :class:`~serving.live.LiveHub`
key, so every live subscriber to the same question shares one computation per
tick. :func:`fingerprint` tells whether a live answer changed, so a watcher
is sent rows only when they move.

Alerts: the detection stage does not exist yet, so :data:`NO_ALERTS` answers
with an empty list and :data:`ALERTS_NOTE`; the detection issue plugs a real
:class:`AlertSource` in here.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import orjson

from serving.errors import InvalidQueryError
from serving.result import QueryResult
from serving.spec import QuerySpec, format_ts, make_spec

__all__ = [
    "ALERTS_NOTE",
    "NO_ALERTS",
    "AlertRecord",
    "AlertSource",
    "ApiBackend",
    "EncodedCache",
    "QueryArgs",
    "fingerprint",
    "result_columns",
    "run_query",
]

ALERTS_NOTE = (
    "alert detection is not deployed in this version of lambda-rt: no alerts are raised yet, "
    "so the list is empty (it fills once the detection stage lands)"
)


@dataclass(frozen=True)
class AlertRecord:
    """One alert as the APIs return it (the detection stage's record, flattened)."""

    alert_id: str
    rule: str
    key: str
    window_start: str
    window_end: str
    status: str
    raised_at: str
    details: dict[str, Any] = field(default_factory=dict)


class AlertSource(Protocol):
    """Where the APIs read alerts from."""

    @property
    def available(self) -> bool:
        """False while no detection stage raises alerts."""
        ...

    @property
    def note(self) -> str:
        """One line for the user about what the list holds."""
        ...

    def recent(self, since: str | None, rule: str | None, status: str | None) -> list[AlertRecord]: ...


@dataclass(frozen=True)
class _NoAlerts:
    available: bool = False
    note: str = ALERTS_NOTE

    def recent(self, since: str | None, rule: str | None, status: str | None) -> list[AlertRecord]:
        return []


NO_ALERTS: AlertSource = _NoAlerts()


@dataclass(frozen=True)
class ApiBackend:
    """What the GraphQL and gRPC servers call.

    Attributes:
        query: :meth:`serving.engine.QueryEngine.query` (or the same signature).
        status: the ``GET /status`` document.
        alerts: the alert source (none until the detection stage exists).
        live_interval_s: the live feeds' tick.
    """

    query: Callable[..., QueryResult]
    status: Callable[[], dict[str, Any]]
    alerts: AlertSource = NO_ALERTS
    live_interval_s: float = 1.0


@dataclass(frozen=True)
class QueryArgs:
    """One question, as either API received it (hashable: a live-feed key)."""

    metric: str
    by: tuple[str, ...] = ()
    start: str | None = None
    end: str | None = None
    granularity: str = "hour"
    strict: bool = False
    store_id: int | None = None

    @classmethod
    def build(
        cls,
        metric: str,
        by: Sequence[str] | str | None = None,
        start: str | None = None,
        end: str | None = None,
        granularity: str | None = None,
        strict: bool = False,
        store_id: int | None = None,
    ) -> QueryArgs:
        """Normalise: ``by`` as a tuple (comma lists split), empty strings as unset."""
        items = [by] if isinstance(by, str) else list(by or ())
        dims = tuple(d.strip() for item in items for d in item.split(",") if d.strip())
        return cls(metric, dims, start or None, end or None, granularity or "hour", strict, store_id)

    def engine_by(self) -> tuple[str, ...]:
        """The dimensions asked of the engine (``store_id`` added when filtering by store)."""
        if self.store_id is None or "store_id" in self.by:
            return self.by
        return ("store_id", *self.by)

    def validate(self) -> QuerySpec:
        """Raise :class:`InvalidQueryError` now (before a stream starts) if the query is bad."""
        if self.store_id is not None and self.store_id < 1:
            raise InvalidQueryError(f"storeId must be >= 1, got {self.store_id}")
        return make_spec(self.metric, self.engine_by(), self.start, self.end, self.granularity)


def run_query(query: Callable[..., QueryResult], args: QueryArgs) -> QueryResult:
    """The engine's answer to ``args``, with the store filter applied.

    Raises:
        InvalidQueryError: a bad argument (the engine's one-line message).
        CoverageHoleError: ``strict`` and part of the range is in no layer.
    """
    if args.store_id is not None and args.store_id < 1:
        raise InvalidQueryError(f"storeId must be >= 1, got {args.store_id}")
    result = query(args.metric, args.engine_by(), args.start, args.end, args.granularity, strict=args.strict)
    if args.store_id is None:
        return result
    frame = result.frame
    kept = frame[frame["store_id"] == args.store_id].reset_index(drop=True)
    return QueryResult(result.metric, result.granularity, result.by, kept, result.coverage)


def result_columns(result: QueryResult) -> dict[str, list[Any]]:
    """The rows as columns of Python values: ``bucket`` (ISO-8601 Z), the dimensions, ``value``.

    The values of :meth:`QueryResult.rows` without a dict per row: what the
    GraphQL and protobuf encoders read (each bucket label is formatted once).
    """
    frame = result.frame
    if frame.empty:
        return {"bucket": [], **{d: [] for d in result.by}, "value": []}
    ms = frame["bucket"].dt.as_unit("ms").astype("int64").to_numpy()
    uniq, inv = np.unique(ms, return_inverse=True)
    labels = np.asarray([format_ts(int(x)) for x in uniq], dtype=object)
    columns: dict[str, list[Any]] = {"bucket": labels[inv].tolist()}
    for dim in result.by:
        columns[dim] = frame[dim].tolist()
    columns["value"] = frame["value"].tolist()
    return columns


def fingerprint(result: QueryResult) -> bytes:
    """A digest of what a live viewer sees change: rows, watermark, exactness, holes, shed ranges.

    Not the speed offsets: the speed layer moving without changing these rows
    (events of another metric) is not worth a push.
    """
    cov = result.coverage.to_dict()
    seen = [cov["batch_through"], cov["exact"], cov["holes"], cov["approximate"], cov.get("shed_ranges")]
    body = orjson.dumps([result.rows(), *seen])
    return hashlib.blake2b(body, digest_size=16).digest()


T = TypeVar("T")


class EncodedCache(Generic[T]):
    """An API's encoding of a cached engine result, built once per result object.

    On a cache hit the engine returns the very :class:`QueryResult` it cached
    (see :meth:`serving.engine.QueryEngine.execute`), and it already keeps its
    JSON and Arrow bytes; this keeps the protobuf bytes or GraphQL object next
    to it, keyed by the object's identity. An entry holds the result itself,
    so the identity cannot be reused while the entry lives. Results not from
    the cache (uncached, store-filtered) are encoded every time.
    """

    def __init__(self, entries: int = 64) -> None:
        self._entries = entries
        self._items: OrderedDict[int, tuple[QueryResult, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, result: QueryResult, build: Callable[[QueryResult], T]) -> T:
        if not result.coverage.cached:
            return build(result)
        key = id(result)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] is result:
                self._items.move_to_end(key)
                return hit[1]
        value = build(result)
        with self._lock:
            self._items[key] = (result, value)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)
        return value
