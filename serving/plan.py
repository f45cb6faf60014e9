"""Split a query at the batch watermark into pieces, each read from one layer.

Pure planning, no I/O. Every target bucket is served by exactly one layer,
except a bucket that *straddles* the boundary: it is tiled into the coarsest
aligned sub-buckets (hours, then minutes) on each side, the part before the
boundary read from the batch view and the rest from the speed view, so the
two parts are disjoint and their sum is the bucket (nothing lost or doubled).

Distinct counts cannot be summed, so a straddling ``unique_customers`` bucket
is read whole from the speed view (HyperLogLog, approximate) instead.

The boundary is the watermark floored to a minute: a batch view holds complete
buckets only, and minute buckets never straddle a minute-aligned boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lambda_rt.vocabulary import GRANULARITIES, GRANULARITY_MS, MINUTE_MS
from serving.spec import QuerySpec

__all__ = ["Piece", "Plan", "boundary_of", "make_plan", "tile"]

Layer = Literal["batch", "speed"]


@dataclass(frozen=True)
class Piece:
    """Read ``[start_ms, end_ms)`` of ``layer`` at ``granularity`` (aligned to it)."""

    layer: Layer
    granularity: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Plan:
    """The pieces of one query, in time order, and the boundary they were cut at."""

    spec: QuerySpec
    boundary_ms: int | None
    pieces: tuple[Piece, ...]

    def layer_ranges(self) -> list[tuple[Layer, int, int]]:
        """Contiguous ``(layer, start, end)`` ranges (what coverage reports)."""
        out: list[tuple[Layer, int, int]] = []
        for p in self.pieces:
            if out and out[-1][0] == p.layer and out[-1][2] == p.start_ms:
                out[-1] = (p.layer, out[-1][1], p.end_ms)
            else:
                out.append((p.layer, p.start_ms, p.end_ms))
        return out


def boundary_of(watermark_ms: int | None) -> int | None:
    """Buckets ending at or before this are served from the batch view."""
    if watermark_ms is None:
        return None
    return watermark_ms // MINUTE_MS * MINUTE_MS


def tile(start_ms: int, end_ms: int, coarsest: str) -> list[tuple[str, int, int]]:
    """Cover ``[start, end)`` (minute-aligned) with the fewest aligned buckets.

    Returns ``(granularity, start, end)`` runs no coarser than ``coarsest``.
    """
    grans = [g for g in reversed(GRANULARITIES) if GRANULARITY_MS[g] <= GRANULARITY_MS[coarsest]]
    out: list[tuple[str, int, int]] = []
    pos = start_ms
    while pos < end_ms:
        for i, g in enumerate(grans):
            w = GRANULARITY_MS[g]
            if pos % w == 0 and pos + w <= end_ms:
                # a run of g-buckets, up to where a coarser bucket could start
                stop = end_ms
                for c in grans[:i]:
                    cw = GRANULARITY_MS[c]
                    stop = min(stop, -(-(pos + 1) // cw) * cw)
                run_end = pos + (stop - pos) // w * w
                if out and out[-1][0] == g and out[-1][2] == pos:
                    out[-1] = (g, out[-1][1], run_end)
                else:
                    out.append((g, pos, run_end))
                pos = run_end
                break
        else:
            raise ValueError(f"{pos} is not minute-aligned")
    return out


def _add(pieces: list[Piece], layer: Layer, gran: str, start: int, end: int) -> None:
    if start >= end:
        return
    last = pieces[-1] if pieces else None
    if last and last.layer == layer and last.granularity == gran and last.end_ms == start:
        pieces[-1] = Piece(layer, gran, last.start_ms, end)
    else:
        pieces.append(Piece(layer, gran, start, end))


def make_plan(spec: QuerySpec, watermark_ms: int | None) -> Plan:
    """Cut ``spec`` at the boundary derived from ``watermark_ms``."""
    boundary = boundary_of(watermark_ms)
    g, w = spec.granularity, spec.width_ms
    s, e = spec.start_ms, spec.end_ms
    pieces: list[Piece] = []
    if boundary is None or boundary <= s:
        _add(pieces, "speed", g, s, e)
        return Plan(spec, boundary, tuple(pieces))
    if boundary >= e:
        _add(pieces, "batch", g, s, e)
        return Plan(spec, boundary, tuple(pieces))
    split_lo = boundary // w * w  # start of the straddling bucket (or the boundary itself)
    _add(pieces, "batch", g, s, split_lo)
    if split_lo == boundary:
        _add(pieces, "speed", g, boundary, e)
        return Plan(spec, boundary, tuple(pieces))
    split_hi = split_lo + w
    if spec.metric == "unique_customers":
        _add(pieces, "speed", g, split_lo, e)
        return Plan(spec, boundary, tuple(pieces))
    for sub, a, b in tile(split_lo, boundary, g):
        _add(pieces, "batch", sub, a, b)
    for sub, a, b in tile(boundary, split_hi, g):
        _add(pieces, "speed", sub, a, b)
    _add(pieces, "speed", g, split_hi, e)
    return Plan(spec, boundary, tuple(pieces))
