"""Build and run the speed layer: the streamz graph, signals, clean shutdown.

:func:`run_speed` owns the clients (Kafka consumer, DLQ producer, Redis) for
the life of the run. It runs the whole pipeline on one asyncio loop in the
calling thread, one micro-batch at a time, except that the Redis write of a
batch runs in a worker thread while the next batch is consumed, validated and
aggregated (``settings.speed.overlap_writes``; at most one write in flight,
Kafka commits only after it). SIGTERM/SIGINT set a flag; the loop finishes
the batch in hand (Redis write, Kafka commit), leaves the consumer group and
returns. It does not start any server of the stack.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from lambda_rt.clients.kafka import KafkaProducer, ensure_topics
from lambda_rt.clients.redis import make_redis
from lambda_rt.config import Settings
from lambda_rt.dlq import DeadLetterWriter
from lambda_rt.events.validate import TimeWindow
from lambda_rt.signals import signal_handlers
from speed_layer.epoch import EpochStore
from speed_layer.graph import build_speed_graph
from speed_layer.keys import SpeedKeys
from speed_layer.metrics import SpeedMetrics
from speed_layer.microbatch import AppliedBatch
from speed_layer.redis_apply import BatchApplier
from speed_layer.shedding import LoadShedder
from speed_layer.source import from_speed_kafka

__all__ = ["RunReport", "SpeedPipeline", "run_speed"]


@dataclass
class RunReport:
    """What one run did (also in Prometheus when a port is set)."""

    messages: int = 0
    events: int = 0
    dead_letters: int = 0
    shed: int = 0
    batches: int = 0
    replayed: int = 0
    seconds: float = 0.0
    dlq_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, b: AppliedBatch) -> None:
        self.messages += len(b.checked.raw)
        self.events += b.delta.events
        self.dead_letters += len(b.checked.rejects)
        self.shed += sum(b.checked.shed_by_type.values())
        self.batches += 1
        self.replayed += b.replayed_rows
        for r, n in b.checked.dlq_by_reason.items():
            self.dlq_by_reason[r] = self.dlq_by_reason.get(r, 0) + n


class SpeedPipeline:
    """The streamz graph of one speed-layer process, wired to its clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        until_idle_s: float | None = None,
        metrics: SpeedMetrics | None = None,
        on_applied: Callable[[AppliedBatch], None] | None = None,
    ) -> None:
        speed = settings.speed
        self.settings = settings
        self.keys = SpeedKeys(settings.redis.key_prefix)
        self.redis = make_redis(settings.redis)
        self.producer = KafkaProducer(settings.kafka, **{"linger.ms": 2})
        self.report = RunReport()
        self.metrics = metrics
        applier = BatchApplier(self.redis, self.keys, retention_s=speed.retention_hours * 3600)
        self.source = from_speed_kafka(
            settings,
            EpochStore(self.redis, self.keys),
            until_idle_s=until_idle_s,
            asynchronous=True,
        )
        self.shedder = LoadShedder(
            self.source.lag,
            tuple(speed.shed_event_types),
            lag_messages=speed.shed_lag_threshold,
            lag_seconds=speed.shed_lag_seconds,
        )
        window = TimeWindow(max_age_ms=speed.max_event_age_ms, max_future_ms=speed.max_event_future_ms)
        graph = build_speed_graph(
            self.source,
            keys=self.keys,
            window=window,
            dead_letters=DeadLetterWriter(self.producer, settings.kafka.dlq_topic),
            shedder=self.shedder,
            applier=applier,
            commit=self.source.commit,
            lag=self.source.lag,
            metrics=metrics,
            overlap=speed.overlap_writes,
        )
        self.writer = graph.writer
        self.source.drain = self.writer.drain
        self._sinks = [
            # runs on the consuming thread, inside the writer's drain: consumer calls stay there
            graph.corrections.sink(self.source.positioning.correct),
            graph.applied.sink(self.report.add),
        ]
        if on_applied is not None:
            self._sinks.append(graph.applied.sink(on_applied))

    def stop(self) -> None:
        """Finish the batch in hand, commit, then stop (safe from a signal handler)."""
        self.source.stop()

    async def _run(self) -> None:
        await self.source.run_until_stopped()

    def run(self) -> RunReport:
        """Run until stopped or idle; returns what was done."""
        t0 = time.monotonic()
        # the dead-letter producer's connection is made now, not when the first bad message
        # of a micro-batch needs it (that batch would wait for it before it can commit)
        self.producer.connect()
        try:
            with _gc_for_batches(self.settings.speed.batch_size):
                asyncio.run(self._run())
        finally:
            self.writer.close()
            self.producer.close(10)
            self.redis.close()
        self.report.seconds = time.monotonic() - t0
        return self.report


@contextmanager
def _gc_for_batches(batch_size: int) -> Iterator[None]:
    """Tune the cyclic GC for the run: young collections per batch, not mid-batch.

    Each ``consume()`` allocates one GC-tracked Message per message. With the
    default threshold (700 net allocations) young collections run in the
    middle of that burst, find the Messages alive and promote them, and every
    few batches a full collection walks the whole heap (~100K startup
    objects): a pause of 50-150 ms in the hot path, straight into
    event-to-visible latency (at 5,000-message batches: about 460 young and
    4 full collections per 300K events by default, 3 young and no full ones
    with this tuning).
    The Messages die by refcount as soon as their columns are read, so a
    young threshold above two batches lets them go uncollected; the objects
    alive at start are frozen out of full collections. Both are undone at the
    end, so a process that runs the pipeline several times is left as it was.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(before[0], min(2 * batch_size, _GC_YOUNG_MAX)), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


_GC_YOUNG_MAX = 200_000
"""Cap of the young-generation threshold: a collection scans at most this many objects."""


def run_speed(
    settings: Settings,
    *,
    until_idle_s: float | None = None,
    metrics_port: int | None = None,
    handle_signals: bool = True,
    on_applied: Callable[[AppliedBatch], None] | None = None,
) -> RunReport:
    """Run the speed layer until SIGTERM/SIGINT, or until idle for ``until_idle_s``.

    Creates the topics if missing. ``metrics_port`` (else
    ``settings.speed.metrics_port``) exposes Prometheus metrics.
    """
    ensure_topics(settings.kafka)
    metrics = SpeedMetrics()
    port = metrics_port if metrics_port is not None else settings.speed.metrics_port
    if port is not None:
        metrics.serve(port)
    pipeline = SpeedPipeline(settings, until_idle_s=until_idle_s, metrics=metrics, on_applied=on_applied)
    if not handle_signals:
        return pipeline.run()
    with signal_handlers(lambda _signum: pipeline.stop()):
        return pipeline.run()
