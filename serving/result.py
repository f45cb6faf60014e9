"""A query's answer: the rows as a DataFrame (or Arrow) plus coverage metadata.

:class:`Coverage` says where every part of the answer came from and how good
it is: ``batch_through`` (the watermark), ``exact`` (no approximate distinct
count, no hole and no shed events), the contiguous ``ranges`` each layer
served, the ``holes`` neither layer covers, the ``shed_ranges`` the speed view
served without the events it shed under load (with their counts by type),
and the speed layer's freshness (applied offsets, last write time, newest
event time, shed totals). :class:`QueryResult` converts to the JSON
shape of ARCHITECTURE.md's CLI section and back (the HTTP client rebuilds the
same object the in-process engine returns). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from serving.spec import format_ts, parse_time

__all__ = ["Coverage", "Hole", "LayerRange", "QueryResult", "ShedRange", "SpeedFreshness"]


_STRING_DIMS = frozenset({"event_type", "campaign_id"})


def _iso(ms: int | None) -> str | None:
    return format_ts(ms) if ms is not None else None


def _ms(text: str | None) -> int | None:
    return int(parse_time(text, "time").timestamp() * 1000) if text else None


@dataclass(frozen=True)
class LayerRange:
    """``[start_ms, end_ms)`` served by ``layer`` (``batch`` or ``speed``)."""

    layer: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Hole:
    """``[start_ms, end_ms)`` covered by neither layer, and why."""

    start_ms: int
    end_ms: int
    reason: str


@dataclass(frozen=True)
class ShedRange:
    """``[start_ms, end_ms)`` served by the speed view without the events it shed.

    ``counts`` is ``(event_type, events)`` of the shed types the metric counts,
    sorted by type. The range is exact again once the batch view covers it.
    """

    start_ms: int
    end_ms: int
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SpeedFreshness:
    """How far the speed layer has got (its offsets are the cache key of speed ranges)."""

    offsets: dict[int, int] = field(default_factory=dict)
    last_applied_ms: int | None = None
    max_event_ts_ms: int | None = None
    shed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Coverage:
    """Where the answer came from and how exact it is."""

    batch_through_ms: int | None
    exact: bool
    ranges: tuple[LayerRange, ...]
    holes: tuple[Hole, ...]
    speed: SpeedFreshness
    approximate_ranges: tuple[LayerRange, ...] = ()
    cached: bool = False
    shed_ranges: tuple[ShedRange, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every bucket was covered by one of the layers."""
        return not self.holes

    def with_speed(self, speed: SpeedFreshness, cached: bool) -> Coverage:
        return replace(self, speed=speed, cached=cached)

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``coverage`` object."""
        return {
            "batch_through": _iso(self.batch_through_ms),
            "exact": self.exact,
            "complete": self.complete,
            "ranges": [
                {"layer": r.layer, "start": _iso(r.start_ms), "end": _iso(r.end_ms)} for r in self.ranges
            ],
            "approximate": [
                {"start": _iso(r.start_ms), "end": _iso(r.end_ms)} for r in self.approximate_ranges
            ],
            "holes": [
                {"start": _iso(h.start_ms), "end": _iso(h.end_ms), "reason": h.reason} for h in self.holes
            ],
            "shed_ranges": [
                {"start": _iso(r.start_ms), "end": _iso(r.end_ms), "counts": dict(r.counts)}
                for r in self.shed_ranges
            ],
            "speed": {
                "offsets": {str(k): v for k, v in sorted(self.speed.offsets.items())},
                "last_applied": _iso(self.speed.last_applied_ms),
                "max_event_time": _iso(self.speed.max_event_ts_ms),
                "shed": dict(self.speed.shed),
            },
            "cached": self.cached,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Coverage:
        sp = d.get("speed") or {}
        return cls(
            batch_through_ms=_ms(d.get("batch_through")),
            exact=bool(d["exact"]),
            ranges=tuple(
                LayerRange(r["layer"], _ms(r["start"]) or 0, _ms(r["end"]) or 0) for r in d["ranges"]
            ),
            holes=tuple(Hole(_ms(h["start"]) or 0, _ms(h["end"]) or 0, h["reason"]) for h in d["holes"]),
            speed=SpeedFreshness(
                offsets={int(k): int(v) for k, v in (sp.get("offsets") or {}).items()},
                last_applied_ms=_ms(sp.get("last_applied")),
                max_event_ts_ms=_ms(sp.get("max_event_time")),
                shed=dict(sp.get("shed") or {}),
            ),
            approximate_ranges=tuple(
                LayerRange("speed", _ms(r["start"]) or 0, _ms(r["end"]) or 0)
                for r in d.get("approximate", [])
            ),
            cached=bool(d.get("cached", False)),
            shed_ranges=tuple(
                ShedRange(
                    _ms(r["start"]) or 0,
                    _ms(r["end"]) or 0,
                    tuple(sorted((str(t), int(n)) for t, n in r["counts"].items())),
                )
                for r in d.get("shed_ranges", [])
            ),
        )


@dataclass(frozen=True)
class QueryResult:
    """Rows (``bucket`` UTC, the requested dimensions, ``value``) and their coverage.

    ``frame`` is a pandas DataFrame sorted by bucket then dimensions; zero
    values are omitted (a missing row means 0, as in both views).
    ``frame.attrs["coverage"]`` holds the coverage as a dict too.

    A result served from the cache is the cached object itself (a hit costs
    a dict lookup, not a copy): treat ``frame`` as read-only, or take
    :meth:`copy` first. Its JSON (:meth:`to_json`) is built once and kept.
    """

    metric: str
    granularity: str
    by: tuple[str, ...]
    frame: pd.DataFrame
    coverage: Coverage

    def __post_init__(self) -> None:
        self.frame.attrs["coverage"] = self.coverage.to_dict()

    @property
    def df(self) -> pd.DataFrame:
        """Alias of ``frame``."""
        return self.frame

    def rows(self) -> list[dict[str, Any]]:
        """The JSON ``rows``: ``bucket`` as ISO-8601 Z, dims, ``value``."""
        f = self.frame
        if f.empty:
            return []
        # a few distinct buckets, thousands of rows: format each bucket once
        ms = f["bucket"].dt.as_unit("ms").astype("int64").to_numpy()
        uniq, inv = np.unique(ms, return_inverse=True)
        labels = np.asarray([format_ts(int(x)) for x in uniq], dtype=object)
        buckets = labels[inv].tolist()
        values = f["value"].tolist()
        dims = [(d, f[d].tolist()) for d in self.by]
        # dict displays, not dict(zip(names, row)): 3-4x faster on thousands of rows
        if not dims:
            return [{"bucket": b, "value": v} for b, v in zip(buckets, values, strict=True)]
        if len(dims) == 1:
            ((k1, c1),) = dims
            return [{"bucket": b, k1: x, "value": v} for b, x, v in zip(buckets, c1, values, strict=True)]
        (k1, c1), (k2, c2) = dims
        return [
            {"bucket": b, k1: x, k2: y, "value": v}
            for b, x, y, v in zip(buckets, c1, c2, values, strict=True)
        ]

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON object ``lambda-rt query --format json`` prints."""
        return {
            "metric": self.metric,
            "granularity": self.granularity,
            "rows": self.rows(),
            "coverage": self.coverage.to_dict(),
        }

    def to_json(self) -> bytes:
        """:meth:`to_dict` as JSON bytes, built once per result (cached results reuse it)."""
        return self._json

    @cached_property
    def _json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def to_arrow_ipc(self) -> bytes:
        """:meth:`to_arrow` as an Arrow IPC stream, built once per result (the HTTP client's format)."""
        return self._arrow_ipc

    @cached_property
    def _arrow_ipc(self) -> bytes:
        table = self.to_arrow()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue().to_pybytes())

    @classmethod
    def from_arrow_ipc(cls, data: bytes, metric: str, granularity: str, by: tuple[str, ...]) -> QueryResult:
        """Rebuild from :meth:`to_arrow_ipc` bytes (same frame dtypes as the engine's)."""
        table = pa.ipc.open_stream(data).read_all()
        coverage = Coverage.from_dict(orjson.loads((table.schema.metadata or {})[b"coverage"]))
        ns = table.column("bucket").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
        cols: dict[str, Any] = {"bucket": pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))}
        for dim in by:
            col = table.column(dim).to_numpy()
            cols[dim] = col.astype(object) if dim in _STRING_DIMS else col.astype(np.int64, copy=False)
        cols["value"] = table.column("value").to_numpy().astype(np.int64, copy=False)
        return cls(metric, granularity, by, pd.DataFrame(cols), coverage)

    def to_arrow(self) -> pa.Table:
        """An Arrow table; the coverage JSON is in the schema metadata (``coverage``)."""
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"coverage"] = orjson.dumps(self.coverage.to_dict())
        return table.replace_schema_metadata(meta)

    def copy(self, coverage: Coverage | None = None) -> QueryResult:
        """A private copy (deep copy of the frame) to modify freely."""
        return QueryResult(
            self.metric, self.granularity, self.by, self.frame.copy(), coverage or self.coverage
        )

    def with_coverage(self, coverage: Coverage) -> QueryResult:
        """The same rows with another coverage (a shallow frame copy: its ``attrs`` differ)."""
        return QueryResult(self.metric, self.granularity, self.by, self.frame.copy(deep=False), coverage)

    @classmethod
    def from_dict(cls, d: dict[str, Any], by: tuple[str, ...]) -> QueryResult:
        """Rebuild from the JSON shape (what the HTTP client receives)."""
        rows = d["rows"]
        labels = [r["bucket"] for r in rows]
        # a few distinct bucket labels: parse each once
        uniq = {t: _ms(t) or 0 for t in dict.fromkeys(labels)}
        ms = np.fromiter((uniq[t] for t in labels), dtype=np.int64, count=len(labels))
        data: dict[str, Any] = {
            "bucket": pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True)).as_unit("ns")
        }
        for dim in by:
            vals = [r[dim] for r in rows]
            data[dim] = (
                np.asarray(vals, dtype=object) if dim in _STRING_DIMS else np.asarray(vals, dtype=np.int64)
            )
        data["value"] = np.asarray([r["value"] for r in rows], dtype=np.int64)
        return cls(d["metric"], d["granularity"], by, pd.DataFrame(data), Coverage.from_dict(d["coverage"]))
