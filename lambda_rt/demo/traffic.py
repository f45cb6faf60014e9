"""The demo's traffic: a backlog of past days, then live events with a flash sale.

:class:`Traffic` runs in a thread and produces to the events topic:

1. **backlog** - ``backlog_events`` generated events with event times spread
   over the past ``backlog_days`` (up to the start of live traffic), as fast as
   the producer goes. They give the batch layer closed windows to recompute
   and whole past days to move between tiers.
2. **live** - ``duration_s`` seconds at ``rate`` events/s with event times of
   "now" (up to 2 s late), except during the flash sale, from
   ``sale_start`` to ``sale_end`` (fractions of the duration), when the
   offered rate is ``rate * burst``. The producer sends what it can: on a
   small machine the achieved burst is lower than offered, and the live view
   shows both.

So that the demo ends in bounded time on a small machine, the live phase holds
back while the speed layer is more than ``max_behind`` messages behind (the
``behind`` callback; the live view says so). Both phases carry
``bad_fraction`` malformed messages (they go to the DLQ).
Pacing is per 50 ms slice (no per-event Python). It does not consume anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from lambda_rt.clients.kafka import make_producer
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_batches

__all__ = ["Traffic", "TrafficPlan"]

_DAY_MS = 86_400_000
_SLICE_S = 0.05
_LIVE_SPAN_MS = 2_000


@dataclass(frozen=True)
class TrafficPlan:
    """What to send (see the module docstring)."""

    rate: float = 50_000.0
    duration_s: float = 120.0
    burst: float = 5.0
    sale_start: float = 0.35
    sale_end: float = 0.75
    backlog_events: int = 100_000
    backlog_days: int = 2
    bad_fraction: float = 0.005
    seed: int = 7
    max_behind: int = 300_000

    def offered_rate(self, elapsed_s: float) -> float:
        """Events/s offered ``elapsed_s`` into the live phase."""
        return self.rate * self.burst if self.in_sale(elapsed_s) else self.rate

    def in_sale(self, elapsed_s: float) -> bool:
        return self.sale_start * self.duration_s <= elapsed_s < self.sale_end * self.duration_s


class Traffic(threading.Thread):
    """Produces the plan in a background thread; counters are read by the live view."""

    def __init__(
        self, settings: Settings, plan: TrafficPlan, behind: Callable[[], int] | None = None
    ) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.settings = settings
        self.plan = plan
        self.behind = behind
        self.holding_back = False
        self.stop_event = threading.Event()
        self.phase = "starting"
        self.backlog_sent = 0
        self.live_sent = 0
        self.live_started_at: float | None = None  # time.time()
        self.live_ended_at: float | None = None
        self.sale_window: tuple[float, float] | None = None  # wall-clock seconds, when it happened
        self.error: BaseException | None = None

    @property
    def sent(self) -> int:
        return self.backlog_sent + self.live_sent

    @property
    def in_sale(self) -> bool:
        if self.live_started_at is None or self.live_ended_at is not None:
            return False
        return self.plan.in_sale(time.time() - self.live_started_at)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        try:
            producer = make_producer(self.settings.kafka)
            topic = self.settings.kafka.topic
            now_ms = int(time.time() * 1000)
            if self.plan.backlog_events > 0:
                self.phase = "backlog"
                gen = EventGenerator(
                    GeneratorConfig(
                        seed=self.plan.seed + 1,
                        end_ms=now_ms,
                        span_ms=self.plan.backlog_days * _DAY_MS,
                        bad_fraction=self.plan.bad_fraction,
                    )
                )
                produce_batches(
                    producer,
                    topic,
                    self._until_stopped(gen.iter_batches(self.plan.backlog_events, 10_000)),
                    on_progress=self._count_backlog,
                )
            if not self.stop_event.is_set():
                self.phase = "live"
                produce_batches(producer, topic, self._live(), on_progress=self._count_live)
            self.phase = "done"
        except BaseException as exc:  # reported by the demo's main thread
            self.error = exc
            self.phase = "failed"
        finally:
            if self.live_started_at is not None and self.live_ended_at is None:
                self.live_ended_at = time.time()

    def _count_backlog(self, n: int) -> None:
        self.backlog_sent += n

    def _count_live(self, n: int) -> None:
        self.live_sent += n

    def _until_stopped(
        self, batches: Iterator[list[tuple[bytes, bytes]]]
    ) -> Iterator[list[tuple[bytes, bytes]]]:
        for batch in batches:
            if self.stop_event.is_set():
                return
            yield batch

    def _live(self) -> Iterator[list[tuple[bytes, bytes]]]:
        """Paced slices of "now" events; the rate follows the plan (flash sale)."""
        plan = self.plan
        gen = EventGenerator(
            GeneratorConfig(seed=plan.seed, span_ms=_LIVE_SPAN_MS, bad_fraction=plan.bad_fraction)
        )
        start = time.time()
        self.live_started_at = start
        due = 0.0  # seconds after start at which the next slice may go
        while not self.stop_event.is_set():
            elapsed = time.time() - start
            if elapsed >= plan.duration_s:
                break
            if plan.in_sale(elapsed) and self.sale_window is None:
                self.sale_window = (
                    start + plan.sale_start * plan.duration_s,
                    start + plan.sale_end * plan.duration_s,
                )
            if due > elapsed:
                time.sleep(min(due - elapsed, _SLICE_S))
                continue
            self.holding_back = self.behind is not None and self.behind() > plan.max_behind
            if self.holding_back:
                time.sleep(_SLICE_S)
                due = elapsed
                continue
            rate = plan.offered_rate(elapsed)
            n = max(1, int(rate * _SLICE_S))
            # Event times are "now": the generator draws them from the 2 s before end_ms.
            gen.end_ms = int(time.time() * 1000)
            yield gen.batch(n)
            # Never run ahead of the schedule, and do not catch up a missed slice in a burst.
            due = max(due, elapsed - _SLICE_S) + n / rate
        self.live_ended_at = time.time()
