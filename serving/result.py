"""A query's answer: the rows as a DataFrame (or Arrow) plus coverage metadata.

:class:`Coverage` says where every part of the answer came from and how good
it is: ``batch_through`` (the watermark), ``exact`` (no approximate distinct
count and no hole), the contiguous ``ranges`` each layer served, the ``holes``
neither layer covers, and the speed layer's freshness (applied offsets, last
write time, newest event time). :class:`QueryResult` converts to the JSON
shape of ARCHITECTURE.md's CLI section and back (the HTTP client rebuilds the
same object the in-process engine returns). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from serving.spec import format_ts, parse_time

__all__ = ["Coverage", "Hole", "LayerRange", "QueryResult", "SpeedFreshness"]


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
        )


@dataclass(frozen=True)
class QueryResult:
    """Rows (``bucket`` UTC, the requested dimensions, ``value``) and their coverage.

    ``frame`` is a pandas DataFrame sorted by bucket then dimensions; zero
    values are omitted (a missing row means 0, as in both views).
    ``frame.attrs["coverage"]`` holds the coverage as a dict too.
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
        buckets = [format_ts(int(x)) for x in (f["bucket"].dt.as_unit("ms").astype("int64") // 1).tolist()]
        cols: list[list[Any]] = [buckets]
        cols += [f[d].tolist() for d in self.by]
        cols.append(f["value"].tolist())
        names = ["bucket", *self.by, "value"]
        return [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON object ``lambda-rt query --format json`` prints."""
        return {
            "metric": self.metric,
            "granularity": self.granularity,
            "rows": self.rows(),
            "coverage": self.coverage.to_dict(),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def to_arrow(self) -> pa.Table:
        """An Arrow table; the coverage JSON is in the schema metadata (``coverage``)."""
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"coverage"] = orjson.dumps(self.coverage.to_dict())
        return table.replace_schema_metadata(meta)

    def copy(self, coverage: Coverage | None = None) -> QueryResult:
        """A copy safe to hand out (the cache keeps the original)."""
        return QueryResult(
            self.metric, self.granularity, self.by, self.frame.copy(), coverage or self.coverage
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any], by: tuple[str, ...]) -> QueryResult:
        """Rebuild from the JSON shape (what the HTTP client receives)."""
        rows = d["rows"]
        data: dict[str, Any] = {
            "bucket": pd.to_datetime([r["bucket"] for r in rows], utc=True).as_unit("ns")
            if rows
            else pd.Series(dtype="datetime64[ns, UTC]")
        }
        for dim in by:
            vals = [r[dim] for r in rows]
            data[dim] = (
                pd.Series(vals, dtype=object) if dim == "event_type" else np.asarray(vals, dtype=np.int64)
            )
        data["value"] = np.asarray([r["value"] for r in rows], dtype=np.int64)
        return cls(d["metric"], d["granularity"], by, pd.DataFrame(data), Coverage.from_dict(d["coverage"]))
