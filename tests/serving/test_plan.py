"""``tile`` (whole runs at a time) equals its definition, one coarsest bucket at a time."""

from __future__ import annotations

import random

from lambda_rt.vocabulary import GRANULARITY_MS
from serving.plan import tile


def _tile_by_definition(start_ms: int, end_ms: int, coarsest: str) -> list[tuple[str, int, int]]:
    grans = [g for g in ("day", "hour", "minute") if GRANULARITY_MS[g] <= GRANULARITY_MS[coarsest]]
    out: list[tuple[str, int, int]] = []
    pos = start_ms
    while pos < end_ms:
        g = next(g for g in grans if pos % GRANULARITY_MS[g] == 0 and pos + GRANULARITY_MS[g] <= end_ms)
        w = GRANULARITY_MS[g]
        if out and out[-1][0] == g and out[-1][2] == pos:
            out[-1] = (g, out[-1][1], pos + w)
        else:
            out.append((g, pos, pos + w))
        pos += w
    return out


def test_tile_equals_its_definition() -> None:
    rnd = random.Random(3)
    for _ in range(500):
        a = rnd.randrange(0, 5 * 1440) * 60_000
        b = a + rnd.randrange(1, 3 * 1440) * 60_000
        for g in ("minute", "hour", "day"):
            assert tile(a, b, g) == _tile_by_definition(a, b, g), (a, b, g)
