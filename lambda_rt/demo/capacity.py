"""Choose the demo's live base rate from what this machine measured on a capacity probe.

The capacity probe (live-like events) is produced as fast as the producer goes
while the speed layer consumes it, so two capacities fall out of it: the
producer's (events sent and acknowledged per second) and the speed layer's
(messages consumed per second while it had the probe to work through).
:func:`choose_rate` then picks the live base rate so that the flash sale
really overloads the speed layer and the lag drains again before the end:

- the base rate uses at most ``1 / headroom`` of the speed layer's capacity,
  so after the sale the spare capacity drains the lag (with ``headroom`` 3 and
  a 5x sale the layer is overloaded by 5/3 during the sale and the lag drains
  in about as long as the sale lasted; the demo uses 4, because the probe
  measures the speed layer while the producer and the ingest are quiet);
- the sale's rate, ``burst`` times the base, must be within ``producer_share``
  of the producer's capacity: the burst must really be offered, and the
  producer must leave CPU to the layers on a small machine.

Nothing here talks to a service; the demo feeds it the live view's counters.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BacklogMeter", "RateChoice", "choose_rate"]

# Below this many seconds of speed-layer work the measurement is mostly noise.
MIN_MEASURE_S = 1.5


@dataclass(frozen=True)
class RateChoice:
    """The live base rate in force and why."""

    rate: float
    requested: float
    speed_capacity: float | None
    producer_capacity: float | None
    reason: str

    @property
    def scaled(self) -> bool:
        return self.rate < self.requested


def choose_rate(
    requested: float,
    burst: float,
    speed_capacity: float | None,
    producer_capacity: float | None,
    *,
    headroom: float = 3.0,
    producer_share: float = 1.0,
) -> RateChoice:
    """The base rate: ``requested``, or less if the measured capacities cannot carry it."""
    limits: list[tuple[float, str]] = []
    if speed_capacity:
        limits.append(
            (
                speed_capacity / headroom,
                f"1/{headroom:g} of the speed layer's measured {speed_capacity:,.0f} events/s, "
                "so the lag after the flash sale drains before the end",
            )
        )
    if producer_capacity:
        share = "" if producer_share == 1 else f"{producer_share:g} of "
        limits.append(
            (
                producer_capacity * producer_share / burst,
                f"{share}the producer's measured {producer_capacity:,.0f} events/s divided by the "
                f"{burst:g}x flash sale, so the sale's rate can really be offered",
            )
        )
    rate, why = requested, "the machine measured enough capacity for it"
    for limit, reason in limits:
        if limit < rate:
            rate, why = limit, reason
    if not limits:
        why = "not measured (no capacity probe), so the requested rate is used as is"
    # A round figure reads better in the live view.
    if rate < requested:
        rate = max(1_000.0, float(int(rate // 1_000 * 1_000)))
    return RateChoice(rate, requested, speed_capacity, producer_capacity, why)


class BacklogMeter:
    """The speed layer's consumption rate while it works through the probe.

    Feed it ``(monotonic time, messages consumed)`` readings; the clock starts at
    the first reading with progress (so joining the consumer group is not
    counted) and stops when ``target`` messages are consumed.
    """

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def add(self, at: float, messages: int) -> None:
        if messages <= 0:
            return
        if self.first is None:
            self.first = (at, messages)
        self.last = (at, messages)

    def rate(self) -> float | None:
        """Messages/s between the first and last reading, or None if too short to tell."""
        if self.first is None or self.last is None:
            return None
        dt = self.last[0] - self.first[0]
        if dt < MIN_MEASURE_S:
            return None
        return (self.last[1] - self.first[1]) / dt

    def too_fast_to_time(self, target: int) -> bool:
        """All ``target`` messages were consumed before a rate could be told (a fast speed layer)."""
        return self.rate() is None and self.last is not None and self.last[1] >= target
