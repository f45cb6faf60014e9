"""The dashboard's range from its URL: ``?start=ISO&end=ISO&store_id=N``.

A range is aligned to whole minutes (the finest bucket either layer keeps):
the start is floored and the end rounded up, exactly as ``lambda-rt query
--granularity minute`` does, so the headline numbers equal the sum of that
query's rows. Without ``start``/``end`` the range *rolls*: the last hour up to
the current minute, re-resolved on every tick, so a page left open keeps
showing the last hour. The chart granularity follows the length (minutes up
to 6 h, hours up to 14 days, days beyond). No I/O here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from serving.errors import InvalidQueryError
from serving.spec import GRANULARITY_MS, format_ts, parse_time

__all__ = ["DEFAULT_SPAN_MS", "MAX_SPAN_MS", "RangeKey", "ViewRange", "parse_range", "resolve"]

MINUTE_MS = GRANULARITY_MS["minute"]
DEFAULT_SPAN_MS = 3_600_000
MAX_SPAN_MS = 92 * 86_400_000  # a quarter: beyond that a day chart is unreadable anyway


@dataclass(frozen=True)
class RangeKey:
    """What a viewer asked for: the LiveHub key (viewers of one key share each tick).

    ``start_ms``/``end_ms`` are None for the rolling default (last hour).
    """

    start_ms: int | None
    end_ms: int | None
    store_id: int | None

    @property
    def rolling(self) -> bool:
        return self.start_ms is None


@dataclass(frozen=True)
class ViewRange:
    """A resolved, minute-aligned range and the granularity its charts use."""

    start_ms: int
    end_ms: int
    store_id: int | None
    rolling: bool
    granularity: str

    @property
    def width_ms(self) -> int:
        return GRANULARITY_MS[self.granularity]

    def to_dict(self) -> dict[str, object]:
        return {
            "start": format_ts(self.start_ms),
            "end": format_ts(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "store_id": self.store_id,
            "rolling": self.rolling,
            "granularity": self.granularity,
        }


def _floor(ms: int) -> int:
    return ms // MINUTE_MS * MINUTE_MS


def _ceil(ms: int) -> int:
    return -(-ms // MINUTE_MS) * MINUTE_MS


def parse_range(start: str | None, end: str | None, store_id: str | None) -> RangeKey:
    """Validate the URL's parameters (empty strings count as absent).

    Raises:
        InvalidQueryError: an unparsable time or store, ``end`` not after
            ``start``, or a range longer than :data:`MAX_SPAN_MS`.
    """
    store: int | None = None
    if store_id not in (None, ""):
        try:
            store = int(str(store_id))
        except ValueError as exc:
            raise InvalidQueryError(f"store_id {store_id!r} is not an integer") from exc
        if store < 1:
            raise InvalidQueryError("store_id must be 1 or more")
    if not start and not end:
        return RangeKey(None, None, store)
    end_ms = _ceil(int(parse_time(end, "end").timestamp() * 1000)) if end else _ceil(int(time.time() * 1000))
    start_ms = (
        _floor(int(parse_time(start, "start").timestamp() * 1000)) if start else end_ms - DEFAULT_SPAN_MS
    )
    if end_ms <= start_ms:
        raise InvalidQueryError(f"end {format_ts(end_ms)} is not after start {format_ts(start_ms)}")
    if end_ms - start_ms > MAX_SPAN_MS:
        raise InvalidQueryError("the range is longer than 92 days: choose a shorter one")
    return RangeKey(start_ms, end_ms, store)


def resolve(key: RangeKey, now_ms: int | None = None) -> ViewRange:
    """The concrete range of ``key`` now (the rolling default moves with the clock)."""
    if key.start_ms is None or key.end_ms is None:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        end = _floor(now) + MINUTE_MS  # the current minute is included, still filling
        start, rolling = end - DEFAULT_SPAN_MS, True
    else:
        start, end, rolling = key.start_ms, key.end_ms, False
    span = end - start
    granularity = "minute" if span <= 6 * 3_600_000 else "hour" if span <= 14 * 86_400_000 else "day"
    return ViewRange(start, end, key.store_id, rolling, granularity)
