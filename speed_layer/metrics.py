"""Prometheus metrics of one speed-layer process (its own registry).

Counters: messages consumed, events applied to Redis, dead letters by reason,
shed events by type, batches, rows skipped because Redis already held them.
Histogram: batch latency (consume returned -> Redis write returned). Gauges:
lag in messages and seconds as defined by
:class:`speed_layer.lag.LagTracker` (our own offsets, never broker
watermarks), and whether shedding is active. ``serve(port)`` exposes them over
HTTP; nothing is exposed unless a port is configured.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from speed_layer.lag import LagTracker
from speed_layer.microbatch import AppliedBatch

__all__ = ["SpeedMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class SpeedMetrics:
    """The speed layer's metrics, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages_in = Counter("lrt_speed_messages_in", "Messages consumed from Kafka", registry=r)
        self.events_out = Counter("lrt_speed_events_out", "Valid events applied to Redis", registry=r)
        self.dlq = Counter("lrt_speed_dlq", "Messages sent to the DLQ", ["reason"], registry=r)
        self.shed = Counter("lrt_speed_shed", "Events shed from the speed path", ["event_type"], registry=r)
        self.batches = Counter("lrt_speed_batches", "Micro-batches applied", registry=r)
        self.replayed = Counter(
            "lrt_speed_replayed_rows", "Messages skipped because Redis already held them", registry=r
        )
        self.batch_latency = Histogram(
            "lrt_speed_batch_latency_seconds",
            "Batch latency: consume() returned -> Redis write returned",
            buckets=_BUCKETS,
            registry=r,
        )
        self.lag_messages = Gauge(
            "lrt_speed_lag_messages", "Fetched from the broker but not yet applied (own offsets)", registry=r
        )
        self.lag_seconds = Gauge(
            "lrt_speed_lag_seconds", "Now minus produce time of the newest applied message", registry=r
        )
        self.shedding = Gauge("lrt_speed_shedding", "1 while low-priority types are shed", registry=r)

    def record(self, batch: AppliedBatch, lag: LagTracker, shedding: bool = False) -> None:
        """Account one applied batch."""
        checked = batch.checked
        self.messages_in.inc(len(checked.raw) + batch.replayed_rows)
        self.events_out.inc(batch.delta.events)
        for reason, n in checked.dlq_by_reason.items():
            self.dlq.labels(reason=reason).inc(n)
        for event_type, n in checked.shed_by_type.items():
            self.shed.labels(event_type=event_type).inc(n)
        self.batches.inc()
        self.replayed.inc(batch.replayed_rows)
        self.batch_latency.observe(max(0.0, time.monotonic() - checked.raw.consumed_at))
        self.lag_messages.set(lag.messages)
        self.lag_seconds.set(lag.seconds)
        self.shedding.set(1 if shedding or checked.shed_by_type else 0)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
