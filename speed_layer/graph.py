"""The speed layer's streamz graph, from a head that emits RawBatches to the applied batches.

One wiring for every caller: the Kafka pipeline (``speed_layer.pipeline``)
hangs it below :class:`~speed_layer.source.from_speed_kafka`, the in-memory
harness (``speed_layer.testing``) below a plain ``Stream`` it feeds by hand. So
tests run exactly the nodes, in exactly the order, that production runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamz import Stream

from lambda_rt.events.validate import TimeWindow
from speed_layer import nodes
from speed_layer.keys import SpeedKeys
from speed_layer.lag import LagTracker
from speed_layer.metrics import SpeedMetrics
from speed_layer.nodes import CommitOffsets, DeadLetterSink
from speed_layer.redis_apply import BatchApplier
from speed_layer.shedding import LoadShedder

__all__ = ["SpeedGraph", "build_speed_graph"]


@dataclass(frozen=True)
class SpeedGraph:
    """The nodes a caller needs to hold on to.

    ``writer``: the Redis writer (its ``drain`` and ``close``, and its
    ``corrections`` stream for the source's positioning); ``applied``: emits
    each :class:`~speed_layer.microbatch.AppliedBatch` after its commit.
    """

    writer: nodes.apply_redis
    applied: Stream

    @property
    def corrections(self) -> Stream:
        return self.writer.corrections


def build_speed_graph(
    head: Stream,
    *,
    keys: SpeedKeys,
    window: TimeWindow,
    dead_letters: DeadLetterSink,
    shedder: LoadShedder,
    applier: BatchApplier,
    commit: CommitOffsets,
    lag: LagTracker,
    metrics: SpeedMetrics | None = None,
    overlap: bool = False,
) -> SpeedGraph:
    """validate -> dead letters -> shed -> aggregate -> Redis write -> commit, below ``head``.

    Args:
        overlap: run each Redis write in a worker thread while the next batch
            is prepared (the DLQ ack then also waits in that thread, still
            before the batch's write).
    """
    writer = (
        nodes.validate_events(head, window)
        .dead_letters(dead_letters, defer_flush=overlap)
        .shed_events(shedder)
        .aggregate_batch(keys)
        .apply_redis(applier, keys, overlap=overlap)
    )
    applied = writer.commit_offsets(commit, lag, metrics)
    return SpeedGraph(writer=writer, applied=applied)
