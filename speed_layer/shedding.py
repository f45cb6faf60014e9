"""When the speed path sheds low-priority event types (the ``shed_events`` node drops them).

Under sustained lag the speed layer may drop configured event types from the
speed path only (ARCHITECTURE.md, guarantees); the batch path still gets
everything. The decision uses the source's own lag measures
(:class:`~speed_layer.lag.LagTracker`), with hysteresis so one slow batch
neither starts nor stops it.
"""

from __future__ import annotations

from speed_layer.lag import LagTracker

__all__ = ["LoadShedder"]


class LoadShedder:
    """Decides when the speed path sheds low-priority event types.

    Shedding starts after the lag (either measure of :class:`LagTracker`) has
    been above its threshold for ``sustain`` consecutive batches and stops
    after it has been below for ``sustain`` consecutive batches. With no
    configured types it never sheds. The batch path is not affected.
    """

    def __init__(
        self,
        lag: LagTracker,
        event_types: tuple[str, ...],
        *,
        lag_messages: int,
        lag_seconds: float,
        sustain: int = 3,
    ) -> None:
        self.lag = lag
        self.event_types = event_types
        self.lag_messages = lag_messages
        self.lag_seconds = lag_seconds
        self.sustain = sustain
        self.active = False
        self._run = 0

    def observe(self) -> bool:
        """Update with the current lag; True while shedding."""
        if not self.event_types:
            return False
        over = self.lag.seconds > self.lag_seconds or self.lag.messages > self.lag_messages
        if over != self.active:
            self._run += 1
            if self._run >= self.sustain:
                self.active, self._run = over, 0
        else:
            self._run = 0
        return self.active
