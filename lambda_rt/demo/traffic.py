"""The demo's traffic: a backlog of past days, a capacity probe, then live events with a flash sale.

:class:`Traffic` runs in a thread and produces to the events topic:

1. **backlog** - ``backlog_events`` generated events with event times spread
   over the past ``backlog_days`` (up to the start of live traffic), as fast as
   the producer goes. They give the batch layer closed windows to recompute
   and whole past days to move between tiers.
2. **probe** - ``probe_events`` live-like events ("now"), as fast as the
   producer goes: the demo measures on them what the producer and the speed
   layer sustain on this machine (:mod:`lambda_rt.demo.capacity`). Backlog
   events cost the speed layer more (they spread over thousands of minute
   buckets), so they would understate its live capacity.
3. **waiting** - until the demo calls :meth:`Traffic.go_live` with the base
   rate it chose (the requested rate, or less if the machine cannot sustain
   it; the demo prints why).
4. **live** - ``duration_s`` seconds at the base rate with event times of
   "now" (up to 2 s late), except during the flash sale (``sale_s`` seconds
   from ``sale_start`` of the duration, at most a quarter of it), when the
   offered rate is ``burst`` times the base. The producer sends what it can;
   the live view shows the offered and the achieved rate side by side.

A safety valve keeps the end of the demo bounded: the live phase holds back
while the speed layer is more than ``max_behind`` messages behind (the
``behind`` callback; the demo sets the limit to about a minute of the measured
capacity, and the live view says when it holds back). Every phase carries
``bad_fraction`` malformed messages (they go to the DLQ).
Pacing is per 50 ms slice (no per-event Python). It does not consume anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from lambda_rt.clients.kafka import KafkaProducer
from lambda_rt.config import Settings
from lambda_rt.events.generator import EventGenerator, GeneratorConfig
from lambda_rt.producing import produce_batches
from lambda_rt.vocabulary import DAY_MS

__all__ = ["PRODUCER_OVERRIDES", "Traffic", "TrafficPlan"]

_SLICE_S = 0.05
_LIVE_SPAN_MS = 2_000

# Big producer batches. The embedded broker (tansu, durable S3 mode) stores one
# S3 object per partition per produce batch and serves a consumer a roughly fixed
# number of objects per second (~30-35/s on a loaded 2-core machine, whatever
# their size), so consumers keep up only when batches are large: with the default
# 20 ms linger a 50K events/s stream makes ~200 small objects/s, far more than the
# broker serves, and the speed layer falls behind; with 500 ms it keeps pace
# through a burst. The cost is up to half a second of extra latency.
PRODUCER_OVERRIDES: dict[str, Any] = {
    "linger.ms": 500,
    "batch.num.messages": 200_000,
    "batch.size": 16_000_000,
    "message.max.bytes": 16_000_000,
}


@dataclass(frozen=True)
class TrafficPlan:
    """What to send (see the module docstring)."""

    rate: float = 50_000.0
    duration_s: float = 120.0
    burst: float = 5.0
    sale_start: float = 0.25
    sale_s: float = 20.0
    backlog_events: int = 100_000
    probe_events: int = 300_000
    backlog_days: int = 2
    bad_fraction: float = 0.005
    seed: int = 7
    max_behind: int | None = None  # None: no safety valve

    @property
    def sale_window(self) -> tuple[float, float]:
        """Seconds into the live phase when the sale starts and ends (at most a quarter of it)."""
        start = self.sale_start * self.duration_s
        return start, start + min(self.sale_s, 0.25 * self.duration_s)

    def in_sale(self, elapsed_s: float) -> bool:
        lo, hi = self.sale_window
        return lo <= elapsed_s < hi


class Traffic(threading.Thread):
    """Produces the plan in a background thread; counters are read by the live view."""

    def __init__(
        self, settings: Settings, plan: TrafficPlan, behind: Callable[[], int] | None = None
    ) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.settings = settings
        self.plan = plan
        self.rate = plan.rate  # the base rate in force (go_live may lower it)
        self.behind = behind
        self.holding_back = False
        self.stop_event = threading.Event()
        self._go = threading.Event()
        self.phase = "starting"
        self.backlog_sent = 0
        self.probe_sent = 0
        self.probe_seconds: float | None = None  # producing and acknowledging the probe
        self.probe_window: tuple[float, float] | None = None  # wall-clock seconds
        self.live_sent = 0
        self.live_started_at: float | None = None  # time.time()
        self.live_ended_at: float | None = None
        self.sale_window: tuple[float, float] | None = None  # wall-clock seconds, when it happened
        self.error: BaseException | None = None

    @property
    def sent(self) -> int:
        return self.backlog_sent + self.probe_sent + self.live_sent

    @property
    def in_sale(self) -> bool:
        if self.live_started_at is None or self.live_ended_at is not None:
            return False
        return self.plan.in_sale(time.time() - self.live_started_at)

    @property
    def offered_rate(self) -> float:
        """Events/s the plan offers right now (0 outside the live phase)."""
        if self.phase != "live":
            return 0.0
        return self.rate * self.plan.burst if self.in_sale else self.rate

    def go_live(self, rate: float, max_behind: int | None = None) -> None:
        """Start the live phase at base ``rate`` (called once the backlog is measured)."""
        self.rate = rate
        if max_behind is not None:
            self.plan = replace(self.plan, max_behind=max_behind)
        self._go.set()

    def stop(self) -> None:
        self.stop_event.set()
        self._go.set()

    def run(self) -> None:
        producer = KafkaProducer(self.settings.kafka, **PRODUCER_OVERRIDES)
        try:
            topic = self.settings.kafka.topic
            now_ms = int(time.time() * 1000)
            if self.plan.backlog_events > 0:
                self.phase = "backlog"
                gen = EventGenerator(
                    GeneratorConfig(
                        seed=self.plan.seed + 1,
                        end_ms=now_ms,
                        span_ms=self.plan.backlog_days * DAY_MS,
                        bad_fraction=self.plan.bad_fraction,
                    )
                )
                produce_batches(
                    producer,
                    topic,
                    self._until_stopped(gen.iter_batches(self.plan.backlog_events, 10_000)),
                    on_progress=self._count_backlog,
                )
            if self.plan.probe_events > 0 and not self.stop_event.is_set():
                self.phase = "probe"
                gen = EventGenerator(
                    GeneratorConfig(
                        seed=self.plan.seed + 2, span_ms=_LIVE_SPAN_MS, bad_fraction=self.plan.bad_fraction
                    )
                )
                started = time.time()
                report = produce_batches(
                    producer,
                    topic,
                    self._until_stopped(self._now_batches(gen, self.plan.probe_events)),
                    on_progress=self._count_probe,
                )
                self.probe_seconds = report.seconds
                self.probe_window = (started, time.time())
            self.phase = "waiting"
            self._go.wait()
            if not self.stop_event.is_set():
                self.phase = "live"
                produce_batches(producer, topic, self._live(), on_progress=self._count_live)
            self.phase = "done"
        except BaseException as exc:  # reported by the demo's main thread
            self.error = exc
            self.phase = "failed"
        finally:
            producer.close()
            if self.live_started_at is not None and self.live_ended_at is None:
                self.live_ended_at = time.time()

    def _count_backlog(self, n: int) -> None:
        self.backlog_sent += n

    def _count_probe(self, n: int) -> None:
        self.probe_sent += n

    @staticmethod
    def _now_batches(gen: EventGenerator, total: int) -> Iterator[list[tuple[bytes, bytes]]]:
        """``total`` events with event times of "now", in batches of 10,000."""
        left = total
        while left > 0:
            gen.end_ms = int(time.time() * 1000)
            n = min(10_000, left)
            left -= n
            yield gen.batch(n)

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
        lo, hi = plan.sale_window
        due = 0.0  # seconds after start at which the next slice may go
        while not self.stop_event.is_set():
            elapsed = time.time() - start
            if elapsed >= plan.duration_s:
                break
            if plan.in_sale(elapsed) and self.sale_window is None:
                self.sale_window = (start + lo, start + hi)
            if due > elapsed:
                time.sleep(min(due - elapsed, _SLICE_S))
                continue
            limit = plan.max_behind
            self.holding_back = limit is not None and self.behind is not None and self.behind() > limit
            if self.holding_back:
                time.sleep(_SLICE_S)
                due = elapsed
                continue
            rate = self.rate * plan.burst if plan.in_sale(elapsed) else self.rate
            n = max(1, int(rate * _SLICE_S))
            # Event times are "now": the generator draws them from the 2 s before end_ms.
            gen.end_ms = int(time.time() * 1000)
            yield gen.batch(n)
            # Never run ahead of the schedule, and do not catch up a missed slice in a burst.
            due = max(due, elapsed - _SLICE_S) + n / rate
        self.live_ended_at = time.time()
